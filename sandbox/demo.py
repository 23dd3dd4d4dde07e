"""`make demo`: synthetic meetings through the whole pipeline on the local stack.

Zoom and the speech provider are fakes on loopback (Symbl by default; `--provider aws`: Amazon
Transcribe and Bedrock Runtime) and the rest of AWS is moto's server; everything else is the
product's own code, driven by the triggers AWS would fire (see `sandbox/runner.py`).

Each meeting has real speech (espeak-ng) from speakers who join at different times. The merger
keeps only the speech (the compact layout, by default): one mono file and a segment map. The
fake provider recognises what was said from that audio alone and bills it as the real one does
(Symbl: duration x channels; Transcribe: duration). With Symbl the speakers come back through
the Speaker Events API; either way the email's speakers and times come through the segment map,
so a stretch given to the wrong person or a clipped word would show up in the email. With
`--provider aws` the fake Bedrock extracts the sections from the transcript in its prompt.

At the end each meeting's billed seconds per meeting second are printed (and the model's
tokens), and each stored document is checked against the meeting's script: speakers, line times
and sections.
"""

from __future__ import annotations

import argparse
import email
import json
import os
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path
from typing import Any

from sandbox.runner import ROOT, LocalStack, StackOptions
from sandbox.synth import SyntheticMeeting, build_recording_completed, synthesize_meeting
from sandbox.zoom_webhook_sender import ZoomWebhookSender
from services.core import aws
from services.core.observability import logger
from services.core.recordings import TERMINAL_STATES, Recording, RecordingStore, State

STAGES = [s.value for s in State if s not in (State.FAILED, State.SKIPPED)]
SPEAKER_NAMES = ["Ana Ruiz-Soto", "Bo Chen", "Zoë Ødegård", "Kwame Mensah", "李雷", "Priya Nair"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--meetings", type=int, default=1, help="how many meetings (default 1)")
    parser.add_argument("--speakers", type=int, default=3, help="speakers per meeting (2-6)")
    parser.add_argument("--minutes", type=float, default=2.0, help="meeting length (default 2)")
    parser.add_argument(
        "--symbl-limit",
        type=int,
        default=2,
        help="the fake Symbl's concurrent-job limit (default 2, a trial account)",
    )
    parser.add_argument(
        "--faults",
        action="store_true",
        help="inject faults: Zoom 5xx and cut downloads, duplicate webhooks, Symbl 429s, "
        "dropped and duplicated Symbl callbacks, a failed job and a lost submit answer (that "
        "meeting waits out its job deadline, about two minutes, before it is submitted again)",
    )
    parser.add_argument(
        "--provider",
        choices=("symbl", "aws"),
        default="symbl",
        help="SPEECH_PROVIDER: Symbl (default), or Amazon Transcribe + Bedrock",
    )
    parser.add_argument(
        "--layout",
        choices=("compact", "multichannel"),
        default="compact",
        help="AUDIO_LAYOUT: only the speech in one mono file (default), or a channel per speaker",
    )
    parser.add_argument(
        "--realistic",
        action="store_true",
        help="realistic meetings: pauses, people talking over each other, backchannels, a noise "
        "floor, typing and coughs",
    )
    parser.add_argument(
        "--keep-running", action="store_true", help="keep the stack up afterwards (Ctrl-C stops it)"
    )
    parser.add_argument("--timeout", type=float, default=600, help="give up after (seconds)")
    parser.add_argument("--out", type=Path, default=ROOT / ".demo", help="where results go")
    parser.add_argument("--verbose", action="store_true", help="show the services' JSON logs")
    args = parser.parse_args(argv)
    if not 2 <= args.speakers <= len(SPEAKER_NAMES):
        parser.error(f"--speakers must be between 2 and {len(SPEAKER_NAMES)}")
    if args.meetings < 1 or args.symbl_limit < 1:
        parser.error("--meetings and --symbl-limit must be at least 1")
    return args


def synthesize(args: argparse.Namespace, stack: LocalStack) -> list[SyntheticMeeting]:
    meetings = []
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=args.minutes + 5)
    for i in range(args.meetings):
        meeting = synthesize_meeting(
            speakers=SPEAKER_NAMES[: args.speakers],
            duration_s=args.minutes * 60,
            seed=100 + i,
            workdir=ROOT / ".cache" / "synth",
            topic=f"Demo {i + 1}: quarterly planning ({started:%H%M%S}-{i})",
            start_time=started + timedelta(minutes=i),
            registry=stack.registry,
            realistic=args.realistic,
        )
        meetings.append(replace(meeting, account_id=stack.zoom.account_id))
    return meetings


def inject_aws_faults(stack: LocalStack) -> None:
    """The AWS provider's faults: lost completion events (the reconciler polls), a failed job
    (submitted again), Bedrock throttling (retried through the queue) and a malformed answer
    (retried once)."""
    assert stack.transcribe is not None and stack.bedrock is not None
    stack.transcribe.lose_events(1)
    stack.transcribe.fail_next(1)
    stack.bedrock.throttle_next(2)
    stack.bedrock.malformed_next(1)


def inject_faults(stack: LocalStack, meetings: list[SyntheticMeeting]) -> None:
    first = meetings[0].participants
    stack.zoom.inject("http_500", file_id=first[0].audio.file_id, times=2)
    stack.zoom.inject("cut_body", file_id=first[1].audio.file_id, times=1, cut_after=40_000)
    stack.symbl.http_429(count=2)
    stack.symbl.drop_webhooks(count=2)
    stack.symbl.duplicate_webhooks(count=3)
    stack.symbl.fail_jobs(count=1)
    stack.symbl.lose_submit_answers(count=1, status=504)


def follow(stack: LocalStack, uuids: dict[str, str], timeout: float) -> dict[str, State]:
    """Print each meeting's progress through the states until all are terminal."""
    store = RecordingStore(stack.stack.names.recordings_table)
    started = time.monotonic()
    last: dict[str, State | None] = dict.fromkeys(uuids)
    while True:
        elapsed = time.monotonic() - started
        states = {uuid: store.require(uuid).state for uuid in uuids}
        for uuid, state in states.items():
            if state != last[uuid]:
                label = uuids[uuid]
                step = STAGES.index(state.value) + 1 if state.value in STAGES else len(STAGES)
                bar = "#" * step + "." * (len(STAGES) - step)
                print(f"  {elapsed:6.1f}s  [{bar}] {state.value:<12} {label}", flush=True)
                last[uuid] = state
        if all(s in TERMINAL_STATES for s in states.values()) or elapsed > timeout:
            return states
        time.sleep(0.5)


def save_results(
    stack: LocalStack, uuids: dict[str, str], out: Path, scripts: dict[str, SyntheticMeeting]
) -> tuple[list[str], int]:
    """Write each meeting's email (.eml, .html), insights JSON and page, and check the notes
    against the script; return page URLs and how many meetings' notes were wrong."""
    store = RecordingStore(stack.stack.names.recordings_table)
    emails = stack.sent_emails()
    urls = []
    wrong = 0
    for uuid, label in uuids.items():
        problems: list[str] = []
        recording = store.require(uuid)
        folder = out / f"meeting-{list(uuids).index(uuid) + 1}"
        folder.mkdir(parents=True, exist_ok=True)
        if recording.insights_key:
            body = (
                aws.client("s3")
                .get_object(Bucket=stack.stack.names.media_bucket, Key=recording.insights_key)[
                    "Body"
                ]
                .read()
            )
            (folder / "insights.json").write_bytes(body)
            problems = check_notes(scripts[uuid], json.loads(body))
            wrong += bool(problems)
        for sent in emails:
            raw = sent.get("raw_data")
            if not raw or recording.topic not in _subject(raw):
                continue
            (folder / "email.eml").write_text(raw, encoding="utf-8")
            message = email.message_from_bytes(raw.encode(), policy=policy.default)
            html = message.get_body(preferencelist=("html",))  # type: ignore[attr-defined]
            if html is not None:
                (folder / "email.html").write_text(html.get_content(), encoding="utf-8")
                link = _page_link(html.get_content(), stack.api.url)
                if link:
                    import requests

                    page = requests.get(link, timeout=10)
                    (folder / "page.html").write_text(page.text, encoding="utf-8")
                    urls.append(link)
        print(
            f"\n{label}: {recording.state.value}"
            + (
                f" ({recording.failed_stage}: {recording.failure_reason})"
                if recording.state == State.FAILED
                else ""
            )
        )
        print(f"  {billing_line(stack, recording)}")
        if recording.insights_key:
            verdict = "; ".join(problems) if problems else "speakers, times and sections right"
            print(f"  checked against the script: {verdict}")
        for name in ("email.eml", "email.html", "insights.json", "page.html"):
            path = folder / name
            if path.exists():
                print(
                    f"  {name:<14} {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}"
                )
    return urls, wrong


def check_notes(meeting: SyntheticMeeting, insights: dict[str, Any]) -> list[str]:
    """What the stored notes get wrong against the meeting's script: a line given to the wrong
    speaker or placed at the wrong time, a speaker who was not there, a missing section."""
    problems = []
    names = {p.name for p in meeting.participants}
    for utterance in insights.get("transcript", []):
        said = [line for line in meeting.lines if line.text == utterance["text"]]
        if not said:
            continue  # a partly heard line: its words are checked by the tests, not here
        line = min(said, key=lambda line: abs(line.start - utterance["start_seconds"]))
        if (
            utterance["speaker"] != line.speaker
            or abs(line.start - utterance["start_seconds"]) > 0.5
        ):
            problems.append(
                f"line {utterance['text'][:30]!r}: {utterance['speaker']} at "
                f"{utterance['start_seconds']:.1f} s, scripted {line.speaker} at {line.start:.1f} s"
            )
    strangers = {s["name"] for s in insights.get("speakers", [])} - names
    if strangers:
        problems.append(f"speakers who were not there: {sorted(strangers)}")
    if not insights.get("transcript"):
        problems.append("no transcript")
    if not insights.get("summary") and not insights.get("summary_missing"):
        problems.append("no summary, and no reason given")
    if insights.get("sections_missing"):
        problems.append(f"sections missing: {insights['sections_missing']}")
    return problems


def billing_line(stack: LocalStack, recording: Recording) -> str:
    """What the provider billed for the meeting, per second of the meeting."""
    meeting_s = meeting_seconds(recording)
    if stack.transcribe is not None:
        # Every job of the meeting (`<stack>-<meeting key>-<attempt>`), a failed one included.
        meeting_jobs = (recording.job_id or "?").rsplit("-", 1)[0]
        billed = float(
            sum(
                job.billed_seconds
                for job in stack.transcribe.billing()
                if job.job_name.rsplit("-", 1)[0] == meeting_jobs
            )
        )
    else:
        conversation = recording.conversation_id
        billed = stack.symbl.billed_seconds(conversation) if conversation else 0.0
    ratio = billed / meeting_s if meeting_s else 0.0
    return (
        f"audio layout {recording.audio_layout or '-'}: {len(recording.tracks)} speaker track(s),"
        f" file {recording.merged_seconds or 0:.1f} s, billed {billed:.1f} s for a"
        f" {meeting_s:.0f} s meeting = {ratio:.2f} x the meeting"
    )


def meeting_seconds(recording: Recording) -> float:
    """The meeting's length: first join to last leave of the participant files."""
    starts = [_epoch(t.recording_start) for t in recording.tracks]
    ends = [_epoch(t.recording_end) for t in recording.tracks]
    if starts and ends:
        return max(ends) - min(starts)
    return recording.duration_minutes * 60.0


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _subject(raw: str) -> str:
    message = email.message_from_bytes(raw.encode(), policy=policy.default)
    return str(message.get("Subject", ""))


def _page_link(html: str, api_url: str) -> str | None:
    start = html.find(f"{api_url}/meetings/")
    if start < 0:
        return None
    end = html.find('"', start)
    return html[start:end].replace("&amp;", "&")


def run(args: argparse.Namespace) -> int:
    began = time.monotonic()
    options = StackOptions(
        prefix="demo",
        symbl_limit=args.symbl_limit,
        workdir=args.out / "work",
        reconcile_every_seconds=5.0,
        audio_layout=args.layout,
        speech_provider=args.provider,
        transcribe_limit=args.symbl_limit,
    )
    with LocalStack(options) as stack:
        print(f"AWS (moto server)        {stack.aws.endpoint_url}")
        print(f"API (webhook app)        {stack.api.url}")
        if args.provider == "aws":
            print(
                f"fake Zoom               {stack.zoom_server.url}\n"
                f"fake Transcribe/Bedrock {os.environ['AWS_ENDPOINT_URL_TRANSCRIBE']} / "
                f"{os.environ['AWS_ENDPOINT_URL_BEDROCK_RUNTIME']} (job limit {args.symbl_limit})"
            )
        else:
            print(
                f"fake Zoom / fake Symbl   {stack.zoom_server.url} / {stack.symbl_server.url}"
                f" (Symbl limit {args.symbl_limit})"
            )
        print(
            f"\nsynthesising {args.meetings} meeting(s), {args.speakers} speakers,"
            f" {args.minutes:g} min (espeak-ng; cached after the first run)...",
            flush=True,
        )
        meetings = synthesize(args, stack)
        zoom = ZoomWebhookSender(
            f"{stack.api.url}/zoom/webhook", stack.credentials.zoom_webhook_secret, time_scale=0.001
        )
        if not zoom.validate_endpoint():
            print("FAILED: the webhook did not pass Zoom's URL validation")
            return 1
        if args.faults:
            inject_faults(stack, meetings)
            if args.provider == "aws":
                inject_aws_faults(stack)
        uuids: dict[str, str] = {}
        for meeting in meetings:
            stack.zoom.add_meeting(meeting)
            token = stack.zoom.make_download_token(meeting)
            event = build_recording_completed(
                meeting, base_url=stack.zoom_server.url, download_token=token
            )
            delivered = zoom.deliver(event)
            if args.faults:
                zoom.deliver(event)  # Zoom sometimes delivers twice
            uuids[meeting.uuid] = meeting.topic
            print(
                f"Zoom → recording.completed for {meeting.topic!r}: HTTP {delivered.statuses[-1]}"
            )
        print("\nfollowing the meetings through the pipeline:")
        states = follow(stack, uuids, args.timeout)
        urls, wrong = save_results(stack, uuids, args.out, {m.uuid: m for m in meetings})
        notified = sum(1 for s in states.values() if s == State.NOTIFIED)
        if stack.transcribe is not None:
            provider, in_flight = "Transcribe", stack.transcribe.max_active
        else:
            provider, in_flight = "Symbl", stack.symbl.max_in_flight
        print(
            f"\n{notified}/{len(states)} meeting(s) NOTIFIED in {time.monotonic() - began:.0f} s;"
            f" {provider} never had more than {in_flight} job(s) in flight"
            f" (limit {args.symbl_limit})."
        )
        if stack.bedrock is not None:
            tokens_in, tokens_out = stack.bedrock.tokens()
            print(
                f"Bedrock: {len(stack.bedrock.calls)} call(s), {tokens_in} input and "
                f"{tokens_out} output tokens for {len(states)} meeting(s)."
            )
            print("Zoom, Transcribe and Bedrock were fakes on loopback; the rest of AWS was moto.")
        else:
            print("Zoom and Symbl were fakes on loopback; AWS was moto's server.")
        if args.keep_running and urls:
            print("\nThe stack stays up; open the insights page while it runs:")
            for url in urls:
                print(f"  {url}")
            print("Ctrl-C stops it.")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        elif urls:
            print("(the page URL works while the stack runs: make demo DEMO_ARGS=--keep-running)")
        return 0 if notified == len(states) and not wrong else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.verbose:
        logger.setLevel("ERROR")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

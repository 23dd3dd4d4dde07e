"""Compact against multichannel audio: what each layout bills, keeps and costs to make.

Realistic synthetic meetings (`sandbox.synth`, `realistic=True`: pauses, turns cutting in,
backchannels, a noise floor, typing and coughs) of 2, 4, 8 and 12 speakers at 10 and 60 minutes.
The participant files are served over HTTP from a loopback server, as S3 serves presigned URLs,
and for each meeting, in the same run:

- decode floor: one ffmpeg decoding every participant file to `-f null` (bench/merge.py's).
- compact: the merger's own `compact_merge` (each track decoded once, speech detected, the
  speech laid out in one mono FLAC with its segment map), in a child process so its peak RSS is
  its own (the child and its ffmpeg processes, sampled every 50 ms). Its wall time is the call
  alone: interpreter start and the silero model load happen before the clock starts (a warm
  Lambda or the Fargate task pays them once).
- multichannel: `mixdown.merge_tracks` (one FLAC channel per speaker, at most 8).

Both files are then submitted to the fake Symbl through the product's own Symbl client, as the
pump submits them: compact as plain mono, then given its speakers with the Speaker Events API
from the segment map; multichannel with per-channel recognition. The fake recognises a mono file
by content (audio fingerprints of every scripted word, `sandbox.fingerprint`), never from the
segment map or the meeting's timeline, and accounts each job's billed seconds as duration x
channels (Symbl's rule). Reported per meeting and layout:

- billed: the fake's billed seconds per second of the meeting (first join to last leave).
- the compact file's breakdown (speech heard once, serialised overlap, padding, gaps), as shares
  of the meeting.
- words right: of the words the fake heard, the share whose speaker is right, twice: "ours" is
  the email's transcript (every word attributed through the segment map), "Symbl" the provider's
  messages after the speaker events applied. Truth is the speaker of the template the fake
  matched, which it never uses to attribute.
- words lost: scripted words (every line's words, as the templates split them) never heard.
- merge / floor: wall time against the decode floor; peak RSS of the merge.

Targets, for compact: billed <= 1.0 x the meeting in every row (multichannel is N x); >= 99 % of
heard words attributed right (ours and Symbl's); words lost <= 0.5 %; merge <= 1.5 x the decode
floor; peak RSS <= 300 MB, and within +-20 % between 10 and 60 minutes. Generated meetings are
cached under .cache/bench-layout/. Exits 1 when a target is missed.

    .venv/bin/python bench/layout.py [--quick]    # --quick: the 10-minute meetings only
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._targets import Target, report  # noqa: E402
from bench.merge import decode_floor, measure, serve  # noqa: E402
from bench.merge import merge as multichannel_merge  # noqa: E402
from sandbox.fake_symbl import FakeSymblState  # noqa: E402
from sandbox.fake_symbl import serve as serve_symbl  # noqa: E402
from sandbox.fingerprint import template_key  # noqa: E402
from sandbox.registry import MeetingRegistry  # noqa: E402
from sandbox.synth import SyntheticMeeting, synthesize_meeting  # noqa: E402
from services.core.speech.provider import JobStatus, Speaker  # noqa: E402
from services.core.speech.segment_map import (  # noqa: E402
    SegmentMap,
    TimedWord,
    attribute_words,
    map_speakers,
    speaker_events,
)
from services.core.speech.symbl import (  # noqa: E402
    AudioSubmission,
    SymblClient,
    SymblCredentials,
)
from services.merger.ffmpeg_plan import TrackSource  # noqa: E402

CACHE = ROOT / ".cache" / "bench-layout"
FULL_CASES = ((2, 10), (4, 10), (8, 10), (12, 10), (2, 60), (4, 60), (8, 60), (12, 60))
QUICK_CASES = ((2, 10), (4, 10), (8, 10), (12, 10))
MAX_CHANNELS = 8
SAMPLE_INTERVAL_S = 0.05
BILLED_LIMIT = 1.0
RIGHT_MIN = 0.99
LOST_MAX = 0.005
MERGE_VS_FLOOR_LIMIT = 1.5
PEAK_RSS_LIMIT = 300e6
RSS_GROWTH_LIMIT = 0.2
JOB_TIMEOUT_S = 900.0
APP_ID, APP_SECRET = "bench-app", "bench-secret"  # the fake's own credentials, nothing real


# --- inputs ------------------------------------------------------------------------------------


def meeting_for(speakers: int, minutes: int, registry: MeetingRegistry) -> SyntheticMeeting:
    return synthesize_meeting(
        speakers=speakers,
        duration_s=minutes * 60,
        seed=13 + speakers,
        workdir=CACHE,
        cache_dir=CACHE / "renders",
        realistic=True,
        registry=registry,
    )


def sources_of(meeting: SyntheticMeeting, media_url: str) -> list[TrackSource]:
    """The participant files as the merger places them (0 = the earliest recording_start)."""
    origin = min(p.audio.recording_start for p in meeting.participants)
    return [
        TrackSource(
            key=p.audio.file_id,
            url=f"{media_url}/media/{p.audio.path.relative_to(CACHE)}?X-Amz-Signature=bench",
            offset_s=(p.audio.recording_start - origin).total_seconds(),
            duration_s=(p.audio.recording_end - p.audio.recording_start).total_seconds(),
        )
        for p in meeting.participants
    ]


# --- the compact merge, in a child process -------------------------------------------------------


def compact_child(job: dict[str, Any]) -> None:
    """Run the merger's compact merge for `job` and print its figures as JSON."""
    from services.core.settings import MergerSettings
    from services.core.speech.segment_map import MapSpeaker
    from services.merger import compact, speech
    from services.merger.merge import compact_merge

    settings = MergerSettings.model_construct()  # the defaults, as deployed without overrides
    speech.shared_model()  # loaded once per warm container, not per merge
    sources = [TrackSource(**s) for s in job["sources"]]
    started = time.perf_counter()
    outcome, _ = compact_merge(
        sources,
        [MapSpeaker(**speaker) for speaker in job["speakers"]],
        job["of_track"],
        detection=speech.DetectionParams.from_settings(settings),
        layout=compact.LayoutParams.from_settings(settings),
        output=job["output"],
        work=job["work"],
    )
    wall = time.perf_counter() - started
    Path(job["map"]).write_text(outcome.segment_map.to_json())
    print(json.dumps({"wall_s": wall}))


@dataclass
class CompactRun:
    wall_s: float
    peak_rss: int
    segment_map: SegmentMap
    path: Path


def run_compact(meeting: SyntheticMeeting, sources: list[TrackSource], scratch: Path) -> CompactRun:
    speakers, of_track = map_speakers(
        (p.audio.file_id, p.name, p.email) for p in meeting.participants
    )
    output, map_path = scratch / "compact.flac", scratch / "compact.segments.json"
    work = scratch / "work"
    work.mkdir()
    job = {
        "sources": [s.__dict__ for s in sources],
        "speakers": [s.model_dump() for s in speakers],
        "of_track": of_track,
        "output": str(output),
        "map": str(map_path),
        "work": str(work),
    }
    child = subprocess.Popen(
        [sys.executable, __file__, "--compact-child", json.dumps(job)],
        stdout=subprocess.PIPE,
        text=True,
    )
    peak = _sample_tree(child)
    stdout, _ = child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"compact merge failed (exit {child.returncode})")
    figures = json.loads(stdout.strip().splitlines()[-1])
    return CompactRun(figures["wall_s"], peak, SegmentMap.from_json(map_path.read_text()), output)


def _sample_tree(child: subprocess.Popen[str]) -> int:
    """Peak RSS of `child` and its descendants (summed), until it exits. A descendant that still
    has the child's name is a fork that has not yet exec'd ffmpeg: its pages are the child's own
    (copy-on-write), so it is not counted twice."""
    peak = 0
    root = psutil.Process(child.pid)
    name = root.name()
    while child.poll() is None:
        total = 0
        try:
            for process in (root, *root.children(recursive=True)):
                try:
                    if process.pid != root.pid and process.name() == name:
                        continue
                    total += process.memory_info().rss
                except psutil.Error:
                    continue
        except psutil.Error:
            break
        peak = max(peak, total)
        time.sleep(SAMPLE_INTERVAL_S)
    return peak


# --- the fake Symbl ------------------------------------------------------------------------------


@dataclass
class Recognised:
    billed_s: float
    heard_words: int
    right_ours: int
    right_symbl: int
    lost_words: int
    scripted_words: int


def submit(client: SymblClient, state: FakeSymblState, submission: AudioSubmission) -> str:
    job = client.submit_audio_url(submission)
    status = state.wait_for_job(job.job_id, timeout=JOB_TIMEOUT_S)
    if status != JobStatus.COMPLETED:
        raise RuntimeError(f"the fake Symbl's job {job.job_id} ended {status}")
    return job.conversation_id


def recognise_compact(
    client: SymblClient,
    state: FakeSymblState,
    meeting: SyntheticMeeting,
    url: str,
    segment_map: SegmentMap,
) -> Recognised:
    conversation = submit(
        client, state, AudioSubmission(url=url, name=meeting.topic, webhook_url="", diarize=False)
    )
    client.put_speaker_events(conversation, speaker_events(segment_map))

    def applied() -> bool:
        truth = state.truth(conversation)
        return truth is not None and all(w.attributed_name for w in truth.words)

    _poll(applied, timeout=60.0)
    truth = state.truth(conversation)
    assert truth is not None
    names = {s.id: s.name for s in segment_map.speakers}
    right_ours = 0
    for word in truth.words:
        lines = attribute_words(
            segment_map, [TimedWord(text=word.text, start=word.start, end=word.end)]
        )
        right_ours += bool(lines) and names[lines[0].speaker_id] == word.true_speaker
    heard = Counter(word.template_key for word in truth.words)
    expected = scripted_words(meeting)
    lost = sum(max(0, count - heard.get(key, 0)) for key, count in expected.items())
    return Recognised(
        billed_s=state.billed_seconds(conversation),
        heard_words=len(truth.words),
        right_ours=right_ours,
        right_symbl=sum(word.correct for word in truth.words),
        lost_words=lost,
        scripted_words=sum(expected.values()),
    )


def scripted_words(meeting: SyntheticMeeting) -> Counter[str]:
    """Words per template key over every scripted line (a line said twice counts twice)."""
    per_template = {t.key: len(t.words) for t in meeting.templates()}
    counts: Counter[str] = Counter()
    for line in meeting.lines:
        key = template_key(line.speaker, line.text)
        counts[key] += per_template[key]
    return counts


def billed_multichannel(
    client: SymblClient, state: FakeSymblState, meeting: SyntheticMeeting, url: str, channels: int
) -> float:
    people = [Speaker(name=f"channel {index}") for index in range(1, channels + 1)]
    conversation = submit(
        client,
        state,
        AudioSubmission(
            url=url, name=f"{meeting.topic} (multichannel)", webhook_url="", channels=tuple(people)
        ),
    )
    return state.billed_seconds(conversation)


def _poll(condition: Any, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the fake Symbl never applied the speaker events")
        time.sleep(0.1)


# --- the run -------------------------------------------------------------------------------------


@dataclass
class Row:
    speakers: int
    minutes: int
    meeting_s: float
    floor_s: float
    compact_wall_s: float
    compact_rss: int
    compact_file_s: float
    breakdown: dict[str, float]
    compact: Recognised
    multi_wall_s: float
    multi_rss: int
    multi_billed_s: float
    multi_channels: int


def run_case(
    speakers: int,
    minutes: int,
    media_url: str,
    media_dir: Path,
    client: SymblClient,
    state: FakeSymblState,
    registry: MeetingRegistry,
) -> Row:
    print(f"  {speakers} speakers, {minutes} min ...", flush=True)
    meeting = meeting_for(speakers, minutes, registry)
    sources = sources_of(meeting, media_url)
    floor = measure(decode_floor(sources))
    with tempfile.TemporaryDirectory(dir=media_dir, prefix="layout-") as scratch_name:
        scratch = Path(scratch_name)
        compact = run_compact(meeting, sources, scratch)
        relative = compact.path.relative_to(CACHE)
        recognised = recognise_compact(
            client, state, meeting, f"{media_url}/media/{relative}", compact.segment_map
        )
        multi_path: list[Path] = []

        def keep(scratch_dir: Path) -> Path:
            output = multichannel_merge(sources)(scratch)
            multi_path.append(output)
            return output

        multi = measure(keep)
        channels = min(speakers, MAX_CHANNELS)
        multi_billed = billed_multichannel(
            client,
            state,
            meeting,
            f"{media_url}/media/{multi_path[0].relative_to(CACHE)}",
            channels,
        )
    segment_map = compact.segment_map
    return Row(
        speakers=speakers,
        minutes=minutes,
        meeting_s=meeting.span_seconds,
        floor_s=floor.wall_s,
        compact_wall_s=compact.wall_s,
        compact_rss=compact.peak_rss,
        compact_file_s=segment_map.duration_seconds,
        breakdown=segment_map.breakdown.model_dump(),
        compact=recognised,
        multi_wall_s=multi.wall_s,
        multi_rss=multi.tree_rss,
        multi_billed_s=multi_billed,
        multi_channels=channels,
    )


def pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "-"


def print_rows(rows: Sequence[Row]) -> None:
    print(
        f"\n{'meeting':<12}{'layout':<14}{'billed/meeting':>15}{'speech':>9}{'overlap':>9}"
        f"{'padding':>9}{'gaps':>8}{'right ours':>12}{'right Symbl':>12}{'lost':>9}"
        f"{'merge/floor':>13}{'peak RSS':>10}"
    )
    for row in rows:
        name = f"{row.speakers} x {row.minutes} min"
        c, b = row.compact, row.breakdown
        print(
            f"{name:<12}{'compact':<14}{c.billed_s / row.meeting_s:>14.3f}x"
            f"{pct(b['speech'], row.meeting_s):>9}{pct(b['overlap'], row.meeting_s):>9}"
            f"{pct(b['padding'], row.meeting_s):>9}{pct(b['gaps'], row.meeting_s):>8}"
            f"{pct(c.right_ours, c.heard_words):>12}{pct(c.right_symbl, c.heard_words):>12}"
            f"{pct(c.lost_words, c.scripted_words):>9}"
            f"{row.compact_wall_s / row.floor_s:>12.2f}x{row.compact_rss / 1e6:>8.0f} MB"
        )
        print(
            f"{'':<12}{f'multichannel/{row.multi_channels}':<14}"
            f"{row.multi_billed_s / row.meeting_s:>14.3f}x{'':>9}{'':>9}{'':>9}{'':>8}"
            f"{'-':>12}{'-':>12}{'-':>9}"
            f"{row.multi_wall_s / row.floor_s:>12.2f}x{row.multi_rss / 1e6:>8.0f} MB"
        )
    print(
        "\nbilled: the fake Symbl's billed seconds (duration x channels) per meeting second;"
        " speech..gaps: the compact file's make-up, as shares of the meeting; right: heard"
        " words whose speaker is right (ours: the email's, through the segment map; Symbl:"
        " its messages after the speaker events); lost: scripted words never heard."
        " multichannel RSS includes this harness; compact RSS is the merge's own."
    )
    for row in rows:
        c = row.compact
        print(
            f"  {row.speakers} x {row.minutes} min: meeting {row.meeting_s:.0f} s, compact file"
            f" {row.compact_file_s:.0f} s, billed {c.billed_s:.0f} s (multichannel"
            f" {row.multi_billed_s:.0f} s); words heard {c.heard_words}, lost"
            f" {c.lost_words}/{c.scripted_words}; merge {row.compact_wall_s:.2f} s, floor"
            f" {row.floor_s:.2f} s"
        )


def targets(rows: Sequence[Row]) -> list[Target]:
    out = []
    for row in rows:
        name = f"{row.speakers} x {row.minutes} min"
        c = row.compact
        billed = c.billed_s / row.meeting_s
        ours = c.right_ours / c.heard_words if c.heard_words else 0.0
        symbl = c.right_symbl / c.heard_words if c.heard_words else 0.0
        lost = c.lost_words / c.scripted_words if c.scripted_words else 1.0
        vs_floor = row.compact_wall_s / row.floor_s
        out += [
            Target(
                f"{name}: compact billed <= {BILLED_LIMIT} x meeting",
                billed <= BILLED_LIMIT,
                f"{billed:.3f}",
            ),
            Target(
                f"{name}: words right (ours) >= {RIGHT_MIN:.0%}", ours >= RIGHT_MIN, f"{ours:.2%}"
            ),
            Target(
                f"{name}: words right (Symbl) >= {RIGHT_MIN:.0%}",
                symbl >= RIGHT_MIN,
                f"{symbl:.2%}",
            ),
            Target(f"{name}: words lost <= {LOST_MAX:.1%}", lost <= LOST_MAX, f"{lost:.2%}"),
            Target(
                f"{name}: merge <= {MERGE_VS_FLOOR_LIMIT} x decode floor",
                vs_floor <= MERGE_VS_FLOOR_LIMIT,
                f"{vs_floor:.2f}",
            ),
            Target(
                f"{name}: merge peak RSS <= {PEAK_RSS_LIMIT / 1e6:.0f} MB",
                row.compact_rss <= PEAK_RSS_LIMIT,
                f"{row.compact_rss / 1e6:.0f} MB",
            ),
        ]
    by_case = {(r.speakers, r.minutes): r for r in rows}
    for speakers in sorted({r.speakers for r in rows}):
        short, long = by_case.get((speakers, 10)), by_case.get((speakers, 60))
        if short is None or long is None:
            continue
        growth = long.compact_rss / short.compact_rss - 1
        out.append(
            Target(
                f"{speakers} spk: merge RSS 60 vs 10 min within {RSS_GROWTH_LIMIT:.0%}",
                abs(growth) <= RSS_GROWTH_LIMIT,
                f"{growth:+.0%}",
            )
        )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="the 10-minute meetings only")
    parser.add_argument(
        "--cases", help="only these meetings, e.g. 4x10,8x60 (speakers x minutes)", default=""
    )
    parser.add_argument("--compact-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.compact_child:
        compact_child(json.loads(args.compact_child))
        return 0
    CACHE.mkdir(parents=True, exist_ok=True)
    cases = QUICK_CASES if args.quick else FULL_CASES
    if args.cases:
        cases = tuple(
            (int(n), int(m)) for n, m in (case.split("x") for case in args.cases.split(","))
        )
    registry = MeetingRegistry(CACHE / "registry")
    print(f"generating or reusing {len(cases)} realistic meetings under {CACHE} ...", flush=True)
    for speakers, minutes in cases:
        meeting_for(speakers, minutes, registry)
    state = FakeSymblState(
        app_id=APP_ID,
        app_secret=APP_SECRET,
        concurrency_limit=4,
        queue_seconds=0.0,
        processing_seconds=0.0,
        max_channels=MAX_CHANNELS,
        registry=registry,
        speaker_events_seconds=0.0,
        fingerprint_cache_dir=CACHE / "fingerprints",
        download_timeout=300.0,
    )
    symbl_server = serve_symbl(state)
    media_server = serve(CACHE).start()
    credentials = SymblCredentials(app_id=APP_ID, app_secret=APP_SECRET)
    client = SymblClient(symbl_server.url, lambda: credentials, timeout=120.0)
    rows = []
    try:
        for speakers, minutes in cases:
            rows.append(
                run_case(speakers, minutes, media_server.url, CACHE, client, state, registry)
            )
    finally:
        media_server.stop()
        symbl_server.stop()
        state.close()
    print_rows(rows)
    return report(targets(rows))


if __name__ == "__main__":
    sys.exit(main())

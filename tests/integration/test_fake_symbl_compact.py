"""The fake Symbl for compact submissions: one mono file, recognised by content, named afterwards.

A compact file is scripted lines (real espeak-ng renders registered as the meeting's templates)
laid out one after another with short gaps, as the merger's compact layout does. The fake must
find the lines from the audio alone and name nobody; speaker events (`PUT .../speakers`, the body
the pipeline builds from its segment map) name each message's speaker after a delay; members,
analytics and (after a refresh) the summary follow. The fake bills duration x channels, and its
sandbox readout tells, word by word, who really spoke and who the message is attributed to.
"""

from __future__ import annotations

import array
import subprocess
import sys
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask, send_from_directory
from flask.typing import ResponseReturnValue

from sandbox.fake_symbl import SPEAKERS_MESSAGE, FakeSymblState, create_app
from sandbox.fingerprint import Template
from sandbox.http_server import LoopbackServer
from sandbox.registry import MeetingRegistry, ScriptedMeeting, ScriptLine
from sandbox.synth import VOICES, line_template
from services.core.speech.segment_map import MapSpeaker, Segment, SegmentMap, speaker_events
from tests.integration.test_fake_symbl import SwitchableApp, _fake_threads, eventually

pytestmark = pytest.mark.integration

TOPIC = "Compact layout review"
EPOCH = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
PEOPLE = {  # name -> (email, voice)
    "Alice": ("alice@example.com", 0),
    "Bob": ("bob@example.com", 1),
    "Carol": ("carol@example.com", 2),
}
SCRIPT = (  # in file order
    ("Alice", "Can we ship the release next week?"),
    ("Bob", "I will update the budget by Friday."),
    ("Carol", "The security review found two minor issues."),
    ("Alice", "I will send the meeting notes tomorrow."),
)
LEAD_S, GAP_S, PAD_S = 0.5, 0.4, 0.1  # silence before the first line, between lines, padding
TIME_TOLERANCE_S = 0.05
OUTPUT_RATE = 16_000


@dataclass(frozen=True)
class Placed:
    """A template as laid out in the compact file: the truth the fake is measured against."""

    template: Template
    start: float  # seconds in the file
    end: float

    @property
    def speaker(self) -> str:
        return self.template.speaker


@dataclass(frozen=True)
class CompactMedia:
    directory: Path
    placed: tuple[Placed, ...]
    duration: float  # of compact.flac and three.wav
    clipped_line: int  # the line whose first word is silenced in clipped.flac


def _pcm(template: Template) -> array.array[int]:
    samples = array.array("h", Path(template.audio).read_bytes())
    if sys.byteorder != "little":
        samples.byteswap()
    return samples


def _encode_flac(samples: array.array[int], rate: int, path: Path) -> None:
    data = samples.tobytes() if sys.byteorder == "little" else _swapped(samples).tobytes()
    subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-v", "error", "-y"),
            *("-f", "s16le", "-ar", str(rate), "-ac", "1", "-i", "-"),
            *("-ar", str(OUTPUT_RATE), "-c:a", "flac", str(path)),
        ],
        input=data,
        check=True,
    )


def _swapped(samples: array.array[int]) -> array.array[int]:
    copy = array.array("h", samples)
    copy.byteswap()
    return copy


def _write_three_channel_wav(path: Path, mono: Path, duration: float) -> None:
    """Channel 1 the compact file's audio, channels 2 and 3 silence: only the count matters."""
    decoded = subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-v", "error", "-i", str(mono)),
            *("-f", "s16le", "-ac", "1", "-ar", str(OUTPUT_RATE), "-"),
        ],
        capture_output=True,
        check=True,
    ).stdout
    first = array.array("h", decoded)
    frames = round(duration * OUTPUT_RATE)
    first = first[:frames] + array.array("h", bytes(2 * max(0, frames - len(first))))
    interleaved = array.array("h", bytes(2 * 3 * frames))
    interleaved[0::3] = first
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(3)
        wav.setsampwidth(2)
        wav.setframerate(OUTPUT_RATE)
        wav.writeframes(interleaved.tobytes())


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> CompactMedia:
    """compact.flac (every line, in order, with gaps), clipped.flac (the same with the first word
    of line 2 silenced), three.wav (3 channels, same duration)."""
    directory = tmp_path_factory.mktemp("fake_symbl_compact")
    renders = directory / "renders"
    templates = [
        line_template(name, text, VOICES[PEOPLE[name][1]], renders) for name, text in SCRIPT
    ]
    rate = templates[0].rate
    assert {t.rate for t in templates} == {rate}
    audio = array.array("h", bytes(2 * round(LEAD_S * rate)))
    placed: list[Placed] = []
    for template in templates:
        clip = _pcm(template)
        placed.append(Placed(template, len(audio) / rate, (len(audio) + len(clip)) / rate))
        audio.extend(clip)
        audio.extend(array.array("h", bytes(2 * round(GAP_S * rate))))
    duration = len(audio) / rate
    _encode_flac(audio, rate, directory / "compact.flac")

    clipped_line = 1
    line = placed[clipped_line]
    first_word = line.template.words[0]
    clipped = array.array("h", audio)
    cut_from = round((line.start + first_word.start) * rate)
    cut_to = round((line.start + first_word.end) * rate)
    clipped[cut_from:cut_to] = array.array("h", bytes(2 * (cut_to - cut_from)))
    _encode_flac(clipped, rate, directory / "clipped.flac")

    _write_three_channel_wav(directory / "three.wav", directory / "compact.flac", duration)
    return CompactMedia(directory, tuple(placed), duration, clipped_line)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, media: CompactMedia) -> MeetingRegistry:
    """The meeting's templates; its script times are where the lines sat in the MEETING, on
    purpose unlike their places in the compact file, so nothing can be looked up by time."""
    registry = MeetingRegistry(tmp_path_factory.mktemp("fake_symbl_compact_registry"))
    lines = [
        ScriptLine(p.speaker, p.template.text, 100.0 + 20 * i, 100.0 + 20 * i + (p.end - p.start))
        for i, p in enumerate(media.placed)
    ]
    templates = list({p.template.key: p.template for p in media.placed}.values())
    registry.register(
        ScriptedMeeting(
            uuid="compact-meeting-uuid",
            topic=TOPIC,
            speakers=list(PEOPLE),
            lines=lines,
            templates=templates,
        )
    )
    return registry


@pytest.fixture(scope="module")
def media_url(media: CompactMedia) -> Iterator[str]:
    app = Flask("fake_symbl_compact_media")

    @app.get("/files/<name>")
    def files(name: str) -> ResponseReturnValue:
        return send_from_directory(media.directory, name)

    with LoopbackServer(app) as server:
        yield server.url


@pytest.fixture(scope="module")
def symbl_server() -> Iterator[tuple[SwitchableApp, str]]:
    switch = SwitchableApp()
    with LoopbackServer(switch) as server:
        yield switch, server.url


@pytest.fixture(scope="module")
def fingerprints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fake_symbl_compact_fingerprints")


class Client:
    """Bearer token, JSON, polling: as the pipeline talks to Symbl."""

    def __init__(self, state: FakeSymblState, base: str, media: str) -> None:
        self.state = state
        self.base = base
        self.media = media
        body = {"type": "application", "appId": state.app_id, "appSecret": state.app_secret}
        answer = requests.post(f"{base}/oauth2/token:generate", json=body, timeout=5)
        self.token = answer.json()["accessToken"]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, path: str, **params: str) -> requests.Response:
        return requests.get(f"{self.base}{path}", headers=self.auth, params=params, timeout=5)

    def put_speakers(self, conversation_id: str, body: object) -> requests.Response:
        return requests.put(
            f"{self.base}/v1/conversations/{conversation_id}/speakers",
            headers=self.auth,
            json=body,
            timeout=5,
        )

    def submit(self, file: str = "compact.flac", **options: Any) -> str:
        """A mono submission without per-channel recognition or diarization, as the compact
        layout sends it; returns the conversation id once the job has completed."""
        body = {"url": f"{self.media}/files/{file}", "name": TOPIC} | options
        answer = requests.post(
            f"{self.base}/v1/process/audio/url", headers=self.auth, json=body, timeout=10
        )
        assert answer.status_code == 201, answer.text
        job_id = answer.json()["jobId"]
        assert self.state.wait_for_job(job_id, timeout=60) == "completed", self.state.job(job_id)
        return str(answer.json()["conversationId"])

    def messages(self, conversation_id: str, **params: str) -> list[dict[str, Any]]:
        answer = self.get(f"/v1/conversations/{conversation_id}/messages", **params)
        assert answer.status_code == 200, answer.text
        messages: list[dict[str, Any]] = answer.json()["messages"]
        return messages

    def speakers_of(self, conversation_id: str) -> list[str | None]:
        return [m["from"].get("name") for m in self.messages(conversation_id)]


@pytest.fixture
def symbl(
    registry: MeetingRegistry,
    media_url: str,
    symbl_server: tuple[SwitchableApp, str],
    fingerprints: Path,
) -> Iterator[Client]:
    switch, url = symbl_server
    state = FakeSymblState(
        queue_seconds=0.05,
        processing_seconds=0.1,
        registry=registry,
        conversation_epoch=EPOCH,
        speaker_events_seconds=0.5,
        fingerprint_cache_dir=fingerprints,
        seed=11,
    )
    switch.app = create_app(state)
    try:
        yield Client(state, url, media_url)
    finally:
        switch.app = None
        state.close()
    assert _fake_threads() == []


def _segment_map(media: CompactMedia, *, names: dict[str, str] | None = None) -> SegmentMap:
    """The merger's map of the compact file: one padded segment per line. `names` renames
    speakers (to send deliberately wrong events)."""
    names = names or {}
    speakers = [
        MapSpeaker(id=f"u-{name.lower()}", name=names.get(name, name), email=email)
        for name, (email, _) in PEOPLE.items()
    ]
    segments = [
        Segment(
            speaker=f"u-{p.speaker.lower()}",
            output_start=round(max(0.0, p.start - PAD_S), 3),
            output_end=round(p.end + PAD_S, 3),
            timeline_start=100.0 + 20 * i,
            talk_seconds=round(p.end - p.start, 3),
        )
        for i, p in enumerate(media.placed)
    ]
    return SegmentMap(
        layout="compact",
        duration_seconds=media.duration,
        meeting_seconds=200.0,
        speakers=speakers,
        segments=segments,
    )


def _events_body(media: CompactMedia, **kwargs: Any) -> dict[str, Any]:
    return {"speakerEvents": speaker_events(_segment_map(media, **kwargs))}


def _event(kind: str, user: str, seconds: int, nanos: int = 0) -> dict[str, Any]:
    return {
        "type": kind,
        "user": {"id": f"u-{user.lower()}", "name": user},
        "offset": {"seconds": seconds, "nanos": nanos},
    }


# ---------------------------------------------------------------------------------------------
# Recognition by content
# ---------------------------------------------------------------------------------------------


def test_compact_mono_messages_carry_the_heard_words_and_no_speaker(
    symbl: Client, media: CompactMedia
) -> None:
    conversation_id = symbl.submit()
    messages = symbl.messages(conversation_id, verbose="true")

    assert [m["text"] for m in messages] == [p.template.text for p in media.placed]
    for message, placed in zip(messages, media.placed, strict=True):
        assert message["from"] == {}
        assert message["timeOffset"] == pytest.approx(placed.start, abs=TIME_TOLERANCE_S)
        end = message["timeOffset"] + message["duration"]
        assert end == pytest.approx(placed.end, abs=TIME_TOLERANCE_S)
        words = message["words"]
        assert [w["word"] for w in words] == [w.text for w in placed.template.words]
        for heard, scripted in zip(words, placed.template.words, strict=True):
            assert heard["timeOffset"] == pytest.approx(
                placed.start + scripted.start, abs=TIME_TOLERANCE_S
            )
    assert symbl.get(f"/v1/conversations/{conversation_id}/members").json() == {"members": []}
    analytics = symbl.get(f"/v1/conversations/{conversation_id}/analytics").json()
    assert analytics["members"] == []
    talk = {m["type"]: m["seconds"] for m in analytics["metrics"]}["total_talk_time"]
    spoken = sum(p.end - p.start for p in media.placed)
    assert talk == pytest.approx(spoken, abs=4 * TIME_TOLERANCE_S)


def test_compact_words_whose_audio_is_missing_are_missing_from_the_transcript(
    symbl: Client, media: CompactMedia
) -> None:
    conversation_id = symbl.submit("clipped.flac")
    texts = [m["text"] for m in symbl.messages(conversation_id)]

    clipped = media.placed[media.clipped_line].template
    expected = [p.template.text for p in media.placed]
    expected[media.clipped_line] = " ".join(w.text for w in clipped.words[1:])
    assert texts == expected


def test_compact_a_multichannel_file_without_flags_is_mixed_down_and_recognised(
    symbl: Client, media: CompactMedia
) -> None:
    conversation_id = symbl.submit("three.wav")
    assert [m["text"] for m in symbl.messages(conversation_id)] == [
        p.template.text for p in media.placed
    ]
    assert set(symbl.speakers_of(conversation_id)) == {None}


# ---------------------------------------------------------------------------------------------
# Speaker events
# ---------------------------------------------------------------------------------------------


def test_compact_speaker_events_name_each_message_after_the_delay(
    symbl: Client, media: CompactMedia
) -> None:
    symbl.state.speaker_events_seconds = 1.0
    conversation_id = symbl.submit()
    body = _events_body(media)

    answer = symbl.put_speakers(conversation_id, body)
    assert answer.status_code == 200
    assert answer.json() == {"message": SPEAKERS_MESSAGE.format(conversation_id=conversation_id)}
    assert set(symbl.speakers_of(conversation_id)) == {None}  # not applied yet

    truth = [p.speaker for p in media.placed]
    eventually(lambda: symbl.speakers_of(conversation_id) == truth, "speakers to be applied")
    for message, placed in zip(symbl.messages(conversation_id), media.placed, strict=True):
        assert message["from"]["email"] == PEOPLE[placed.speaker][0]
        assert message["from"]["id"]
    ids = {m["from"]["name"]: m["from"]["id"] for m in symbl.messages(conversation_id)}

    members = symbl.get(f"/v1/conversations/{conversation_id}/members").json()["members"]
    assert members == [
        {"id": ids[name], "name": name, "email": email} for name, (email, _) in PEOPLE.items()
    ]
    conversation = symbl.get(f"/v1/conversations/{conversation_id}").json()
    assert conversation["members"] == members

    analytics = symbl.get(f"/v1/conversations/{conversation_id}/analytics").json()
    talk = {m["name"]: m["talkTime"]["seconds"] for m in analytics["members"]}
    for name in PEOPLE:
        spoken = sum(p.end - p.start for p in media.placed if p.speaker == name)
        assert talk[name] == pytest.approx(spoken, abs=2 * TIME_TOLERANCE_S)

    [put] = symbl.state.speaker_event_puts
    assert (put.conversation_id, put.body, put.status, put.ignored) == (
        conversation_id,
        body,
        200,
        False,
    )


@pytest.mark.parametrize(("share", "owner"), [(0.3, "Carol"), (0.7, "Bob")])
def test_compact_a_message_across_two_users_spans_goes_to_the_larger_overlap(
    symbl: Client, media: CompactMedia, share: float, owner: str
) -> None:
    symbl.state.speaker_events_seconds = 0.05
    conversation_id = symbl.submit()
    line = media.placed[2]  # Carol's line; Bob hands over to Carol `share` of the way into it
    handover = line.start + share * (line.end - line.start)
    events = [
        _event("started_speaking", "Bob", 0),
        # The documentation's own examples send nanos of a second or more: accepted as such.
        _event("stopped_speaking", "Bob", 0, round(handover * 1e9)),
        _event("started_speaking", "Carol", int(handover), round(handover % 1 * 1e9)),
    ]  # Carol never stops: her span runs to the end
    assert symbl.put_speakers(conversation_id, {"speakerEvents": events}).status_code == 200

    eventually(
        lambda: symbl.speakers_of(conversation_id) == ["Bob", "Bob", owner, "Carol"],
        "the overlap rule",
    )


def test_compact_a_later_put_replaces_the_earlier_events(
    symbl: Client, media: CompactMedia
) -> None:
    symbl.state.speaker_events_seconds = 0.05
    conversation_id = symbl.submit()
    wrong = {"Alice": "Mallory", "Bob": "Mallory", "Carol": "Mallory"}
    assert symbl.put_speakers(conversation_id, _events_body(media, names=wrong)).ok
    eventually(lambda: set(symbl.speakers_of(conversation_id)) == {"Mallory"}, "the first events")

    # Bob over the first two lines only: the other two are nobody's again, not Mallory's.
    bob_until = (media.placed[1].end + media.placed[2].start) / 2
    only_bob = {
        "speakerEvents": [
            _event("started_speaking", "Bob", 0),
            _event("stopped_speaking", "Bob", int(bob_until), round(bob_until % 1 * 1e9)),
        ]
    }
    assert symbl.put_speakers(conversation_id, only_bob).ok
    eventually(
        lambda: symbl.speakers_of(conversation_id) == ["Bob", "Bob", None, None],
        "the second events",
    )
    members = symbl.get(f"/v1/conversations/{conversation_id}/members").json()["members"]
    assert [m["name"] for m in members] == ["Bob"]


def test_compact_ignored_speaker_events_leave_messages_unattributed(
    symbl: Client, media: CompactMedia
) -> None:
    symbl.state.speaker_events_seconds = 0.05
    ignored = symbl.submit()
    probe = symbl.submit()
    symbl.state.ignore_speaker_events(count=1)

    assert symbl.put_speakers(ignored, _events_body(media)).status_code == 200
    assert symbl.put_speakers(probe, _events_body(media)).status_code == 200
    # Events apply in the order their delays end: once the later PUT has applied, the ignored
    # one would have too.
    truth = [p.speaker for p in media.placed]
    eventually(lambda: symbl.speakers_of(probe) == truth, "the probe's speakers")
    assert set(symbl.speakers_of(ignored)) == {None}
    assert [(p.conversation_id, p.ignored) for p in symbl.state.speaker_event_puts] == [
        (ignored, True),
        (probe, False),
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "JSON object"),
        ({}, "speakerEvents"),
        ({"speakerEvents": []}, "speakerEvents"),
        ({"speakerEvents": ["started"]}, "speakerEvents[0]"),
        ({"speakerEvents": [_event("started", "Bob", 0)]}, "type"),
        (
            {"speakerEvents": [_event("started_speaking", "Bob", 0) | {"user": {"id": ""}}]},
            "user.id",
        ),
        ({"speakerEvents": [_event("started_speaking", "Bob", 0) | {"user": "Bob"}]}, "user"),
        (
            {"speakerEvents": [_event("started_speaking", "Bob", 0) | {"user": {"id": 7}}]},
            "user.id",
        ),
        (
            {
                "speakerEvents": [
                    _event("started_speaking", "Bob", 0) | {"user": {"id": "u", "name": 3}}
                ]
            },
            "user.name",
        ),
        (
            {
                "speakerEvents": [
                    _event("started_speaking", "Bob", 0) | {"user": {"id": "u", "email": None}}
                ]
            },
            "user.email",
        ),
        ({"speakerEvents": [_event("stopped_speaking", "Bob", -1)]}, "offset"),
        ({"speakerEvents": [_event("stopped_speaking", "Bob", 1, -5)]}, "offset"),
        ({"speakerEvents": [_event("stopped_speaking", "Bob", 1) | {"offset": 1.5}]}, "offset"),
        (
            {"speakerEvents": [_event("stopped_speaking", "Bob", 1) | {"offset": {"seconds": 1}}]},
            "offset",
        ),
        (
            {
                "speakerEvents": [
                    _event("stopped_speaking", "Bob", 1) | {"offset": {"seconds": 1.5, "nanos": 0}}
                ]
            },
            "offset",
        ),
        (
            {
                "speakerEvents": [
                    _event("stopped_speaking", "Bob", 1) | {"offset": {"seconds": True, "nanos": 0}}
                ]
            },
            "offset",
        ),
    ],
)
def test_compact_malformed_speaker_events_are_400(
    symbl: Client, media: CompactMedia, body: object, message: str
) -> None:
    conversation_id = symbl.submit()
    answer = symbl.put_speakers(conversation_id, body)
    assert answer.status_code == 400
    assert message in answer.json()["message"]
    assert set(symbl.speakers_of(conversation_id)) == {None}
    assert [p.status for p in symbl.state.speaker_event_puts] == [400]


def test_compact_speaker_events_for_an_unknown_conversation_404_and_a_bad_token_401(
    symbl: Client, media: CompactMedia
) -> None:
    unknown = symbl.put_speakers("1234567890123456", _events_body(media))
    assert unknown.status_code == 404
    assert unknown.json()["message"]

    conversation_id = symbl.submit()
    symbl.token = "not-a-token"
    refused = symbl.put_speakers(conversation_id, _events_body(media))
    assert refused.status_code == 401
    assert [p.status for p in symbl.state.speaker_event_puts] == [404, 401]


def test_compact_the_summary_names_speakers_only_after_a_refresh(
    symbl: Client, media: CompactMedia
) -> None:
    symbl.state.summary_seconds, symbl.state.summary_min_words = 0, 0
    symbl.state.summary_min_sentences = 0
    symbl.state.speaker_events_seconds = 0.05
    conversation_id = symbl.submit()
    summary_path = f"/v1/conversations/{conversation_id}/summary"

    def summary_text() -> str:
        answer = symbl.get(summary_path)
        assert answer.status_code == 200, answer.text
        return " ".join(item["text"] for item in answer.json()["summary"])

    refresh = requests.post(
        f"{symbl.base}{summary_path}", headers=symbl.auth, params={"refresh": "true"}, timeout=5
    )
    assert refresh.status_code == 202
    before = summary_text()
    assert before and not any(name in before for name in PEOPLE)

    assert symbl.put_speakers(conversation_id, _events_body(media)).ok
    truth = [p.speaker for p in media.placed]
    eventually(lambda: symbl.speakers_of(conversation_id) == truth, "speakers to be applied")
    assert summary_text() == before  # cached: unchanged until refreshed

    refresh = requests.post(
        f"{symbl.base}{summary_path}", headers=symbl.auth, params={"refresh": "true"}, timeout=5
    )
    assert refresh.status_code == 202
    after = summary_text()
    assert all(name in after for name in PEOPLE)


# ---------------------------------------------------------------------------------------------
# Sandbox readouts: billing and the truth
# ---------------------------------------------------------------------------------------------


def test_compact_billing_is_duration_times_channels(symbl: Client, media: CompactMedia) -> None:
    assert symbl.state.billed_seconds() == 0
    mono = symbl.submit()
    three = symbl.submit(
        "three.wav",
        enableSeparateRecognitionPerChannel=True,
        channelMetadata=[{"channel": c, "speaker": {"name": f"S{c}"}} for c in (1, 2, 3)],
    )

    assert symbl.state.billed_seconds(mono) == pytest.approx(media.duration, abs=0.01)
    assert symbl.state.billed_seconds(three) == pytest.approx(3 * media.duration, abs=0.03)
    assert symbl.state.billed_seconds() == pytest.approx(4 * media.duration, abs=0.04)

    readout = requests.get(f"{symbl.base}/_sandbox/billing", timeout=5)  # no token needed
    assert readout.status_code == 200
    rows = {row["conversationId"]: row for row in readout.json()["conversations"]}
    assert rows[mono]["billedSeconds"] == pytest.approx(media.duration, abs=0.01)
    assert rows[mono]["audioSeconds"] == pytest.approx(media.duration, abs=0.01)
    assert rows[three]["billedSeconds"] == pytest.approx(3 * media.duration, abs=0.03)
    assert rows[three]["jobs"] == 1 and rows[three]["name"] == TOPIC
    assert readout.json()["totalBilledSeconds"] == pytest.approx(4 * media.duration, abs=0.04)


def test_compact_truth_reports_true_and_attributed_speakers_per_word(
    symbl: Client, media: CompactMedia
) -> None:
    symbl.state.speaker_events_seconds = 0.05
    conversation_id = symbl.submit()
    path = f"{symbl.base}/_sandbox/conversations/{conversation_id}/truth"

    before = requests.get(path, timeout=5).json()
    scripted = [(w.text, p.speaker) for p in media.placed for w in p.template.words]
    assert [(w["text"], w["trueSpeaker"]) for w in before["words"]] == scripted
    assert {w["attributedSpeaker"] for w in before["words"]} == {None}
    assert before["templates"] == sorted({p.template.key for p in media.placed})
    first = before["words"][0]
    assert first["start"] == pytest.approx(
        media.placed[0].start + media.placed[0].template.words[0].start, abs=TIME_TOLERANCE_S
    )

    swapped = {"Alice": "Bob", "Bob": "Alice", "Carol": "Carol"}  # a pipeline bug, measured
    assert symbl.put_speakers(conversation_id, _events_body(media, names=swapped)).ok
    eventually(
        lambda: requests.get(path, timeout=5).json()["words"][0]["attributedSpeaker"] == "Bob",
        "the swapped speakers",
    )
    words = requests.get(path, timeout=5).json()["words"]
    assert [(w["trueSpeaker"], w["attributedSpeaker"]) for w in words] == [
        (speaker, swapped[speaker]) for _, speaker in scripted
    ]
    truth = symbl.state.truth(conversation_id)
    assert truth is not None
    correct = sum(w.correct for w in truth.words)
    assert correct == sum(1 for _, speaker in scripted if speaker == "Carol")
    assert {w["attributedUserId"] for w in words} == {"u-alice", "u-bob", "u-carol"}

    unknown = requests.get(f"{symbl.base}/_sandbox/conversations/42/truth", timeout=5)
    assert unknown.status_code == 404

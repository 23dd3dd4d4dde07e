"""The segment map: which span of the submitted audio file is whose speech, and when it was said.

One map per merged file, stored as JSON next to it (`merged/<meeting>/<run>.segments.json`) and
referenced from the meeting item. It is the single source of speaker attribution, transcript
times and talk time:

- compact layout: one mono file of speech stretches laid out one after another; each segment is
  one stretch of one speaker, `[output_start, output_end)` in the file, starting at
  `timeline_start` on the meeting's timeline (seconds from the earliest participant's
  `recording_start`). Segments never overlap in the file; overlapping speech in the meeting
  appears as two segments in a row (serialised), so their timeline spans may overlap.
- multichannel layout: one segment per channel, the whole file, `timeline_start` 0.

Time inside a segment runs at the meeting's own rate: `t` in the file is
`timeline_start + (t - output_start)` on the meeting's clock.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = 1
CONTENT_TYPE = "application/json"
Layout = Literal["compact", "multichannel"]
NANOS = 1_000_000_000


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MapSpeaker(_Frozen):
    """A participant as the provider is told about it: a stable id, a name, an email."""

    id: str = Field(min_length=1, max_length=64)
    name: str
    email: str | None = None


class Segment(_Frozen):
    speaker: str  # MapSpeaker.id
    output_start: float = Field(ge=0)
    output_end: float = Field(ge=0)
    timeline_start: float = Field(ge=0)
    # Seconds of detected speech inside the segment (padding and kept pauses excluded): talk time.
    talk_seconds: float = Field(ge=0)
    channel: int = Field(default=1, ge=1)  # 1-based; always 1 in the compact layout

    @property
    def length(self) -> float:
        return self.output_end - self.output_start

    @property
    def timeline_end(self) -> float:
        return self.timeline_start + self.length

    def to_timeline(self, output_seconds: float) -> float:
        return self.timeline_start + (output_seconds - self.output_start)


class Breakdown(_Frozen):
    """What the compact file is made of, in seconds of the file (they add up to its length)."""

    speech: float = 0.0  # detected speech heard once
    overlap: float = 0.0  # detected speech that overlapped another speaker's, serialised
    padding: float = 0.0  # around speech and pauses kept inside a stretch
    gaps: float = 0.0  # inserted silence between stretches


class SegmentMap(_Frozen):
    schema_version: Literal[1] = 1
    layout: Layout
    duration_seconds: float = Field(ge=0)  # of the file
    meeting_seconds: float = Field(ge=0)  # of the meeting timeline
    speakers: list[MapSpeaker]
    segments: list[Segment]  # sorted by (channel, output_start)
    breakdown: Breakdown = Field(default_factory=Breakdown)

    @model_validator(mode="after")
    def _consistent(self) -> SegmentMap:
        ids = [s.id for s in self.speakers]
        if len(set(ids)) != len(ids):
            raise ValueError("speaker ids must be unique")
        known = set(ids)
        previous: dict[int, float] = {}
        for segment in self.segments:
            if segment.speaker not in known:
                raise ValueError(f"segment names unknown speaker {segment.speaker!r}")
            if segment.output_end <= segment.output_start:
                raise ValueError("a segment must have a positive length")
            if segment.output_end > self.duration_seconds + 1e-6:
                raise ValueError("a segment ends after the file")
            last = previous.get(segment.channel, -1.0)
            if self.layout == "compact" and segment.output_start < last - 1e-9:
                raise ValueError("compact segments must be sorted and must not overlap")
            previous[segment.channel] = segment.output_end
        return self

    # ---- queries ---------------------------------------------------------------------------

    def speaker(self, speaker_id: str) -> MapSpeaker:
        for candidate in self.speakers:
            if candidate.id == speaker_id:
                return candidate
        raise KeyError(speaker_id)

    def segment_at(self, output_seconds: float, *, channel: int = 1) -> Segment | None:
        """The segment holding `output_seconds`, else the nearest one on that channel (a word
        the recogniser places a little outside every segment, in a gap, still belongs to the
        stretch it was cut from); None when the channel has no segment."""
        segments = [s for s in self.segments if s.channel == channel]
        if not segments:
            return None
        starts = [s.output_start for s in segments]
        index = bisect.bisect_right(starts, output_seconds) - 1
        candidates = [segments[i] for i in (index, index + 1) if 0 <= i < len(segments)]

        def distance(segment: Segment) -> float:
            if segment.output_start <= output_seconds < segment.output_end:
                return 0.0
            return min(
                abs(output_seconds - segment.output_start), abs(output_seconds - segment.output_end)
            )

        return min(candidates, key=distance)

    def talk_seconds(self) -> dict[str, float]:
        """Detected speech per speaker id, every speaker listed (0 for one never heard)."""
        talk = {s.id: 0.0 for s in self.speakers}
        for segment in self.segments:
            talk[segment.speaker] += segment.talk_seconds
        return talk

    # ---- storage ---------------------------------------------------------------------------

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes) -> SegmentMap:
        return cls.model_validate_json(text)


def speaker_id(name: str, email: str | None) -> str:
    """A participant's stable id within a meeting: from the email when known, else the name, so
    a participant who left and rejoined (two files) is one speaker."""
    basis = (email or "").strip().casefold() or " ".join(name.casefold().split())
    return "u-" + hashlib.sha256(basis.encode()).hexdigest()[:16]


def segment_map_key(merged_key: str) -> str:
    """The map's S3 key, next to the merged file's."""
    stem = merged_key.rsplit(".", 1)[0] if "." in merged_key.rsplit("/", 1)[-1] else merged_key
    return f"{stem}.segments.json"


def store_segment_map(s3: Any, bucket: str, key: str, segment_map: SegmentMap) -> None:
    s3.put_object(
        Bucket=bucket, Key=key, Body=segment_map.to_json().encode(), ContentType=CONTENT_TYPE
    )


def load_segment_map(s3: Any, bucket: str, key: str) -> SegmentMap:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return SegmentMap.from_json(body)


# ---- speaker events --------------------------------------------------------------------------


def _offset(seconds: float) -> dict[str, int]:
    """Symbl's `{seconds, nanos}`, normalised (0 <= nanos < 1e9)."""
    total = round(max(0.0, seconds) * NANOS)
    return {"seconds": total // NANOS, "nanos": total % NANOS}


def speaker_events(segment_map: SegmentMap) -> list[dict[str, Any]]:
    """The body's `speakerEvents` for Symbl's `PUT /v1/conversations/{id}/speakers`: a
    started/stopped pair per segment, on the submitted file's clock, sorted by offset (a stop
    before a start at the same offset), offsets normalised."""
    events: list[tuple[int, int, dict[str, Any]]] = []
    for segment in segment_map.segments:
        person = segment_map.speaker(segment.speaker)
        user: dict[str, Any] = {"id": person.id, "name": person.name}
        if person.email:
            user["email"] = person.email
        for kind, at, order in (
            ("started_speaking", segment.output_start, 1),
            ("stopped_speaking", segment.output_end, 0),
        ):
            offset = _offset(at)
            events.append(
                (
                    offset["seconds"] * NANOS + offset["nanos"],
                    order,
                    {"type": kind, "user": user, "offset": offset},
                )
            )
    events.sort(key=lambda item: (item[0], item[1]))
    return [event for _, _, event in events]


# ---- attribution of a transcript -------------------------------------------------------------


class TimedWord(_Frozen):
    text: str
    start: float  # seconds in the submitted file
    end: float


class AttributedLine(_Frozen):
    speaker_id: str
    start_seconds: float  # on the meeting timeline
    text: str


def attribute_words(
    segment_map: SegmentMap, words: Iterable[TimedWord], *, channel: int = 1
) -> list[AttributedLine]:
    """Words in file order become lines: each word goes to the segment holding its midpoint
    (its speaker, its meeting time), and a new line starts wherever the segment changes."""
    lines: list[tuple[Segment, float, list[str]]] = []
    for word in words:
        middle = (word.start + word.end) / 2
        segment = segment_map.segment_at(middle, channel=channel)
        if segment is None:
            continue
        if lines and lines[-1][0] is segment:
            lines[-1][2].append(word.text)
        else:
            lines.append(
                (segment, segment.to_timeline(max(word.start, segment.output_start)), [word.text])
            )
    return [
        AttributedLine(
            speaker_id=segment.speaker, start_seconds=round(start, 3), text=" ".join(text)
        )
        for segment, start, text in lines
    ]


def map_speakers(
    tracks: Iterable[tuple[str, str, str | None]],
) -> tuple[list[MapSpeaker], dict[str, str]]:
    """The map's speakers from participant tracks given as (key, name, email): one per
    `speaker_id`, in track order (a participant who rejoined has several tracks and stays one
    speaker), and each track's speaker id."""
    speakers: dict[str, MapSpeaker] = {}
    of_track: dict[str, str] = {}
    for key, name, email in tracks:
        ident = speaker_id(name, email)
        speakers.setdefault(ident, MapSpeaker(id=ident, name=name, email=email))
        of_track[key] = ident
    return list(speakers.values()), of_track

"""The transcript document a completed job writes (reference §4), made from what the recogniser
heard: every word at the time it is heard in the file, nothing else.

Shape: `{"jobName", "accountId", "status": "COMPLETED", "results": {"transcripts":
[{"transcript"}], "items": [...], "audio_segments": [...]}}`; with ChannelIdentification also
`results.channel_labels` = `{"channels": [{"channel_label": "ch_0", "items": [...]}, ...],
"number_of_channels": n}` and a `channel_label` on every item and segment.

Decisions where the reference is silent:
- A scripted word's trailing `.`, `,`, `?` or `!` becomes a punctuation item right after it
  (`"confidence": "0.0"`, no times); other symbols around a word are dropped, those inside it
  ("Let's", "Ruiz-Soto") kept.
- Items are in the order their words are heard (all channels together, a word's punctuation
  right after it): two voices overlapping in a mono file interleave, as a recogniser hearing one
  stream would.
- `audio_segments` (fields UNCONFIRMED in AWS's docs): one per line heard, `items` the indexes
  of its items. No `speaker_labels`: the fake does not diarize.
- Confidence of a heard word is "0.99": the fake hears a word or does not.
- Times are seconds as strings, at most 3 decimals without trailing zeros ("0.64", "12.0").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sandbox.fingerprint import HeardWord, Occurrence

_PUNCTUATION = ".,?!"
WORD_CONFIDENCE = "0.99"


@dataclass(frozen=True)
class HeardOccurrence:
    """A line heard on a channel (None: the file recognised as one mixed stream)."""

    channel: int | None  # 0-based
    occurrence: Occurrence


def seconds(value: float) -> str:
    """Seconds as Transcribe writes them: a string, at most 3 decimals."""
    text = f"{round(value, 3):.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def split_token(token: str) -> tuple[str, tuple[str, ...]] | None:
    """A scripted word's spoken part and the punctuation marks after it; None when nothing of
    it is spoken (a lone dash)."""
    start, end = 0, len(token)
    while start < end and not token[start].isalnum():
        start += 1
    while end > start and not token[end - 1].isalnum():
        end -= 1
    if start == end:
        return None
    marks: list[str] = []
    for mark in token[end:]:
        if mark in _PUNCTUATION and (not marks or marks[-1] != mark):
            marks.append(mark)
    return token[start:end], tuple(marks)


def _label(channel: int | None) -> dict[str, str]:
    return {} if channel is None else {"channel_label": f"ch_{channel}"}


@dataclass(frozen=True)
class _Word:
    heard: HeardWord
    channel: int | None
    segment: int  # index of its occurrence in time order


def _text(items: Sequence[dict[str, Any]]) -> str:
    text = ""
    for item in items:
        content = item["alternatives"][0]["content"]
        text += content if item["type"] == "punctuation" or not text else " " + content
    return text


def transcript_document(
    job_name: str,
    account_id: str,
    heard: Sequence[HeardOccurrence],
    *,
    number_of_channels: int | None,
) -> dict[str, Any]:
    """The output JSON of a completed job; `number_of_channels` None: no channel identification."""
    ordered = sorted(
        (h for h in heard if h.occurrence.words),
        key=lambda h: (h.occurrence.start, h.channel or 0),
    )
    words = sorted(
        (
            _Word(word, h.channel, index)
            for index, h in enumerate(ordered)
            for word in h.occurrence.words
        ),
        key=lambda w: (w.heard.start, w.channel or 0, w.segment),
    )
    items: list[dict[str, Any]] = []
    segment_items: list[list[int]] = [[] for _ in ordered]
    for word in words:
        split = split_token(word.heard.text)
        if split is None:
            continue
        spoken, marks = split
        label = _label(word.channel)
        segment_items[word.segment].append(len(items))
        items.append(
            {
                "id": len(items),
                "type": "pronunciation",
                "start_time": seconds(word.heard.start),
                "end_time": seconds(word.heard.end),
                **label,
                "alternatives": [{"confidence": WORD_CONFIDENCE, "content": spoken}],
            }
        )
        for mark in marks:
            segment_items[word.segment].append(len(items))
            items.append(
                {
                    "id": len(items),
                    "type": "punctuation",
                    **label,
                    "alternatives": [{"confidence": "0.0", "content": mark}],
                }
            )
    segments = [
        {
            "id": index,
            "transcript": _text([items[i] for i in ids]),
            "start_time": seconds(h.occurrence.start),
            "end_time": seconds(h.occurrence.end),
            **_label(h.channel),
            "items": ids,
        }
        for index, (h, ids) in enumerate(zip(ordered, segment_items, strict=True))
    ]
    results: dict[str, Any] = {"transcripts": [{"transcript": _text(items)}], "items": items}
    if number_of_channels is not None:
        results["channel_labels"] = {
            "channels": [
                {
                    "channel_label": f"ch_{channel}",
                    "items": [i for i in items if i.get("channel_label") == f"ch_{channel}"],
                }
                for channel in range(number_of_channels)
            ],
            "number_of_channels": number_of_channels,
        }
    results["audio_segments"] = segments
    return {"jobName": job_name, "accountId": account_id, "status": "COMPLETED", "results": results}

"""What each synthetic meeting's speakers were scripted to say, and when.

The synthetic meeting generator writes one JSON document per meeting into a directory; the fake
Symbl reads them to play a perfect recogniser: given the conversation name (the meeting topic the
submitter sends), a speaker name and a time span in the submitted file, it returns the scripted
sentence. Times are seconds from the timeline origin, which is the earliest participant
`recording_start` of the meeting (t=0 of the merged file).

Each meeting also lists its *templates*: every line's render, once per (speaker, text), with its
word spans, so a recogniser can find what was said from the audio alone (`sandbox.fingerprint`).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sandbox.fingerprint import Template


@dataclass(frozen=True)
class ScriptLine:
    speaker: str
    text: str
    start: float  # seconds from the timeline origin
    end: float
    # "speech", or "backchannel": a listener's short "yeah" inside someone else's line. Documents
    # written before the field existed have none and read as speech.
    kind: str = "speech"


@dataclass
class ScriptedMeeting:
    uuid: str
    topic: str
    speakers: list[str]
    lines: list[ScriptLine] = field(default_factory=list)
    # The renders of the lines placed, one per (speaker, text). Documents written before the field
    # existed have none.
    templates: list[Template] = field(default_factory=list)

    def to_json(self) -> str:
        document = {
            "uuid": self.uuid,
            "topic": self.topic,
            "speakers": self.speakers,
            "lines": [asdict(line) for line in self.lines],
            "templates": [template.to_dict() for template in self.templates],
        }
        return json.dumps(document, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> ScriptedMeeting:
        raw = json.loads(text)
        return cls(
            uuid=raw["uuid"],
            topic=raw["topic"],
            speakers=list(raw["speakers"]),
            lines=[ScriptLine(**line) for line in raw["lines"]],
            templates=[Template.from_dict(item) for item in raw.get("templates", [])],
        )


class MeetingRegistry:
    """A directory of scripted meetings shared by the generator and the fake Symbl."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def _path(self, topic: str) -> Path:
        return self.directory / (hashlib.sha256(topic.encode()).hexdigest()[:32] + ".json")

    def register(self, meeting: ScriptedMeeting) -> None:
        path = self._path(meeting.topic)
        tmp = path.with_suffix(".tmp")
        with self._lock:
            tmp.write_text(meeting.to_json(), encoding="utf-8")
            os.replace(tmp, path)

    def get(self, topic: str) -> ScriptedMeeting | None:
        path = self._path(topic)
        if not path.exists():
            return None
        return ScriptedMeeting.from_json(path.read_text(encoding="utf-8"))

    def templates(self, topic: str) -> list[Template]:
        """The templates of the meeting registered under `topic` ([] for an unknown topic)."""
        meeting = self.get(topic)
        return meeting.templates if meeting is not None else []

    def all_templates(self) -> list[Template]:
        """Every template of every registered meeting, once per key (a recogniser that is not
        told which meeting a file belongs to, such as the fake Transcribe, listens for all)."""
        found: dict[str, Template] = {}
        for path in sorted(self.directory.glob("*.json")):
            try:
                meeting = ScriptedMeeting.from_json(path.read_text(encoding="utf-8"))
            except (OSError, ValueError, KeyError, TypeError):
                continue  # being replaced right now, or not a meeting
            for template in meeting.templates:
                found.setdefault(template.key, template)
        return list(found.values())

    def line_at(self, topic: str, speaker: str, start: float, end: float) -> ScriptLine | None:
        """The scripted line of `speaker` that overlaps [start, end] most, or None."""
        meeting = self.get(topic)
        if meeting is None:
            return None
        best: ScriptLine | None = None
        best_overlap = 0.0
        for line in meeting.lines:
            if line.speaker != speaker:
                continue
            overlap = min(end, line.end) - max(start, line.start)
            if overlap > best_overlap:
                best, best_overlap = line, overlap
        return best

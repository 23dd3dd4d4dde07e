"""The job's media: read from S3 like the service does, probed with ffprobe, and held to the
documented limits (reference §1-§3). Every problem is a FailureReason: the job was accepted and
ends FAILED, as the asynchronous API reports media it cannot use.

Decisions where the reference is silent:
- Checks run in this order: access, size, decodable audio, a supported container, MediaFormat
  against the detected container, sample rate (range, then against the detected rate), channels,
  duration. Real Transcribe's order is unknown; one file rarely breaks two rules.
- A detected container counts as `mp4`/`m4a` for ffprobe's "mov,mp4,m4a,..." family and as
  `webm` for "matroska,webm"; anything else ffprobe decodes (AAC in ADTS, say) is
  "Unsupported media format".
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from sandbox.fake_symbl.recogniser import probe_audio
from sandbox.fake_transcribe.model import (
    FILE_TOO_LARGE,
    INVALID_SAMPLE_RATE,
    MAX_CHANNELS,
    MAX_DURATION_SECONDS,
    MAX_FILE_BYTES,
    MAX_SAMPLE_RATE,
    MEDIA_FORMAT_MISMATCH,
    MEDIA_NOT_ACCESSIBLE,
    MEDIA_TOO_LONG,
    MEDIA_TOO_SHORT,
    MIN_DURATION_SECONDS,
    MIN_SAMPLE_RATE,
    SAMPLE_RATE_MISMATCH,
    TOO_MANY_CHANNELS,
    UNSUPPORTED_MEDIA_FORMAT,
)

logger = logging.getLogger(__name__)

_CONTAINERS: dict[str, frozenset[str]] = {
    "mp3": frozenset({"mp3"}),
    "mp4": frozenset({"mp4", "mov", "m4a"}),
    "m4a": frozenset({"mp4", "mov", "m4a"}),
    "wav": frozenset({"wav"}),
    "flac": frozenset({"flac"}),
    "ogg": frozenset({"ogg"}),
    "amr": frozenset({"amr"}),
    "webm": frozenset({"webm", "matroska"}),
}


class MediaFailure(Exception):
    """The job cannot use its media; `reason` is its FailureReason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class MediaInfo:
    """What the job learnt of its media."""

    media_format: str  # the MediaFormat the container counts as
    sample_rate: int
    channels: int
    duration: float


def fetch(s3: Any, bucket: str, key: str, directory: Path) -> Path:
    """The object, streamed to a file in `directory`. MediaFailure when it cannot be read or is
    too large (its size is known before anything is downloaded)."""
    try:
        answer = s3.get_object(Bucket=bucket, Key=key)
    except (ClientError, BotoCoreError) as exc:
        logger.info("fake Transcribe cannot read s3://%s/%s: %s", bucket, key, exc)
        raise MediaFailure(MEDIA_NOT_ACCESSIBLE) from exc
    body = answer["Body"]
    try:
        if int(answer.get("ContentLength", 0)) > MAX_FILE_BYTES:
            raise MediaFailure(FILE_TOO_LARGE)
        with tempfile.NamedTemporaryFile(dir=directory, suffix=".media", delete=False) as out:
            path = Path(out.name)
            try:
                for chunk in body.iter_chunks(chunk_size=1 << 16):
                    out.write(chunk)
            except (ClientError, BotoCoreError, OSError) as exc:
                path.unlink(missing_ok=True)
                raise MediaFailure(MEDIA_NOT_ACCESSIBLE) from exc
        return path
    finally:
        body.close()


def _media_format(names: frozenset[str]) -> str | None:
    return next((fmt for fmt, family in _CONTAINERS.items() if family & names), None)


def inspect(path: Path, media_format: str | None, sample_rate: int | None) -> MediaInfo:
    """The file's format, rate, channels and duration, held to the limits; MediaFailure names
    the FailureReason of the first rule it breaks."""
    try:
        audio = probe_audio(path)
    except (ValueError, subprocess.TimeoutExpired) as exc:
        raise MediaFailure(UNSUPPORTED_MEDIA_FORMAT) from exc
    names, detected_rate = audio.formats, audio.sample_rate
    detected = _media_format(names)
    if detected is None:
        raise MediaFailure(UNSUPPORTED_MEDIA_FORMAT)
    if media_format is not None and not _CONTAINERS[media_format] & names:
        raise MediaFailure(MEDIA_FORMAT_MISMATCH)
    if sample_rate is not None:
        if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
            raise MediaFailure(INVALID_SAMPLE_RATE)
        if sample_rate != detected_rate:
            raise MediaFailure(SAMPLE_RATE_MISMATCH)
    elif not MIN_SAMPLE_RATE <= detected_rate <= MAX_SAMPLE_RATE:
        raise MediaFailure(INVALID_SAMPLE_RATE)
    if audio.channels > MAX_CHANNELS:
        raise MediaFailure(TOO_MANY_CHANNELS)
    if audio.duration > MAX_DURATION_SECONDS:
        raise MediaFailure(MEDIA_TOO_LONG)
    if audio.duration < MIN_DURATION_SECONDS:
        raise MediaFailure(MEDIA_TOO_SHORT)
    return MediaInfo(
        media_format=media_format or detected,
        sample_rate=detected_rate,
        channels=audio.channels,
        duration=audio.duration,
    )

"""A local Amazon Transcribe (batch jobs) for development and tests.

Why: real AWS is out of reach from the sandbox and moto's Transcribe writes no transcript, never
fails a job and sends no event (reference §12). The AWS provider has to be proven against
something that behaves like the service: the same awsJson1.1 actions, validation, errors,
quota, job life cycle, transcript JSON in the caller's bucket and EventBridge completion event.
boto3 reaches it through `AWS_ENDPOINT_URL_TRANSCRIBE` (or `endpoint_url`); every other AWS
service stays on moto. Facts follow ../shared/reference/aws-speech.md (cited as §n).

Like the fake Symbl it is a measuring instrument: it reads the media from S3, probes it with
ffprobe, and recognises the scripted lines the audio really holds (`sandbox.fingerprint`, the
templates of every meeting in the `MeetingRegistry`), so each word's times are where the word is
heard in the file and a clipped word is missing. It records every Start (refused ones too), every
event (sent or lost), and what each job bills.

By concern (each module lists the decisions it took where the reference is silent):
- `validation`: StartTranscriptionJob's synchronous checks (BadRequestException).
- `media`: reading the media from S3, ffprobe, the documented FailureReasons.
- `transcript`: the output JSON (§4) from what was heard.
- `state`: `FakeTranscribeState`, the job engine, output, events, billing, knobs.
- `app`: the Flask app (`create_app`) and `serve`.
- `model`: what the modules share (statuses, messages, records).
"""

from sandbox.fake_transcribe.app import create_app, credential_scope_error, serve
from sandbox.fake_transcribe.media import MediaInfo
from sandbox.fake_transcribe.model import (
    ACTIVE_STATUSES,
    CONFLICT_MESSAGE,
    MEDIA_NOT_ACCESSIBLE,
    NOT_FOUND_MESSAGE,
    OUTPUT_NOT_WRITABLE,
    SPEAKER_LABELS_UNSUPPORTED,
    TERMINAL_STATUSES,
    TOO_MANY_CHANNELS,
    UNSUPPORTED_MEDIA_FORMAT,
    EventRecord,
    JobBilling,
    JobRecord,
    JobStatus,
    OutputWrite,
    StartAttempt,
    TranscribeError,
)
from sandbox.fake_transcribe.state import FakeTranscribeState
from sandbox.fake_transcribe.transcript import split_token, transcript_document

__all__ = [
    "ACTIVE_STATUSES",
    "CONFLICT_MESSAGE",
    "MEDIA_NOT_ACCESSIBLE",
    "NOT_FOUND_MESSAGE",
    "OUTPUT_NOT_WRITABLE",
    "SPEAKER_LABELS_UNSUPPORTED",
    "TERMINAL_STATUSES",
    "TOO_MANY_CHANNELS",
    "UNSUPPORTED_MEDIA_FORMAT",
    "EventRecord",
    "FakeTranscribeState",
    "JobBilling",
    "JobRecord",
    "JobStatus",
    "MediaInfo",
    "OutputWrite",
    "StartAttempt",
    "TranscribeError",
    "create_app",
    "credential_scope_error",
    "serve",
    "split_token",
    "transcript_document",
]

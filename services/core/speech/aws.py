"""The AWS adapter of the speech-analytics seam: Amazon Transcribe for the transcript, a Bedrock
model for the summary, topics, questions, action items and follow-ups. Everything stays in the
deployment's own account; the functions' IAM roles are the only credentials.

Submission: a batch job on the merged file by its `s3://` URI, named deterministically per meeting
and attempt (`job_name`), so a retried submission (a lost answer, a crash before the job was
recorded, botocore's own retry) finds the job it already started: `ConflictException` means the
job exists, and it is adopted. Start is therefore always safe to send again, and no submission's
outcome is ever unknown. The transcript goes to our bucket under `transcripts/`, encrypted with
the stack's key. Completion arrives as the EventBridge event "Transcribe Job State Change"
(services/submitter/job_events.py), confirmed with `GetTranscriptionJob`; events are best-effort,
so the reconciler asks about jobs whose event never came.

Insights: the transcript's words, timed in the submitted file, are attributed to speakers and
meeting time through the segment map (a compact file: exact for any number of speakers, no
diarization). The mixed-audio fallback is diarized by Transcribe (`spk_0`...). The lines go to
Bedrock (services/core/speech/bedrock.py).

Facts: ../shared/reference/aws-speech.md. Assumed where it says UNCONFIRMED: an unknown job may be
answered `NotFoundException` or `BadRequestException` ("couldn't be found"): both read as gone.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from pathlib import PurePosixPath
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from services.core import aws
from services.core.errors import NotFound, PermanentError, TransientError
from services.core.insights.document import (
    InsightsDocument,
    SpeakerTalkTime,
    Task,
    Utterance,
    mapped_speakers,
    mapped_transcript,
    meeting_info,
)
from services.core.observability import logger
from services.core.recordings import Recording
from services.core.s3_stream import meeting_from_key, meeting_key
from services.core.speech.bedrock import (
    ModelBusy,
    TranscriptLine,
    bedrock_client,
    extract_insights,
)
from services.core.speech.provider import (
    ConcurrencyLimitReached,
    Insights,
    InsightsRequest,
    JobStatus,
    ProviderName,
    SpeechJob,
    SubmittedJob,
    Wait,
)
from services.core.speech.segment_map import TimedWord

TRANSCRIPTS_PREFIX = "transcripts/"
MEDIA_FORMATS = frozenset({"mp3", "mp4", "wav", "flac", "ogg", "amr", "webm", "m4a"})
# Transcribe's speaker labels: 2-30 speakers.
MIN_SPEAKER_LABELS, MAX_SPEAKER_LABELS = 2, 30
_STATUS = {
    "QUEUED": JobStatus.SCHEDULED,
    "IN_PROGRESS": JobStatus.IN_PROGRESS,
    "COMPLETED": JobStatus.COMPLETED,
    "FAILED": JobStatus.FAILED,
}
_THROTTLED = frozenset(
    {"LimitExceededException", "ThrottlingException", "TooManyRequestsException"}
)


MAX_JOB_NAME = 200


def job_name(stack_name: str, meeting_uuid: str, attempt: int) -> str:
    """`<stack>-<meeting key>-<attempt>`. The meeting key (base64url of the UUID, as in S3 keys)
    keeps Transcribe's name rules (1-200 of [0-9a-zA-Z._-]) for any Zoom UUID, and leads an
    event straight to its meeting by key (`job_meeting`), strongly consistent, where the job
    index lags behind writes. The stack's prefix is what the EventBridge rule and the IAM
    policies match."""
    if attempt < 1:
        raise ValueError("attempts count from 1")
    name = f"{stack_name}-{meeting_key(meeting_uuid)}-{attempt}"
    if len(name) > MAX_JOB_NAME:
        raise PermanentError(f"meeting UUID too long for a Transcribe job name ({len(name)})")
    return name


def job_meeting(stack_name: str, name: str) -> str | None:
    """The meeting a job name of this stack names, or None when it is not one of ours."""
    prefix = f"{stack_name}-"
    key, dash, attempt = name.removeprefix(prefix).rpartition("-")
    if not name.startswith(prefix) or not dash or not key or not attempt.isdigit():
        return None
    return meeting_from_key(key)


def transcript_key(meeting_uuid: str, name: str) -> str:
    return f"{TRANSCRIPTS_PREFIX}{meeting_key(meeting_uuid)}/{name}.json"


@dataclass(frozen=True)
class AwsSpeechConfig:
    stack_name: str
    media_bucket: str
    language_code: str = "en-US"
    transcript_kms_key_arn: str = ""
    model_id: str = "amazon.nova-lite-v1:0"
    context_tokens: int = 300_000
    max_output_tokens: int = 4_096
    # A throttled or not-ready model: the notes wait this long, at most this many times, without
    # spending a delivery of the notify message; then the queue's own retries take over.
    model_wait_seconds: int = 60
    model_max_waits: int = 10


MODEL_WAIT = "model_wait"  # attempts counter: deliveries that found the model busy


def _missing_job(error: ClientError) -> bool:
    code = aws.error_code(error)
    message = str(error.response.get("Error", {}).get("Message", "")).casefold()
    message = message.replace("\u2019", "'")  # however the apostrophe is typeset
    return code == "NotFoundException" or (
        code == "BadRequestException" and "couldn't be found" in message
    )


def _transient(error: ClientError | BotoCoreError, what: str) -> TransientError:
    detail = aws.error_code(error) if isinstance(error, ClientError) else type(error).__name__
    return TransientError(f"{what}: {detail}")


class AwsSpeech:
    def __init__(
        self,
        config: AwsSpeechConfig,
        *,
        transcribe: Callable[[], Any] = lambda: aws.client("transcribe"),
        s3: Callable[[], Any] = lambda: aws.client("s3"),
        bedrock: Callable[[], Any] | None = None,
    ) -> None:
        self.config = config
        self._transcribe = transcribe
        self._s3 = s3
        self._bedrock = bedrock

    @property
    def provider(self) -> ProviderName:
        return "aws"

    # ---- jobs -----------------------------------------------------------------------------

    def start_request(self, job: SpeechJob) -> dict[str, Any]:
        """StartTranscriptionJob's parameters for `job`."""
        if job.channels:
            # The meeting ends FAILED with the reason; once the layout is fixed, a replay
            # merges it again as a compact file.
            raise PermanentError(
                "Amazon Transcribe takes at most 2 channels and the AWS provider attributes "
                "speakers through the segment map: set AUDIO_LAYOUT=compact, then replay"
            )
        name = job_name(self.config.stack_name, job.meeting_uuid, job.attempt)
        params: dict[str, Any] = {
            "TranscriptionJobName": name,
            "Media": {"MediaFileUri": f"s3://{job.media_bucket}/{job.media_key}"},
            "LanguageCode": self.config.language_code,
            "OutputBucketName": job.media_bucket,
            "OutputKey": transcript_key(job.meeting_uuid, name),
        }
        suffix = PurePosixPath(job.media_key).suffix.lstrip(".").lower()
        if suffix in MEDIA_FORMATS:
            params["MediaFormat"] = suffix
        if self.config.transcript_kms_key_arn:
            params["OutputEncryptionKMSKeyId"] = self.config.transcript_kms_key_arn
        if job.diarize:
            speakers = job.diarization_speakers or MAX_SPEAKER_LABELS
            params["Settings"] = {
                "ShowSpeakerLabels": True,
                "MaxSpeakerLabels": max(MIN_SPEAKER_LABELS, min(MAX_SPEAKER_LABELS, speakers)),
            }
        return params

    def submit(self, job: SpeechJob) -> SubmittedJob:
        params = self.start_request(job)
        name = params["TranscriptionJobName"]
        submitted = SubmittedJob(job_id=name, conversation_id=params["OutputKey"])
        try:
            self._transcribe().start_transcription_job(**params)
        except ClientError as e:
            code = aws.error_code(e)
            if code == "ConflictException":
                # Started before (a retry, a crash before the record): adopt that job.
                logger.info("transcription job exists; adopted", job_id=name)
                return submitted
            if code in _THROTTLED:
                # Over the concurrent-job quota (or the Start rate): wait, spend nothing.
                raise ConcurrencyLimitReached(f"Transcribe refused the job: {code}") from e
            if code == "BadRequestException":
                raise PermanentError(f"Transcribe refused the job: {e}") from e
            raise _transient(e, "StartTranscriptionJob") from e
        except BotoCoreError as e:
            # The name makes sending again safe: a job that did start is adopted then.
            raise _transient(e, "StartTranscriptionJob") from e
        return submitted

    def job_status(self, job_id: str) -> JobStatus:
        try:
            job = self._transcribe().get_transcription_job(TranscriptionJobName=job_id)
        except ClientError as e:
            if _missing_job(e):
                raise NotFound(f"Transcribe knows no job {job_id}") from e
            raise _transient(e, "GetTranscriptionJob") from e
        except BotoCoreError as e:
            raise _transient(e, "GetTranscriptionJob") from e
        details = job.get("TranscriptionJob") or {}
        status = _STATUS.get(str(details.get("TranscriptionJobStatus")))
        if status is None:
            raise TransientError(f"job {job_id}: unexpected status {details!r:.200}")
        if status == JobStatus.FAILED:
            logger.warning(
                "transcription job failed", job_id=job_id, reason=details.get("FailureReason")
            )
        return status

    def forget(self, recording: Recording) -> None:
        """Delete the job's record (the transcript stays in our bucket under its retention)."""
        if not recording.job_id:
            return
        try:
            self._transcribe().delete_transcription_job(TranscriptionJobName=recording.job_id)
        except ClientError as e:
            if not _missing_job(e):
                raise

    # ---- insights -------------------------------------------------------------------------

    def insights(self, request: InsightsRequest) -> Insights | Wait:
        recording = request.recording
        if not recording.conversation_id:
            raise PermanentError("transcribed meeting has no transcript key")
        transcript = self._read_transcript(recording.conversation_id)
        segment_map = request.segment_map
        if segment_map is not None and segment_map.layout == "compact":
            utterances = mapped_transcript(segment_map, transcript_words(transcript))
            speakers = mapped_speakers(segment_map)
        else:
            utterances, speakers = diarized_transcript(transcript)
        lines = [TranscriptLine(u.speaker, u.start_seconds, u.text) for u in utterances]
        duration = _duration_seconds(recording)
        document = InsightsDocument(
            generated_at=request.now.astimezone(UTC).isoformat(timespec="seconds"),
            conversation_id=recording.job_id or recording.conversation_id,
            meeting=meeting_info(recording, duration),
            speakers=speakers,
            transcript=utterances,
            provider=self.provider,
        )
        if not lines:
            logger.info("the transcript holds no words: nothing to summarise")
            return Insights(document.model_copy(update={"summary_missing": "no_speech"}))
        try:
            extraction = extract_insights(
                self._bedrock_client(),
                lines,
                model_id=self.config.model_id,
                max_output_tokens=self.config.max_output_tokens,
                context_tokens=self.config.context_tokens,
                meeting_topic=recording.topic,
            )
        except ModelBusy as e:
            if request.progress.count(MODEL_WAIT) >= self.config.model_max_waits:
                raise  # the notify queue's retries, then FAILED with the reason
            logger.warning("the model is busy; the notes wait", error=str(e))
            return Wait(f"model busy: {e}", MODEL_WAIT, self.config.model_wait_seconds)
        emails = {s.name: s.email for s in speakers if s.email}
        document = document.model_copy(
            update={
                "summary": extraction.summary,
                "topics": extraction.topics,
                "questions": extraction.questions,
                "action_items": _with_emails(extraction.action_items, emails),
                "follow_ups": _with_emails(extraction.follow_ups, emails),
                "sections_missing": list(extraction.missing),
                "summary_missing": None if extraction.summary else "not_ready",
            }
        )
        return Insights(
            document,
            model_input_tokens=extraction.input_tokens,
            model_output_tokens=extraction.output_tokens,
            model_calls=extraction.calls,
        )

    def _bedrock_client(self) -> Any:
        return self._bedrock() if self._bedrock is not None else bedrock_client()

    def _read_transcript(self, key: str) -> dict[str, Any]:
        try:
            body = self._s3().get_object(Bucket=self.config.media_bucket, Key=key)["Body"].read()
        except ClientError as e:
            if aws.error_code(e) in ("NoSuchKey", "404", "NotFound"):
                raise PermanentError(f"transcript {key} is gone") from e
            raise _transient(e, f"transcript {key} unreadable") from e
        except BotoCoreError as e:
            raise _transient(e, f"transcript {key} unreadable") from e
        try:
            document = json.loads(body)
        except ValueError as e:
            raise PermanentError(f"transcript {key} is not JSON") from e
        if not isinstance(document, dict):
            raise PermanentError(f"transcript {key} is not a Transcribe transcript")
        return document


def _with_emails(tasks: list[Task], emails: dict[str, str]) -> list[Task]:
    """The model names assignees as the transcript does; the segment map knows their emails."""
    return [
        task.model_copy(update={"assignee_email": emails.get(task.assignee)})
        if task.assignee and not task.assignee_email
        else task
        for task in tasks
    ]


# ---- the transcript JSON (reference §4) ------------------------------------------------------


@dataclass(frozen=True)
class _Item:
    text: str
    start: float
    end: float
    speaker_label: str | None


def _items(transcript: dict[str, Any]) -> list[_Item]:
    """Pronunciation items in file order, each punctuation mark joined to the word before it
    (punctuation has no times). Times and confidences are strings in Transcribe's JSON."""
    results = transcript.get("results")
    raw = results.get("items") if isinstance(results, dict) else None
    items: list[_Item] = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            continue
        alternatives = item.get("alternatives") or [{}]
        content = str((alternatives[0] or {}).get("content") or "").strip()
        if not content:
            continue
        if item.get("type") == "punctuation":
            if items:
                last = items[-1]
                items[-1] = _Item(last.text + content, last.start, last.end, last.speaker_label)
            continue
        start, end = _seconds(item.get("start_time")), _seconds(item.get("end_time"))
        if start is None or end is None:
            continue
        items.append(_Item(content, start, max(start, end), item.get("speaker_label")))
    return items


def _seconds(value: Any) -> float | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def transcript_words(transcript: dict[str, Any]) -> list[TimedWord]:
    return [TimedWord(text=i.text, start=i.start, end=i.end) for i in _items(transcript)]


def diarized_transcript(
    transcript: dict[str, Any],
) -> tuple[list[Utterance], list[SpeakerTalkTime]]:
    """A file that has no segment map (the mixed-audio fallback): lines follow Transcribe's
    speaker labels, named "Speaker 1", "Speaker 2"... in order of first appearance; the file's
    clock is the meeting's. Talk time sums each speaker's word durations."""
    names: dict[str, str] = {}
    talk: dict[str, float] = {}
    lines: list[tuple[str, float, list[str]]] = []
    for item in _items(transcript):
        label = item.speaker_label or "spk_0"
        name = names.setdefault(label, f"Speaker {len(names) + 1}")
        talk[name] = talk.get(name, 0.0) + (item.end - item.start)
        if lines and lines[-1][0] == name:
            lines[-1][2].append(item.text)
        else:
            lines.append((name, item.start, [item.text]))
    total = sum(talk.values())
    speakers = [
        SpeakerTalkTime(
            name=name,
            talk_seconds=round(seconds, 1),
            talk_percent=round(100 * seconds / total, 1) if total else 0.0,
        )
        for name, seconds in sorted(talk.items(), key=lambda kv: kv[1], reverse=True)
    ]
    utterances = [
        Utterance(speaker=name, start_seconds=round(start, 3), text=" ".join(words))
        for name, start, words in lines
    ]
    return utterances, speakers


def _duration_seconds(recording: Recording) -> int:
    if recording.duration_minutes > 0:
        return recording.duration_minutes * 60
    return round(recording.merged_seconds or 0)

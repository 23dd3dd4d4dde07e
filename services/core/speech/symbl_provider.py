"""The Symbl adapter of the speech-analytics seam (`services.core.speech.provider`).

Submission: Symbl downloads the merged file from its presigned URL and posts the job's status to
our callback. Insights take up to three kinds of delivery, each step done once (recorded on the
meeting before the next):

1. A compact file's speakers: the speaker events are sent (a PUT replaces, so a crash before the
   record only sends them again), then the transcript is read until its messages carry them, at
   most `speaker_max_checks` times `speaker_retry_seconds` apart; then the notes go on anyway
   (our transcript and talk time come from the segment map, not from Symbl).
2. The summary: asked for once (the documented way for a job submitted without
   `enableSummary`), then read. Symbl writes none for a conversation under about 50 words or 3
   sentences, and answers 404 while it is still writing one. A conversation that short goes on
   at once without a summary; a longer one is looked at again at most `summary_max_checks`
   times, then goes on without it. Either way the document says that no summary was generated,
   and why.
3. Everything else is read and turned into our document (`symbl_insights`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.core.errors import PermanentError
from services.core.insights.document import SummaryMissing
from services.core.observability import logger
from services.core.recordings import Recording
from services.core.speech.provider import (
    Insights,
    InsightsRequest,
    JobStatus,
    ProviderName,
    SpeechJob,
    SubmittedJob,
    Wait,
)
from services.core.speech.segment_map import SegmentMap, speaker_events
from services.core.speech.symbl import AudioSubmission, SymblClient
from services.core.speech.symbl_insights import (
    conversation_too_short,
    fetch_summary,
    gather_insights,
)

SUMMARY_WAIT = "summary_wait"  # attempts counter: summary checks that found it not ready
SUMMARY_REQUESTED = "summary_requested"  # attempts counter: summary generations requested
SPEAKER_WAIT = "speaker_wait"  # attempts counter: transcript checks that lacked the speakers


@dataclass(frozen=True)
class SymblWaits:
    """How long and how often the notes wait for Symbl's speakers and summary."""

    speaker_retry_seconds: int = 15
    speaker_max_checks: int = 8
    summary_retry_seconds: int = 60
    summary_max_checks: int = 5


@dataclass(frozen=True)
class SummaryOutcome:
    lines: list[str]
    missing: SummaryMissing | None = None


def speakers_arrived(messages: dict[str, Any], segment_map: SegmentMap) -> bool:
    """Whether every message of the transcript names one of the map's speakers (by email, or by
    name for a speaker without one): Symbl has applied the speaker events."""
    emails = {p.email.casefold() for p in segment_map.speakers if p.email}
    names = {p.name.casefold() for p in segment_map.speakers}
    for message in messages.get("messages") or []:
        person = message.get("from") if isinstance(message, dict) else None
        person = person if isinstance(person, dict) else {}
        email = str(person.get("email") or person.get("userId") or "").casefold()
        name = str(person.get("name") or "").casefold()
        if not (email in emails or name in names):
            return False
    return True


class SymblProvider:
    def __init__(self, client: SymblClient, waits: SymblWaits | None = None) -> None:
        self.client = client
        self.waits = waits or SymblWaits()

    @property
    def provider(self) -> ProviderName:
        return "symbl"

    def submit(self, job: SpeechJob) -> SubmittedJob:
        return self.client.submit_audio_url(
            AudioSubmission(
                url=job.media_url,
                name=job.name,
                webhook_url=job.callback_url,
                channels=job.channels,
                diarization_speakers=job.diarization_speakers,
                diarize=job.diarize,
            )
        )

    def job_status(self, job_id: str) -> JobStatus:
        return self.client.job_status(job_id)

    def forget(self, recording: Recording) -> None:
        """Symbl keeps the conversation; its API offers deletion, which the retention of our
        own copies does not depend on, so nothing is deleted here."""

    def insights(self, request: InsightsRequest) -> Insights | Wait:
        recording = request.recording
        conversation_id = recording.conversation_id
        if not conversation_id:
            raise PermanentError("transcribed meeting has no conversation id")
        segment_map = request.segment_map
        unconfirmed = False
        if segment_map is not None and segment_map.layout == "compact":
            waiting = self._give_speakers(request, conversation_id, segment_map)
            if isinstance(waiting, Wait):
                return waiting
            unconfirmed = not waiting
        summary = self._read_summary(request, conversation_id)
        if summary is None:
            return Wait("summary not ready yet", SUMMARY_WAIT, self.waits.summary_retry_seconds)
        document = gather_insights(
            recording,
            self.client,
            now=request.now,
            summary=summary.lines,
            link_lifetime_seconds=request.link_lifetime_seconds,
            summary_missing=summary.missing,
            segment_map=segment_map,
        )
        return Insights(
            document.model_copy(update={"provider": self.provider}),
            speakers_unconfirmed=unconfirmed,
        )

    def _give_speakers(
        self, request: InsightsRequest, conversation_id: str, segment_map: SegmentMap
    ) -> Wait | bool:
        """Step 1: the wait, or (the notes may go on) whether the speakers were seen."""
        recording, progress = request.recording, request.progress
        if not recording.speakers_sent_at:
            self.client.put_speaker_events(conversation_id, speaker_events(segment_map))
            progress.stamp("speakers_sent_at")
            logger.info(
                "speaker events sent",
                speakers=len(segment_map.speakers),
                segments=len(segment_map.segments),
            )
        if recording.speakers_confirmed_at:
            return True
        checks = progress.count(SPEAKER_WAIT)
        if speakers_arrived(self.client.conversation(conversation_id, "messages"), segment_map):
            progress.stamp("speakers_confirmed_at")
            logger.info("speakers confirmed in the transcript", checks=checks)
            return True
        if checks >= self.waits.speaker_max_checks:
            logger.warning(
                "the provider's transcript still lacks the speakers; notes go out with ours",
                checks=checks,
            )
            return False
        return Wait("speakers not applied yet", SPEAKER_WAIT, self.waits.speaker_retry_seconds)

    def _read_summary(
        self, request: InsightsRequest, conversation_id: str
    ) -> SummaryOutcome | None:
        """Step 2: the summary, or why the notes go without one; None while it is worth
        waiting for."""
        progress = request.progress
        if not progress.count(SUMMARY_REQUESTED):
            # Recorded after the request: a crash in between only asks again, which rewrites
            # the same summary.
            if not self.client.refresh_summary(conversation_id):
                logger.warning("summary generation refused; reading whatever summary exists")
            progress.record(SUMMARY_REQUESTED)
        lines = fetch_summary(self.client, conversation_id)
        if lines:
            return SummaryOutcome(lines)
        if conversation_too_short(self.client, conversation_id):
            logger.info("no summary: the conversation is too short to summarise")
            return SummaryOutcome([], "too_short")
        checks = progress.count(SUMMARY_WAIT)
        if checks >= self.waits.summary_max_checks:
            logger.warning("no summary after every check; sending without it", checks=checks)
            return SummaryOutcome([], "not_ready")
        return None

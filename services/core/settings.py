"""Validated settings, read once per process from the environment.

Environment variables carry names, ARNs and URLs only; secret values live in Secrets Manager.
A missing or malformed variable fails at start with a message that names it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from typing import Any, Literal, TypeVar

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.core.errors import ConfigurationError

# Where Zoom serves recording files: its commercial, new and government domains (webhook URLs
# look like https://<zone>web.zoom.us/rec/webhook_download/...; the CDN is undocumented).
ZOOM_DOWNLOAD_DOMAINS = "zoom.us,zoom.com,zoomgov.com"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
# A DNS name in its ASCII form: letters, digits and hyphens in dot-separated labels.
_DNS_NAME = re.compile(r"[a-z0-9-]+(?:\.[a-z0-9-]+)*")


class CoreSettings(BaseSettings):
    """What every service needs: where the state lives and how to log."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    recordings_table: str = Field(min_length=3, description="DynamoDB table of recordings")
    record_retention_days: int = Field(default=90, ge=1, le=3650)
    log_level: str = "INFO"


# A Transcribe job name: 1-200 of [0-9a-zA-Z._-]; ours are `<stack_name>-<64 hex>-<attempt>`.
_STACK_NAME = r"^[0-9a-zA-Z._-]{1,120}$"


class SpeechSettings(BaseSettings):
    """Which speech-analytics provider runs the jobs, and how each is reached.

    `speech_provider` "symbl": Symbl's API; the secret is `{"app_id", "app_secret"}` and is
    required. "aws": Amazon Transcribe and Bedrock in the deployment's own account, with the
    functions' IAM roles (no secret).
    """

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    speech_provider: Literal["symbl", "aws"] = "symbl"
    symbl_api_base_url: str = "https://api.symbl.ai"
    symbl_credentials_secret_arn: str = ""
    # Each request waits at most this long to connect and again to read; retries of idempotent
    # requests (and of a submission that provably never left) stop once the budget is spent.
    symbl_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    symbl_retry_budget_seconds: float = Field(default=10.0, ge=0, le=120)

    # The AWS provider. Transcribe job names start with the stack's name, which the
    # EventBridge rule and the IAM policies match on (`<stack_name>-*`).
    stack_name: str = Field(default="zoom-insights", pattern=_STACK_NAME)
    transcribe_language_code: str = Field(default="en-US", pattern=r"^[a-z]{2,3}-[A-Z]{2}$")
    # The transcripts Transcribe writes to the media bucket are encrypted with this KMS key;
    # empty: the bucket's default encryption.
    transcript_kms_key_arn: str = ""
    # A Bedrock model (or inference profile) that supports forced tool use; its context window
    # and the most output tokens asked per call. Defaults: Amazon Nova Lite (300K / 5K).
    bedrock_model_id: str = Field(default="amazon.nova-lite-v1:0", min_length=1)
    bedrock_context_tokens: int = Field(default=300_000, ge=2_000)
    bedrock_max_output_tokens: int = Field(default=4_096, ge=256, le=64_000)

    @model_validator(mode="after")
    def _provider_needs(self) -> SpeechSettings:
        if self.speech_provider == "symbl" and not self.symbl_credentials_secret_arn:
            raise ValueError("SYMBL_CREDENTIALS_SECRET_ARN is required with SPEECH_PROVIDER=symbl")
        if self.bedrock_max_output_tokens * 2 > self.bedrock_context_tokens:
            raise ValueError("BEDROCK_MAX_OUTPUT_TOKENS must be at most half the context window")
        return self

    @property
    def provider_secret_arns(self) -> tuple[str, ...]:
        """The secrets the chosen provider needs before it can be called."""
        return (self.symbl_credentials_secret_arn,) if self.speech_provider == "symbl" else ()

    def symbl_worst_case_seconds(self, requests_made: int) -> float:
        """The longest `requests_made` Symbl calls can take, retries and one token fetch
        included: each call is its retry budget plus one last request's connect and read."""
        return (requests_made + 1) * (
            self.symbl_retry_budget_seconds + 2 * self.symbl_timeout_seconds
        )


class InsightsPageSettings(BaseSettings):
    """Signed links to a meeting's insights page: the notifier mints them, the webhook checks
    them and serves the page from the stored insights JSON. The secret is a plain string."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    media_bucket: str = Field(min_length=3)
    link_signing_key_secret_arn: str = Field(min_length=1)
    insights_link_lifetime_days: int = Field(default=30, ge=1, le=365)


class WebhookSettings(CoreSettings, SpeechSettings, InsightsPageSettings):
    """The HTTP entry: Zoom webhook intake and the Symbl job callback."""

    merge_queue_url: str = Field(min_length=1)
    zoom_webhook_secret_arn: str = Field(min_length=1)
    # Zoom retries at +5, +25 and +85 minutes and may keep the first timestamp, so the window
    # must cover 90 minutes into the past; a little future skew absorbs clock drift.
    zoom_webhook_max_age_seconds: int = Field(default=90 * 60, ge=1)
    zoom_webhook_max_future_skew_seconds: int = Field(default=5 * 60, ge=0)
    secret_cache_seconds: int = Field(default=300, ge=0)
    # The Symbl callback moves finished jobs on: it frees slots, queues notifications and
    # resubmissions, and nudges the pump.
    slots_table: str = Field(min_length=3)
    submit_queue_url: str = Field(min_length=1)
    notify_queue_url: str = Field(min_length=1)
    pump_function_name: str = Field(min_length=1)
    speech_job_attempts: int = Field(default=2, ge=1, le=5)


class ZoomApiSettings(BaseSettings):
    """Where Zoom's REST API and OAuth live, and the Server-to-Server OAuth credentials' secret.

    The secret is a JSON object `{"account_id", "client_id", "client_secret"}`.
    """

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    zoom_api_base_url: str = "https://api.zoom.us/v2"
    zoom_oauth_url: str = "https://zoom.us/oauth/token"
    zoom_s2s_secret_arn: str = Field(min_length=1)


class MergerSettings(CoreSettings, ZoomApiSettings):
    """Download participant audio and build the multichannel file (Lambda and Fargate task)."""

    media_bucket: str = Field(min_length=3)
    merge_queue_url: str = Field(min_length=1)
    submit_queue_url: str = Field(min_length=1)
    pump_function_name: str = Field(min_length=1)
    max_receive_count: int = Field(default=5, ge=1, description="the merge queue's redrive limit")
    # "compact": only the speech of every track, once, in one mono file with a segment map
    # (bills about 1x the meeting); "multichannel": one channel per speaker, each as long as
    # the meeting (bills N x with Symbl). The mixed-audio fallback does not depend on it.
    audio_layout: Literal["compact", "multichannel"] = "compact"
    # Compact layout (measured defaults: bench/layout.py). Each detected speech run is widened
    # by the padding, runs of one speaker closer than `compact_join_pause_seconds` become one
    # stretch (keeping the pause), and stretches are laid out in meeting order with
    # `compact_gap_seconds` of silence between them. Every stretch costs pad_before + pad_after
    # + gap, so they are small: detection already puts soft onsets and fading tails inside its
    # runs (`speech_edge_db`). Measured on realistic meetings of 2-12 speakers (10 and 30 min):
    # 0.02 s before and 0.05 s after clip no scripted word (0.04 s after clips the fading end of
    # a line in a few hundred) and the file is 0.89-0.97 x the meeting; at 0.15/0.1/0.1 it was
    # 1.02-1.06 x. The gap stays a real silence, the recogniser's boundary (at least 0.05 s). The
    # join pause is measured between padded runs, where a split would put the gap instead: at
    # most the gap, a kept pause never costs more than a split.
    compact_pad_before_seconds: float = Field(default=0.02, ge=0, le=2)
    compact_pad_after_seconds: float = Field(default=0.05, ge=0, le=2)
    compact_gap_seconds: float = Field(default=0.05, ge=0.05, le=2)
    compact_join_pause_seconds: float = Field(default=0.05, ge=0, le=5)
    compact_min_speech_seconds: float = Field(default=0.1, ge=0, le=2)
    # Speech detection (services/merger/speech.py): frames louder than the track's noise floor
    # by `speech_gate_db` (and than `speech_gate_min_dbfs`) are candidates; silero-vad confirms
    # each candidate run from its first `speech_check_seconds` at `speech_vad_threshold`.
    # Measured with bench/vad.py on realistic meetings: the gate finds the runs and the edge
    # level below finds where they end, so from 4 to 13 dB the runs barely change (no line
    # clipped at the default padding, the same waste); 10 dB stays well clear of the floor.
    # silero scores speech runs >= 0.93 and typing or coughs <= 0.21: 0.5 parts them.
    speech_gate_db: float = Field(default=10.0, ge=3, le=40)
    # A confirmed run's edges extend (at most 0.3 s each way) while frames stay louder than the
    # floor by `speech_edge_db`, so soft onsets and fading tails are inside the run. Measured:
    # the softest tails sit 2-4 dB over the floor for 30-50 ms (3 dB takes in all but 30 ms of
    # them, 4 dB all but 40 ms, the gate alone all but 60 ms), while the floor's own 10 ms frames
    # stay within 2 dB of it, so 3 dB does not grow runs into the room.
    speech_edge_db: float = Field(default=3.0, ge=1, le=40)
    speech_gate_min_dbfs: float = Field(default=-50.0, ge=-90, le=-10)
    speech_vad_threshold: float = Field(default=0.5, gt=0, lt=1)
    speech_check_seconds: float = Field(default=1.0, gt=0, le=10)
    # FLAC carries at most 8 channels; beyond, the quietest speakers share the last channel
    # (multichannel layout only).
    merge_max_channels: int = Field(default=8, ge=1, le=8)
    merge_sample_rate: int = Field(default=16000, ge=8000, le=48000)
    # Merges inside the Lambda only below both limits; longer ones go to the Fargate task.
    inline_merge_max_seconds: int = Field(default=2 * 3600, ge=0)
    inline_merge_max_bytes: int = Field(default=2 * 1024**3, ge=0)
    download_retry_budget_seconds: float = Field(default=300.0, gt=0)
    ecs_cluster: str = ""
    ecs_task_definition: str = ""
    ecs_container_name: str = "merger"
    ecs_subnets: str = ""  # comma-separated subnet ids
    ecs_security_groups: str = ""  # comma-separated security group ids
    work_dir: str = "/tmp"  # noqa: S108 - Lambda's and Fargate's scratch space
    # A merge run holds its meeting under a lease until floor + factor x the meeting's length.
    # Inline, the floor is the merger Lambda's 900 s timeout, and a meeting short enough to
    # merge inline (2 h) gets at most 4500 s: below the merge queue's 5400 s visibility timeout,
    # so the redelivery of a message whose Lambda died finds the lease expired and takes over.
    # A Fargate task's floor also covers its start (image pull) and big downloads.
    merge_lease_floor_seconds: int = Field(default=900, ge=60)
    merge_task_lease_floor_seconds: int = Field(default=1800, ge=60)
    merge_lease_media_factor: float = Field(default=0.5, ge=0)
    # A diarized meeting whose speakers neither the participants API nor the participant
    # files name is analysed for this many speakers.
    diarization_default_speakers: int = Field(default=2, ge=1, le=50)
    # A participant file Zoom still lists as `processing` is looked at again every
    # `processing_check_seconds` (a delayed merge request; SQS delays at most 900 s) for at
    # most `processing_wait_seconds`; then the merge goes on without it.
    processing_wait_seconds: int = Field(default=1800, ge=0)
    processing_check_seconds: int = Field(default=120, ge=1, le=900)
    # Zoom's tokens go only to these domains and their subdomains, over https: a download URL
    # (from the webhook or the recordings API) elsewhere is refused before any request.
    zoom_download_domains: str = ZOOM_DOWNLOAD_DOMAINS
    # Plain-http `host:port` origins allowed besides, loopback hosts only: the local stack's
    # fake Zoom. Empty in production.
    zoom_download_loopback_origins: str = ""

    @field_validator("zoom_download_domains")
    @classmethod
    def _domains_are_dns_names(cls, value: str) -> str:
        domains = _comma_list(value.lower())
        if not domains:
            raise ValueError("name at least one domain")
        for domain in domains:
            if not _DNS_NAME.fullmatch(domain) or "." not in domain:
                raise ValueError(f"{domain!r} is not a domain like zoom.us")
        return ",".join(domains)

    @field_validator("zoom_download_loopback_origins")
    @classmethod
    def _origins_are_loopback(cls, value: str) -> str:
        origins = _comma_list(value.lower())
        for origin in origins:
            host, _, port = origin.rpartition(":")
            if host not in LOOPBACK_HOSTS or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(
                    f"{origin!r} is not a loopback host:port ({', '.join(LOOPBACK_HOSTS)})"
                )
        return ",".join(origins)

    @property
    def zoom_download_domain_list(self) -> tuple[str, ...]:
        return _comma_list(self.zoom_download_domains)

    @property
    def zoom_download_loopback_origin_list(self) -> tuple[str, ...]:
        return _comma_list(self.zoom_download_loopback_origins)

    def merge_lease_seconds(self, meeting_seconds: float, *, task: bool) -> int:
        """How long a merge run of a meeting this long holds it before another may take over."""
        floor = self.merge_task_lease_floor_seconds if task else self.merge_lease_floor_seconds
        return int(floor + self.merge_lease_media_factor * meeting_seconds)


class SubmitterSettings(CoreSettings, SpeechSettings):
    """The pump: Symbl submissions under the account's concurrent-job limit."""

    slots_table: str = Field(min_length=3)
    submit_queue_url: str = Field(min_length=1)
    # A job can end before the pump has recorded it (its callback then finds nothing): the pump
    # asks once after recording and settles the job itself, which needs these two.
    notify_queue_url: str = Field(min_length=1)
    pump_function_name: str = Field(min_length=1)
    speech_job_attempts: int = Field(default=2, ge=1, le=5)
    media_bucket: str = Field(min_length=3)
    # One slot pool per provider, each with its limit: Symbl's account ceiling, Transcribe's
    # concurrent-job quota (an account setting, 250 by default, shared with anything else in
    # the account and Region: leave room).
    symbl_concurrency_limit: int = Field(default=50, ge=1)
    transcribe_concurrency_limit: int = Field(default=100, ge=1)

    @property
    def concurrency_limit(self) -> int:
        if self.speech_provider == "aws":
            return self.transcribe_concurrency_limit
        return self.symbl_concurrency_limit

    # Public base URL of the HTTP API; Symbl posts job status to <base>/symbl/callback/<secret>.
    callback_base_url: str = Field(min_length=1)
    # Symbl downloads the merged file from this presigned URL; long enough for a queued job.
    presigned_url_seconds: int = Field(default=6 * 3600, ge=300, le=7 * 24 * 3600)
    claim_lease_seconds: int = Field(default=120, ge=10)
    # A job's deadline: base + factor x the media's length. Its slot lease ends then; the
    # reconciler asks once more and, if the job still runs, counts a failed attempt (resubmit,
    # or FAILED once `speech_job_attempts` are spent) and frees the slot. A submission whose
    # outcome is unknown (no answer after it was sent) holds its slot as long, so the count
    # covers a job Symbl may be running, before it is submitted again.
    job_deadline_base_seconds: int = Field(default=3600, ge=1)
    job_deadline_media_factor: float = Field(default=1.0, ge=0)
    # Genuine submission failures (transient errors, unknown outcomes) before FAILED; waiting
    # for a slot, a 429 or a merge never counts.
    submit_attempts: int = Field(default=5, ge=1, le=20)
    pump_max_seconds: float = Field(default=60.0, gt=0)
    # While many slots are free (a backlog meets an idle account), a pump takes up to this many
    # at once and submits them concurrently; SQS receives at most 10 messages per call.
    pump_batch: int = Field(default=10, ge=1, le=10)
    # Symbl takes at most 4 h of media per file.
    max_media_seconds: int = Field(default=4 * 3600, ge=1)

    def job_deadline_seconds(self, media_seconds: float | None) -> float:
        return self.job_deadline_base_seconds + self.job_deadline_media_factor * (
            media_seconds or 0.0
        )

    @property
    def pump_worst_case_seconds(self) -> float:
        """A pump starts no submission after `pump_max_seconds`; the last one started then
        (a token, the submission, the status check after it) must end inside the Lambda
        timeout, which Terraform sets and a contract test holds to this."""
        return self.pump_max_seconds + self.symbl_worst_case_seconds(2)


class ReconcilerSettings(SubmitterSettings):
    """The scheduled repairer: lost callbacks, dead merges, stuck meetings."""

    merge_queue_url: str = Field(min_length=1)
    # A stage request re-sent for a stuck meeting: at most this many times, the first after the
    # state's stuck time, then doubling; after the last the meeting ends FAILED with the reason.
    stage_attempts: int = Field(default=3, ge=1, le=10)
    merge_stuck_seconds: int = Field(default=3 * 3600, ge=1)
    received_stuck_seconds: int = Field(default=15 * 60, ge=1)
    merged_stuck_seconds: int = Field(default=30 * 60, ge=1)
    submitting_stuck_seconds: int = Field(default=10 * 60, ge=1)
    transcribed_stuck_seconds: int = Field(default=30 * 60, ge=1)
    ecs_cluster: str = ""  # to ask whether a long merge's task still runs
    # Jobs submitted longer ago than this are asked about, in case their callback was lost.
    submitted_check_seconds: int = Field(default=60, ge=1)
    # Every FAILED meeting is announced once on this SNS topic (services/core/failures.py).
    operator_topic_arn: str = Field(min_length=1)


class JobEventsSettings(CoreSettings, SpeechSettings):
    """Transcribe's "Transcribe Job State Change" events (EventBridge rule -> SQS -> Lambda):
    each is confirmed with GetTranscriptionJob and settled as a Symbl callback is."""

    slots_table: str = Field(min_length=3)
    submit_queue_url: str = Field(min_length=1)
    notify_queue_url: str = Field(min_length=1)
    pump_function_name: str = Field(min_length=1)
    speech_job_attempts: int = Field(default=2, ge=1, le=5)
    job_events_queue_url: str = Field(min_length=1)
    max_receive_count: int = Field(
        default=5, ge=1, description="the job-events queue's redrive limit"
    )


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def load_settings(cls: type[SettingsT], **overrides: Any) -> SettingsT:
    """Build settings from the environment, naming every missing or invalid variable."""
    try:
        return cls(**overrides)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            name = ".".join(str(p) for p in err["loc"]).upper()
            problems.append(f"{name}: {err['msg']}")
        raise ConfigurationError(
            f"invalid configuration for {cls.__name__}: " + "; ".join(problems)
        ) from e


def settings_from(cls: type[SettingsT], environment: Mapping[str, str]) -> SettingsT:
    """Settings from an explicit environment mapping (the local stack, tests)."""
    return load_settings(cls, **{key.lower(): value for key, value in environment.items()})


@cache
def cached_settings(cls: type[SettingsT]) -> SettingsT:
    """Settings read once per container; tests call `cached_settings.cache_clear()`."""
    return load_settings(cls)


def _comma_list(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


class NotifierSettings(CoreSettings, SpeechSettings, InsightsPageSettings):
    """Fetch a meeting's insights into S3 and email its host a summary, exactly once."""

    notify_queue_url: str = Field(min_length=1)
    max_receive_count: int = Field(default=5, ge=1, description="the notify queue's redrive limit")
    # A verified SES identity; may carry a display name: "Meeting notes <notes@example.com>".
    ses_sender: str = Field(min_length=3)
    ses_configuration_set: str = ""
    extra_recipients: str = ""  # comma-separated addresses copied on every email
    skip_topic_markers: str = "[no-notes]"  # comma-separated; a topic containing one is skipped
    opted_out_hosts: str = ""  # comma-separated host emails that never get notes
    # Public base URL of the HTTP API; the page link is <base>/meetings/<uuid>?token=...
    insights_page_base_url: str = Field(min_length=1)
    operator_topic_arn: str = Field(min_length=1)
    # Symbl's summary answers 404 until it is written: look again this much later, at most
    # `summary_max_checks` times; then the email goes out without a summary (and says so).
    summary_retry_seconds: int = Field(default=60, ge=0, le=900)
    summary_max_checks: int = Field(default=5, ge=0, le=60)
    # A compact meeting's speaker events: the transcript is read again this much later, at most
    # `speaker_max_checks` times, until its messages carry the speakers; then the notes go out
    # anyway (our transcript and talk time come from the segment map, not from the provider).
    speaker_retry_seconds: int = Field(default=15, ge=0, le=900)
    speaker_max_checks: int = Field(default=8, ge=0, le=60)

    @property
    def extra_recipient_list(self) -> tuple[str, ...]:
        return _comma_list(self.extra_recipients)

    @property
    def skip_topic_marker_list(self) -> tuple[str, ...]:
        return _comma_list(self.skip_topic_markers)

    @property
    def opted_out_host_list(self) -> tuple[str, ...]:
        return _comma_list(self.opted_out_hosts)

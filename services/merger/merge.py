"""The merge: a meeting's participant audio becomes one file to transcribe.

The layout is a setting (`audio_layout`). "compact" (the default): each participant's speech,
once, in meeting order, in one mono file, with a segment map (stored next to it) that says whose
speech each stretch is and when it was said (services.merger.speech, services.merger.compact).
"multichannel": one speaker per channel, every channel as long as the meeting. Without usable
participant files, the mixed recording becomes one mono file for the provider to diarize.

`merge_meeting` is the one function the Lambda handler and the Fargate task both call. It is
safe to run again after a crash: downloads go to fixed keys (a file already there at its full
size is not fetched twice), each run holds the meeting under a lease (`services.merger.lease`)
and writes its file under its own key, and the final MERGING → MERGED transition is conditional
on still holding that lease, so only one run ever records its result and queues the submit
request.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from botocore.exceptions import ClientError

from services.core import aws
from services.core.errors import NotFound, PermanentError, StateConflict, TransientError
from services.core.intake import MessageSender
from services.core.observability import MetricUnit, logger, record_metric
from services.core.pump import LambdaPumpNudger, PumpNudger
from services.core.queues import QueueSender, SubmitRequest
from services.core.recordings import Recording, RecordingStore, SpeakerTrack, State
from services.core.s3_stream import meeting_key
from services.core.secrets import SecretCache
from services.core.settings import MergerSettings
from services.core.speech.segment_map import (
    MapSpeaker,
    SegmentMap,
    map_speakers,
    segment_map_key,
    store_segment_map,
)
from services.core.zoom import (
    DownloadSpec,
    DownloadUrlPolicy,
    Participant,
    ZoomApi,
    ZoomDownloader,
    zoom_oauth,
)
from services.core.zoom_models import RecordingObject
from services.merger import compact, mixdown, speech
from services.merger.ffmpeg_plan import TrackSource
from services.merger.lease import DEADLINE, HOLDER, STAGE, release_lease, renew_lease, take_lease

PRESIGNED_INPUT_SECONDS = 6 * 3600
MERGE_TIMEOUT_FLOOR_SECONDS = 600
MERGED_OBJECT_TYPE = "audio/flac"


class Downloader(Protocol):
    def download_to_s3(
        self,
        spec: DownloadSpec,
        *,
        bucket: str,
        key: str,
        download_token: str | None,
        meeting_uuid: str,
    ) -> Any: ...


class ParticipantDirectory(Protocol):
    def list_participants(self, meeting_uuid: str) -> list[Participant]: ...


class RecordingDirectory(Protocol):
    def get_recordings(
        self, meeting_uuid: str, *, download_access_token_ttl: int | None = None
    ) -> tuple[RecordingObject, str | None]: ...


@dataclass
class MergerDeps:
    settings: MergerSettings
    store: RecordingStore
    downloader: Downloader
    participants: ParticipantDirectory
    submit_queue: MessageSender
    pump: PumpNudger
    s3: Any
    recordings: RecordingDirectory
    ecs_client: Callable[[], Any] = field(default=lambda: aws.client("ecs"))
    merge_queue: MessageSender | None = None
    clock: Callable[[], float] = time.time


def build_deps(settings: MergerSettings) -> MergerDeps:
    oauth = zoom_oauth(settings, SecretCache())
    api = ZoomApi(settings.zoom_api_base_url, oauth)
    s3 = aws.client("s3")
    return MergerDeps(
        settings=settings,
        store=RecordingStore.from_settings(settings),
        downloader=ZoomDownloader(
            oauth,
            api,
            s3,
            url_policy=download_url_policy(settings),
            retry_budget_seconds=settings.download_retry_budget_seconds,
        ),
        participants=api,
        submit_queue=QueueSender(settings.submit_queue_url),
        pump=LambdaPumpNudger(settings.pump_function_name),
        s3=s3,
        recordings=api,
        merge_queue=QueueSender(settings.merge_queue_url),
    )


def download_url_policy(settings: MergerSettings) -> DownloadUrlPolicy:
    """Where the merger may send Zoom's tokens (Zoom's hosts; the fake Zoom on loopback)."""
    return DownloadUrlPolicy(
        domains=settings.zoom_download_domain_list,
        loopback_origins=settings.zoom_download_loopback_origin_list,
    )


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def raw_key(meeting_uuid: str, file_id: str, extension: str) -> str:
    return f"raw/{meeting_key(meeting_uuid)}/{meeting_key(file_id)}.{extension.lower()}"


def merged_key(meeting_uuid: str, run: str) -> str:
    """Each run writes its own file, so a run that lost its lease never overwrites the file of
    the run that replaced it."""
    return f"merged/{meeting_key(meeting_uuid)}/{run}.flac"


def _normalise(name: str) -> str:
    return " ".join(name.casefold().split())


def match_emails(tracks: list[SpeakerTrack], participants: list[Participant]) -> list[SpeakerTrack]:
    """Give each track the email of the participant with the same display name, when unique.

    The match is by name because participant files carry nothing else; a name that two
    participants share is left without an email rather than guessed.
    """
    by_name: dict[str, set[str]] = {}
    for p in participants:
        if p.user_email:
            by_name.setdefault(_normalise(p.name), set()).add(p.user_email)
    matched = []
    for track in tracks:
        emails = by_name.get(_normalise(track.name), set())
        email = next(iter(emails)) if len(emails) == 1 else track.email
        matched.append(track.model_copy(update={"email": email}))
    return matched


def _participants(deps: MergerDeps, meeting_uuid: str) -> list[Participant]:
    try:
        return deps.participants.list_participants(meeting_uuid)
    except (NotFound, PermanentError, TransientError) as e:
        logger.info("participants unavailable; speakers keep names only", reason=str(e))
        return []


def _present(deps: MergerDeps, key: str, size: int | None) -> bool:
    if size is None:
        return False
    try:
        head = deps.s3.head_object(Bucket=deps.settings.media_bucket, Key=key)
    except ClientError:
        return False
    return int(head["ContentLength"]) == size


def _fetch(
    deps: MergerDeps, recording: Recording, spec: DownloadSpec, key: str, download_token: str | None
) -> None:
    if _present(deps, key, spec.file_size):
        return
    deps.downloader.download_to_s3(
        spec,
        bucket=deps.settings.media_bucket,
        key=key,
        download_token=download_token,
        meeting_uuid=recording.meeting_uuid,
    )


def download_tracks(
    deps: MergerDeps, recording: Recording, download_token: str | None
) -> list[SpeakerTrack]:
    """Every completed participant file into S3; a file that fails for good is left out with
    its reason, and no other speaker moves because of it."""
    result = []
    for track in recording.tracks:
        if track.status != "completed" or not track.download_url:
            reason = f"file status is {track.status!r}" if track.download_url else "no download URL"
            if track.status == "processing" and recording.processing_wait_until:
                reason = "file still processing at Zoom when the wait for it ran out"
            result.append(track.model_copy(update={"excluded_reason": reason, "s3_key": None}))
            continue
        key = raw_key(recording.meeting_uuid, track.file_id, "m4a")
        spec = DownloadSpec(track.file_id, track.download_url, track.file_size, "M4A")
        try:
            _fetch(deps, recording, spec, key, download_token)
        except PermanentError as e:
            logger.warning("participant file left out", file_id=track.file_id, reason=str(e))
            result.append(track.model_copy(update={"excluded_reason": str(e), "s3_key": None}))
            continue
        result.append(track.model_copy(update={"s3_key": key, "excluded_reason": None}))
    return result


def _presign(deps: MergerDeps, key: str) -> str:
    return str(
        deps.s3.generate_presigned_url(
            "get_object",
            Params={"Bucket": deps.settings.media_bucket, "Key": key},
            ExpiresIn=PRESIGNED_INPUT_SECONDS,
        )
    )


def _timeout(seconds_of_audio: float) -> float:
    # Decoding AAC runs at tens of times real time; a merge slower than real time is stuck.
    return max(MERGE_TIMEOUT_FLOOR_SECONDS, seconds_of_audio)


def _sources(deps: MergerDeps, usable: list[SpeakerTrack]) -> list[TrackSource]:
    """The usable tracks as ffmpeg reads them, placed on the meeting timeline (0 = the earliest
    participant's `recording_start`)."""
    origin = min(_seconds(t.recording_start) for t in usable)
    return [
        TrackSource(
            key=t.file_id,
            url=_presign(deps, t.s3_key or ""),
            offset_s=_seconds(t.recording_start) - origin,
            duration_s=max(0.0, _seconds(t.recording_end) - _seconds(t.recording_start)),
        )
        for t in usable
    ]


def _merge_participants(
    deps: MergerDeps, usable: list[SpeakerTrack], output: str, work: str
) -> tuple[dict[str, Any], dict[str, Any], SegmentMap | None]:
    """The participant files merged in the configured layout: the figures for the log, the
    item's updates, and the segment map to store (compact layout only)."""
    if deps.settings.audio_layout == "compact":
        return _merge_compact(deps, usable, output, work)
    figures, channel_map = _merge_multichannel(deps, usable, output)
    updates = {"channel_map": channel_map, "diarization": False, "audio_layout": "multichannel"}
    return figures, updates, None


def _merge_multichannel(
    deps: MergerDeps, usable: list[SpeakerTrack], output: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    sources = _sources(deps, usable)
    total = max(s.end_s for s in sources)
    # Beyond the channel limit merge_tracks measures each track's speech (in parallel) to pick
    # who shares the last channel.
    outcome = mixdown.merge_tracks(
        sources,
        max_channels=deps.settings.merge_max_channels,
        sample_rate=deps.settings.merge_sample_rate,
        output_path=output,
        timeout_s=_timeout(total * len(sources)),
    )
    by_id = {t.file_id: t for t in usable}
    channel_map = [
        {
            "channel": plan.channel,
            "output_start": 0.0,
            "output_end": outcome.duration_s,
            "timeline_start": 0.0,
            "speakers": [
                {"file_id": key, "name": by_id[key].name, "email": by_id[key].email}
                for key in plan.track_keys
            ],
        }
        for plan in outcome.plan
    ]
    figures = {
        "seconds": outcome.duration_s,
        "elapsed": outcome.elapsed_s,
        "layout": "multichannel",
    }
    return figures, channel_map


def compact_merge(
    sources: list[TrackSource],
    speakers: list[MapSpeaker],
    of_track: dict[str, str],
    *,
    detection: speech.DetectionParams,
    layout: compact.LayoutParams,
    output: str,
    work: str,
) -> tuple[compact.CompactOutcome, list[speech.TrackSpeech]]:
    """Detect every track's speech (each decoded once) and write the compact file: what the
    merge does for the compact layout, and what bench/layout.py measures. `of_track` gives each
    source's speaker id."""
    started = time.monotonic()
    timeout = _timeout(max(s.end_s for s in sources) * len(sources))
    detected = speech.detect_speech(sources, work, detection, timeout_s=timeout)
    offsets = {s.key: s.offset_s for s in sources}
    tracks = [
        compact.CompactTrack.of(d, speaker=of_track[d.key], offset_s=offsets[d.key])
        for d in detected
    ]
    outcome = compact.build_compact(
        detected,
        tracks,
        speakers,
        layout,
        output,
        timeout_s=max(1.0, started + timeout - time.monotonic()),
    )
    if outcome is None:
        raise PermanentError(
            f"no speech detected in any participant file ({len(detected)} file(s) examined)"
        )
    return outcome, detected


def _merge_compact(
    deps: MergerDeps, usable: list[SpeakerTrack], output: str, work: str
) -> tuple[dict[str, Any], dict[str, Any], SegmentMap]:
    """Speech of every track, once, in meeting order, in one mono file (services.merger.compact);
    any number of speakers."""
    started = time.monotonic()
    speakers, of_track = map_speakers((t.file_id, t.name, t.email) for t in usable)
    outcome, detected = compact_merge(
        _sources(deps, usable),
        speakers,
        of_track,
        detection=speech.DetectionParams.from_settings(deps.settings),
        layout=compact.LayoutParams.from_settings(deps.settings),
        output=output,
        work=work,
    )
    segment_map = outcome.segment_map
    breakdown = segment_map.breakdown
    figures = {
        "seconds": outcome.duration_s,
        "elapsed": time.monotonic() - started,
        "layout": "compact",
        "meeting_seconds": round(segment_map.meeting_seconds, 3),
        "segments": len(segment_map.segments),
        "breakdown": {k: round(v, 3) for k, v in breakdown.model_dump().items()},
        **speech.summary(detected),
    }
    updates = {"channel_map": [], "diarization": False, "audio_layout": "compact"}
    return figures, updates, segment_map


def _merge_mixed(
    deps: MergerDeps, recording: Recording, download_token: str | None, output: str
) -> tuple[dict[str, Any], Recording]:
    mixed = recording.mixed_audio
    if mixed is None or not mixed.download_url or mixed.status not in (None, "completed"):
        raise PermanentError("no usable audio: no participant file and no mixed recording")
    extension = "m4a" if mixed.file_type == "M4A" else "mp4"
    key = raw_key(recording.meeting_uuid, mixed.file_id, extension)
    spec = DownloadSpec(mixed.file_id, mixed.download_url, mixed.file_size, mixed.file_type)
    try:
        _fetch(deps, recording, spec, key, download_token)
    except PermanentError as e:
        left_out = len(recording.tracks)
        raise PermanentError(
            f"no usable audio: {left_out} participant file(s) unusable and the mixed recording"
            f" failed too ({e})"
        ) from e
    outcome = mixdown.mono_mixdown(
        _presign(deps, key),
        sample_rate=deps.settings.merge_sample_rate,
        output_path=output,
        timeout_s=_timeout(recording.duration_minutes * 60),
    )
    figures = {"seconds": outcome.duration_s, "elapsed": outcome.elapsed_s, "layout": "mixed"}
    return figures, recording


def speaker_count(
    settings: MergerSettings, recording: Recording, participants: list[Participant]
) -> tuple[int, str]:
    """How many speakers to ask diarization for, and where that number came from: the
    participants API, else the participant files Zoom listed (usable or not), else the default."""
    named = {_normalise(p.name) for p in participants if p.name.strip()}
    if named:
        return len(named), "participants_api"
    listed = {_normalise(t.name) for t in recording.tracks if t.name.strip()}
    if listed:
        return len(listed), "participant_files"
    return settings.diarization_default_speakers, "default"


def _holding(
    deps: MergerDeps, meeting_uuid: str, recording: Recording, lease: str | None
) -> Recording | None:
    """The item under this run's lease: taken now when `lease` is None, else checked (and its
    deadline pushed from now, as a Fargate task starts some time after its dispatcher took it)."""
    now = deps.clock()
    task = recording.merge_mode == "task"
    seconds = deps.settings.merge_lease_seconds(recording.duration_minutes * 60, task=task)
    if lease is None:
        return take_lease(
            deps.store, recording, seconds=seconds, now=now, mode=recording.merge_mode or "inline"
        )
    if recording.state != State.MERGING or recording.merge_lease_holder != lease:
        logger.info("merge stopped: this run no longer holds the meeting", state=recording.state)
        return None
    return renew_lease(deps.store, meeting_uuid, lease, int(now + seconds))


def merge_meeting(
    meeting_uuid: str,
    deps: MergerDeps,
    *,
    download_token: str | None = None,
    lease: str | None = None,
) -> Recording:
    """Download, merge and hand over to the submitter. Returns the item as it ends up.

    `lease` is the holder id of a lease the caller already took for this run (the dispatcher,
    for itself or for the Fargate task it started); without one the run takes the lease itself.
    A run that cannot hold the meeting (another live run holds it) does nothing.
    """
    recording = deps.store.get(meeting_uuid)
    if recording is None:
        raise PermanentError(f"no recording item for {meeting_uuid!r}")
    if recording.state not in (State.RECEIVED, State.MERGING):
        logger.info("merge skipped: already past merging", state=recording.state.value)
        return recording
    held = _holding(deps, meeting_uuid, recording, lease)
    if held is None:
        return deps.store.require(meeting_uuid)
    holder = held.merge_lease_holder or ""
    try:
        return _merge_held(deps, held, holder, download_token)
    except PermanentError as e:
        fail_merge(deps.store, meeting_uuid, str(e), lease=holder)
        raise
    except BaseException:
        release_lease(deps.store, meeting_uuid, holder)
        raise


def _merge_held(
    deps: MergerDeps, recording: Recording, holder: str, download_token: str | None
) -> Recording:
    meeting_uuid = recording.meeting_uuid
    started = time.monotonic()
    participants = _participants(deps, meeting_uuid)
    tracks = match_emails(download_tracks(deps, recording, download_token), participants)
    usable = [t for t in tracks if t.s3_key and not t.excluded_reason]
    key = merged_key(meeting_uuid, holder)
    map_key = segment_map_key(key)
    segment_map: SegmentMap | None = None
    with tempfile.TemporaryDirectory(dir=deps.settings.work_dir, prefix="merge-") as work:
        output = os.path.join(work, "merged.flac")
        updates: dict[str, Any] = {"tracks": [t.model_dump(mode="json") for t in tracks]}
        if usable:
            figures, layout_updates, segment_map = _merge_participants(deps, usable, output, work)
            updates.update(layout_updates)
        else:
            figures, _ = _merge_mixed(deps, recording, download_token, output)
            count, source = speaker_count(deps.settings, recording, participants)
            updates.update(
                channel_map=[],
                diarization=True,
                audio_layout="mixed",
                participant_count=count,
                speaker_count_source=source,
            )
        size = os.path.getsize(output)
        deps.s3.upload_file(
            output,
            deps.settings.media_bucket,
            key,
            ExtraArgs={"ContentType": MERGED_OBJECT_TYPE},
        )
    if segment_map is not None:
        # Stored before the item names it: whoever reads the item finds the map.
        store_segment_map(deps.s3, deps.settings.media_bucket, map_key, segment_map)
        updates.update(segment_map_key=map_key)
    wall = time.monotonic() - started
    updates.update(merged_key=key, merged_seconds=figures["seconds"], merged_bytes=size)
    try:
        merged = deps.store.transition(
            meeting_uuid,
            State.MERGING,
            State.MERGED,
            updates=updates,
            remove=(HOLDER, DEADLINE),
            only_if={HOLDER: holder},
        )
    except StateConflict as e:
        # Another run took the lease over (this one outlived it): its result stands.
        logger.warning("merge result dropped: the lease was taken over", state=e.actual)
        _discard(deps, key)
        if segment_map is not None:
            _discard(deps, map_key)
        return deps.store.require(meeting_uuid)
    deps.submit_queue.send(SubmitRequest(meeting_uuid=meeting_uuid))
    deps.pump.nudge("merged")
    record_metric("MergeSeconds", wall, MetricUnit.Seconds)
    if wall > 0:
        # Meeting seconds per wall second in every layout (a compact file is shorter).
        meeting_seconds = figures.get("meeting_seconds", figures["seconds"])
        record_metric("MergeRealtimeFactor", meeting_seconds / wall, MetricUnit.Count)
    logger.info(
        "merged",
        seconds_of_audio=round(figures["seconds"], 3),
        wall_seconds=round(wall, 3),
        channels=len(merged.channel_map) or 1,
        diarization=merged.diarization,
        speaker_count=merged.participant_count if merged.diarization else None,
        speaker_count_source=merged.speaker_count_source if merged.diarization else None,
        left_out=[t.file_id for t in tracks if t.excluded_reason],
        speakers=len(usable),
        **{k: v for k, v in figures.items() if k not in ("seconds", "elapsed")},
    )
    return merged


def _discard(deps: MergerDeps, key: str) -> None:
    try:
        deps.s3.delete_object(Bucket=deps.settings.media_bucket, Key=key)
    except ClientError as e:
        logger.info("superseded merged file not deleted", error=aws.error_code(e))


def fail_merge(
    store: RecordingStore, meeting_uuid: str, reason: str, *, lease: str | None = None
) -> None:
    """FAILED with the reason; with `lease`, only while that run still holds the meeting."""
    try:
        store.fail(
            meeting_uuid,
            [State.RECEIVED, State.MERGING],
            stage=STAGE,
            reason=reason,
            only_if={HOLDER: lease} if lease else None,
        )
    except StateConflict:
        logger.info("merge failure not recorded: meeting already moved on")

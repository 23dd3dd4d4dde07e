"""StartTranscriptionJob's synchronous checks: what the API refuses with BadRequestException
before a job exists (reference §1; botocore's model for lengths and patterns). What needs the
media (format, sample rate, channels, duration) fails the job later instead.

Decisions where the reference is silent or leaves a choice:
- Messages follow AWS's request-validation style ("1 validation error detected: ..."); their
  exact wording is ASSUMED.
- LanguageCode / IdentifyLanguage / IdentifyMultipleLanguages: the API reference says a request
  with more (or none) "fails"; the fake refuses it at once with BadRequestException (chosen: a
  refusal the caller sees at Start, rather than a job that fails later).
- Media.MediaFileUri must be `s3://bucket/key`; http(s) and pre-signed URLs are refused (§1:
  UNCONFIRMED, assumed unsupported).
- OutputKey without OutputBucketName is refused (ASSUMED: the key names a place in a bucket).
- Features the fake cannot honour are refused rather than silently ignored: ShowSpeakerLabels
  (it cannot tell voices apart), ShowAlternatives, custom vocabularies and filters, redaction,
  subtitles, custom models, toxicity detection, per-language settings, and job queueing
  (JobExecutionSettings). ChannelIdentification is supported (at most 2 channels).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

import botocore.session

from sandbox.fake_transcribe.model import (
    MEDIA_FORMATS,
    SPEAKER_LABELS_UNSUPPORTED,
    TranscribeError,
    bad_request,
)

_JOB_NAME = re.compile(r"[0-9a-zA-Z._-]{1,200}")
_OUTPUT_KEY = re.compile(r"[a-zA-Z0-9\-_.!*'()/]{1,1024}")
_BUCKET = re.compile(r"[a-z0-9][.\-a-z0-9]{1,61}[a-z0-9]")
_KMS_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9:_/+=,@.-]{0,2048}")
_S3_URI = re.compile(r"s3://(?P<bucket>[^/]+)/(?P<key>.+)", re.DOTALL)

_UNSUPPORTED_FIELDS = (
    "ContentRedaction",
    "Subtitles",
    "ModelSettings",
    "ToxicityDetection",
    "LanguageIdSettings",
    "JobExecutionSettings",
)
_UNSUPPORTED_SETTINGS = ("VocabularyName", "VocabularyFilterName", "VocabularyFilterMethod")


@dataclass(frozen=True)
class StartRequest:
    """A StartTranscriptionJob body that passed the synchronous checks."""

    job_name: str
    media_uri: str
    media_bucket: str
    media_key: str
    language_code: str | None
    identify_language: bool
    identify_multiple_languages: bool
    language_options: tuple[str, ...]
    media_format: str | None
    sample_rate: int | None
    output_bucket: str | None
    output_key: str | None
    kms_key_id: str | None
    channel_identification: bool
    settings: dict[str, Any] = field(default_factory=dict)
    tags: tuple[dict[str, str], ...] = ()


@functools.cache
def language_codes() -> frozenset[str]:
    """The `LanguageCode` values of botocore's Transcribe model (what the API accepts)."""
    model = botocore.session.get_session().get_service_model("transcribe")
    return frozenset(model.shape_for("LanguageCode").metadata["enum"])


def _constraint(value: object, member: str, constraint: str) -> TranscribeError:
    return bad_request(
        f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy "
        f"constraint: {constraint}"
    )


def _optional_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad_request(f"{name} must be a string.")
    return value


def _flag(source: dict[str, Any], name: str) -> bool:
    value = source.get(name, False)
    if not isinstance(value, bool):
        raise bad_request(f"{name} must be a boolean.")
    return value


def validate_job_name(name: object, member: str = "transcriptionJobName") -> str:
    """A job name as the API accepts it (1-200 of [0-9a-zA-Z._-], case-sensitive)."""
    if not isinstance(name, str) or not _JOB_NAME.fullmatch(name):
        raise _constraint(
            name,
            member,
            "Member must satisfy regular expression pattern: ^[0-9a-zA-Z._-]+ and have length "
            "between 1 and 200",
        )
    return name


def _media(body: dict[str, Any]) -> tuple[str, str, str]:
    media = body.get("Media")
    uri = media.get("MediaFileUri") if isinstance(media, dict) else None
    if not isinstance(uri, str) or not uri:
        raise bad_request("Media.MediaFileUri is required.")
    if isinstance(media, dict) and "RedactedMediaFileUri" in media:
        raise bad_request("RedactedMediaFileUri applies to call analytics only.")
    found = _S3_URI.fullmatch(uri)
    if found is None or len(uri) > 2000:
        raise bad_request(
            "The URI that you specified isn't valid. Specify an Amazon S3 URI in the form "
            "s3://bucket/key and try your request again."
        )
    return uri, found["bucket"], found["key"]


def _languages(body: dict[str, Any]) -> tuple[str | None, bool, bool, tuple[str, ...]]:
    code = _optional_str(body, "LanguageCode")
    identify = _flag(body, "IdentifyLanguage")
    multiple = _flag(body, "IdentifyMultipleLanguages")
    if (code is not None) + identify + multiple != 1:
        raise bad_request(
            "Specify exactly one of LanguageCode, IdentifyLanguage or IdentifyMultipleLanguages "
            "and try your request again."
        )
    if code is not None and code not in language_codes():
        raise _constraint(code, "languageCode", "Member must satisfy enum value set")
    options = body.get("LanguageOptions")
    if options is None:
        return code, identify, multiple, ()
    if code is not None:
        raise bad_request("LanguageOptions applies only with language identification.")
    if (
        not isinstance(options, list)
        or len(options) < 2
        or not all(isinstance(o, str) and o in language_codes() for o in options)
    ):
        raise bad_request("LanguageOptions must list at least 2 supported language codes.")
    return code, identify, multiple, tuple(options)


def _media_format(body: dict[str, Any]) -> str | None:
    value = _optional_str(body, "MediaFormat")
    if value is not None and value not in MEDIA_FORMATS:
        raise _constraint(
            value,
            "mediaFormat",
            f"Member must satisfy enum value set: [{', '.join(MEDIA_FORMATS)}]",
        )
    return value


def _sample_rate(body: dict[str, Any]) -> int | None:
    """Its range (8 000-48 000) is checked by the job: the reference documents a FailureReason
    for it ("Invalid sample rate for audio file")."""
    value = body.get("MediaSampleRateHertz")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad_request("MediaSampleRateHertz must be an integer.")
    return value


def _output(body: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    bucket = _optional_str(body, "OutputBucketName")
    key = _optional_str(body, "OutputKey")
    kms = _optional_str(body, "OutputEncryptionKMSKeyId")
    if bucket is not None and (len(bucket) > 64 or not _BUCKET.fullmatch(bucket)):
        raise _constraint(
            bucket,
            "outputBucketName",
            "Member must satisfy regular expression pattern: [a-z0-9][\\.\\-a-z0-9]{1,61}[a-z0-9]",
        )
    if key is not None:
        if not _OUTPUT_KEY.fullmatch(key):
            raise _constraint(
                key,
                "outputKey",
                "Member must satisfy regular expression pattern: [a-zA-Z0-9-_.!*'()/]{1,1024}$",
            )
        if bucket is None:
            raise bad_request("OutputKey requires OutputBucketName.")
    if kms is not None and not _KMS_KEY.fullmatch(kms):
        raise _constraint(
            kms,
            "outputEncryptionKMSKeyId",
            "Member must satisfy regular expression pattern: "
            "^[A-Za-z0-9][A-Za-z0-9:_/+=,@.-]{0,2048}$",
        )
    context = body.get("KMSEncryptionContext")
    if context is not None and (
        not isinstance(context, dict)
        or not 1 <= len(context) <= 10
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in context.items())
    ):
        raise bad_request("KMSEncryptionContext must map 1 to 10 strings to strings.")
    return bucket, key, kms


def _settings(body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The settings (as sent) and whether channel identification was asked for."""
    settings = body.get("Settings") or {}
    if not isinstance(settings, dict):
        raise bad_request("Settings must be an object.")
    speakers = _flag(settings, "ShowSpeakerLabels")
    channels = _flag(settings, "ChannelIdentification")
    if speakers and channels:
        raise bad_request(
            "You can't include both ShowSpeakerLabels and ChannelIdentification in the same "
            "request."
        )
    maximum = settings.get("MaxSpeakerLabels")
    if speakers != (maximum is not None):
        raise bad_request("ShowSpeakerLabels and MaxSpeakerLabels must be specified together.")
    if maximum is not None and (
        not isinstance(maximum, int) or isinstance(maximum, bool) or not 2 <= maximum <= 30
    ):
        raise _constraint(maximum, "settings.maxSpeakerLabels", "Member must be between 2 and 30")
    if speakers:
        raise bad_request(SPEAKER_LABELS_UNSUPPORTED)
    if _flag(settings, "ShowAlternatives") or "MaxAlternatives" in settings:
        raise bad_request("The sandbox's fake Transcribe does not support ShowAlternatives.")
    for name in _UNSUPPORTED_SETTINGS:
        if name in settings:
            raise bad_request(f"The sandbox's fake Transcribe has no custom vocabularies ({name}).")
    return settings, channels


def _tags(body: dict[str, Any]) -> tuple[dict[str, str], ...]:
    tags = body.get("Tags")
    if tags is None:
        return ()
    if (
        not isinstance(tags, list)
        or not 1 <= len(tags) <= 200
        or not all(
            isinstance(t, dict)
            and isinstance(t.get("Key"), str)
            and 1 <= len(t["Key"]) <= 128
            and isinstance(t.get("Value", ""), str)
            and len(t.get("Value", "")) <= 256
            for t in tags
        )
    ):
        raise bad_request("Tags must list 1 to 200 {Key (1-128), Value (0-256)} strings.")
    return tuple({"Key": t["Key"], "Value": t.get("Value", "")} for t in tags)


def parse_start(body: object) -> StartRequest:
    """The request, or TranscribeError (BadRequestException) naming the first problem."""
    if not isinstance(body, dict):
        raise TranscribeError("SerializationException", "The request body must be a JSON object.")
    name = validate_job_name(body.get("TranscriptionJobName"))
    uri, media_bucket, media_key = _media(body)
    code, identify, multiple, options = _languages(body)
    media_format = _media_format(body)
    sample_rate = _sample_rate(body)
    output_bucket, output_key, kms = _output(body)
    settings, channels = _settings(body)
    for unsupported in _UNSUPPORTED_FIELDS:
        if unsupported in body:
            raise bad_request(f"The sandbox's fake Transcribe does not support {unsupported}.")
    return StartRequest(
        job_name=name,
        media_uri=uri,
        media_bucket=media_bucket,
        media_key=media_key,
        language_code=code,
        identify_language=identify,
        identify_multiple_languages=multiple,
        language_options=options,
        media_format=media_format,
        sample_rate=sample_rate,
        output_bucket=output_bucket,
        output_key=output_key,
        kms_key_id=kms,
        channel_identification=channels,
        settings=settings,
        tags=_tags(body),
    )

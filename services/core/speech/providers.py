"""The provider a deployment runs (`SPEECH_PROVIDER`), built from its settings."""

from __future__ import annotations

from services.core.secrets import SecretCache
from services.core.settings import SpeechSettings
from services.core.speech.aws import AwsSpeech, AwsSpeechConfig
from services.core.speech.provider import ProviderName, SpeechAnalytics
from services.core.speech.symbl import symbl_client
from services.core.speech.symbl_provider import SymblProvider, SymblWaits


def speech_provider(
    settings: SpeechSettings,
    secrets: SecretCache,
    *,
    media_bucket: str = "",
    waits: SymblWaits | None = None,
    provider: ProviderName | None = None,
) -> SpeechAnalytics:
    """The configured provider, or `provider` when a consumer serves one provider whatever the
    setting (Transcribe's job events). `media_bucket` is where the AWS provider's transcripts go
    (services that only settle jobs may leave it empty); `waits` bound Symbl's insights steps."""
    if (provider or settings.speech_provider) == "aws":
        return AwsSpeech(
            AwsSpeechConfig(
                stack_name=settings.stack_name,
                media_bucket=media_bucket,
                language_code=settings.transcribe_language_code,
                transcript_kms_key_arn=settings.transcript_kms_key_arn,
                model_id=settings.bedrock_model_id,
                context_tokens=settings.bedrock_context_tokens,
                max_output_tokens=settings.bedrock_max_output_tokens,
            )
        )
    return SymblProvider(symbl_client(settings, secrets), waits)

"""A local Symbl.ai (async audio API) for development and tests.

Why: the hosted service may no longer exist (reference §0), and the pipeline has to be proven
against something that behaves like it: same auth, same status codes and bodies, same concurrency
ceiling, same job life cycle and webhook, same Conversation API shapes. Everything here follows
the Symbl API reference (cited as §n).

The fake is also a measuring instrument: it finds the speech really in the submitted file, and
says what the meeting's script has there (`recogniser`).

By concern (each module lists the decisions it took where the reference is silent):
- `auth`: tokens (§1), from token:generate to the check of every request.
- `jobs`: submissions and their validation, the concurrency limit and its 429, job timers,
  webhooks, and the records tests inspect.
- `faults`: the fault knobs.
- `recogniser`: from the received audio to messages (download, ffprobe, silencedetect, text).
- `insights`: the rules that turn messages into topics, questions, action items, follow-ups, a
  summary and analytics.
- `conversation_api`: the Conversation API's JSON (§7) and the hosted summary page (§8).
- `state`: `FakeSymblState`, what the fake knows, and the job engine.
- `app`: the Flask app (`create_app`) and `serve`.
- `model`: what the modules share (messages, transcripts, ids, times).
"""

from sandbox.fake_symbl.app import create_app, serve
from sandbox.fake_symbl.auth import TOKEN_INVALID_MESSAGE
from sandbox.fake_symbl.conversation_api import ExperienceRequest
from sandbox.fake_symbl.faults import ENDPOINTS
from sandbox.fake_symbl.jobs import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    DuplicateJob,
    Duration,
    JobRecord,
    JobStatus,
    Rejection,
    Submission,
    SubmitAttempt,
    WebhookAttempt,
    seeded_uniform,
)
from sandbox.fake_symbl.model import UNINTELLIGIBLE
from sandbox.fake_symbl.recogniser import AudioInfo, probe_audio, speech_segments
from sandbox.fake_symbl.state import FakeSymblState

__all__ = [
    "ACTIVE_STATUSES",
    "ENDPOINTS",
    "TERMINAL_STATUSES",
    "TOKEN_INVALID_MESSAGE",
    "UNINTELLIGIBLE",
    "AudioInfo",
    "DuplicateJob",
    "Duration",
    "ExperienceRequest",
    "FakeSymblState",
    "JobRecord",
    "JobStatus",
    "Rejection",
    "Submission",
    "SubmitAttempt",
    "WebhookAttempt",
    "create_app",
    "probe_audio",
    "seeded_uniform",
    "serve",
    "speech_segments",
]

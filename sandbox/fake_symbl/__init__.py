"""A local Symbl.ai (async audio API) for development and tests.

Why: the hosted service may no longer exist (reference §0), and the pipeline has to be proven
against something that behaves like it: same auth, same status codes and bodies, same concurrency
ceiling, same job life cycle and webhook, same Conversation API shapes. Everything here follows
the Symbl API reference (cited as §n).

The fake is also a measuring instrument: it finds the speech really in the submitted file, and
says what the meeting's script has there (`recogniser`). A mono file of a meeting whose lines
have audio templates is recognised by content, from the audio alone, word by word; its messages
name nobody until speaker events (`PUT .../speakers`) do, after a delay. The fake accounts what
each job bills (duration x channels) and can say, for every word heard, who really said it and
who it is attributed to (`measure`, sandbox-only readouts under `/_sandbox/`).

By concern (each module lists the decisions it took where the reference is silent):
- `auth`: tokens (§1), from token:generate to the check of every request.
- `jobs`: submissions and their validation, the concurrency limit and its 429, job timers,
  webhooks, and the records tests inspect.
- `faults`: the fault knobs.
- `recogniser`: from the received audio to messages (download, ffprobe; by content with
  `sandbox.fingerprint`, or by timing with silencedetect and the script).
- `speakers`: the Speaker Events API and attribution of messages to the users it names.
- `insights`: the rules that turn messages into topics, questions, action items, follow-ups, a
  summary and analytics.
- `conversation_api`: the Conversation API's JSON (§7) and the hosted summary page (§8).
- `measure`: billing and the truth readout (sandbox only, not Symbl's API).
- `state`: `FakeSymblState`, what the fake knows, the job engine, speaker events' delay.
- `app`: the Flask app (`create_app`) and `serve`.
- `model`: what the modules share (messages, words, transcripts, ids, times).
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
from sandbox.fake_symbl.measure import (
    Billing,
    ConversationTruth,
    HeardLine,
    TruthWord,
)
from sandbox.fake_symbl.model import UNINTELLIGIBLE
from sandbox.fake_symbl.recogniser import AudioInfo, probe_audio, speech_segments
from sandbox.fake_symbl.speakers import SPEAKERS_MESSAGE, SpeakerEventsPut
from sandbox.fake_symbl.state import FakeSymblState

__all__ = [
    "ACTIVE_STATUSES",
    "ENDPOINTS",
    "SPEAKERS_MESSAGE",
    "TERMINAL_STATUSES",
    "TOKEN_INVALID_MESSAGE",
    "UNINTELLIGIBLE",
    "AudioInfo",
    "Billing",
    "ConversationTruth",
    "DuplicateJob",
    "Duration",
    "ExperienceRequest",
    "FakeSymblState",
    "HeardLine",
    "JobRecord",
    "JobStatus",
    "Rejection",
    "SpeakerEventsPut",
    "Submission",
    "SubmitAttempt",
    "TruthWord",
    "WebhookAttempt",
    "create_app",
    "probe_audio",
    "seeded_uniform",
    "serve",
    "speech_segments",
]

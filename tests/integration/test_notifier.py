"""The notifier against moto's server and the fake Symbl: the insights document, the email as
moto's SES recorded it, exactly one email under duplicate delivery, under a crash after the
send and under an SES answer that leaves the send in doubt, skip rules, the summary (requested,
waited for within a budget, or missing and said so), and the operators' failure notices.

The conversation is real: a three-channel file whose speech sits at scripted times goes through
the fake Symbl, which answers with what each speaker was scripted to say.

moto keeps only the HTML part of a `Simple` SES message (`moto/sesv2/responses.py`), so the text
part is read from the request the SES client sent (a botocore event hook), while recipients,
subject, HTML and the number of emails come from moto's own store (`/moto-api/data.json`).
"""

from __future__ import annotations

import email as email_parser
import json
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email import policy as email_policy
from html import unescape
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import urlsplit

import jwt
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from flask import Flask

from sandbox.aws_resources import ProvisionedStack
from sandbox.credentials import SandboxCredentials
from sandbox.fake_symbl import FakeSymblState, serve
from sandbox.http_server import LoopbackServer
from sandbox.local_aws import LocalAws, sent_emails
from sandbox.registry import MeetingRegistry, ScriptedMeeting, ScriptLine
from services.core import aws
from services.core.errors import ConfigurationError
from services.core.failures import announce_failures
from services.core.insights.document import InsightsDocument, insights_key
from services.core.queues import NotifyRequest, QueueSender
from services.core.recordings import Recording, RecordingStore, State, utcnow
from services.core.secrets import SecretCache
from services.core.settings import NotifierSettings, settings_from
from services.core.speech import symbl_provider
from services.core.speech.provider import NotReady, Speaker, SpeechAnalytics
from services.core.speech.symbl import AudioSubmission, SymblClient, SymblCredentials
from services.core.speech.symbl_provider import SymblProvider
from services.notifier import notify
from services.notifier.handler import build_deps, handle_batch
from services.notifier.notify import EMAIL_IN_DOUBT, NotifierDeps, OutgoingEmail
from services.webhook.insights_page import InsightsPageDeps, insights_blueprint

CREDENTIALS = SandboxCredentials()
SENDER = "Meeting notes <notes@example.com>"
EPOCH = datetime(2026, 3, 3, 13, 5, tzinfo=UTC)  # a Tuesday
TOPIC = "Launch review <script>alert('x')</script> — Zoë & 李雷"
SPEAKERS = (
    Speaker("Zoë Ødegård", "zoe@example.com"),
    Speaker("李雷"),
    Speaker("Bob <i>the builder</i>"),
)
# (channel, start, end, text): one tone per line on the speaker's channel.
# Over 50 words in over 3 sentences, so that the fake Symbl writes a summary when asked.
SCRIPT = (
    (
        1,
        0.5,
        2.0,
        "Welcome everyone, thanks for joining the launch review. This quarter the whole team"
        " worked hard on the new release, and the numbers look good so far.",
    ),
    (
        2,
        2.5,
        4.0,
        "Can we ship the launch build on Friday? I will finish the release notes by Thursday.",
    ),
    (3, 4.5, 6.0, "<script>alert('x')</script> The launch checklist is ready."),
    (1, 6.5, 8.0, "Great, I'll send the budget summary to 李雷 tomorrow."),
    (2, 8.5, 9.5, "Perfect, see you at the launch."),
)
SECTIONS = ("summary", "action-items", "follow-ups", "questions", "topics", "speakers")


@pytest.fixture
def credentials() -> SandboxCredentials:
    """One set for the module: the fake Symbl below outlives each test's stack."""
    return CREDENTIALS


# ---------------------------------------------------------------------------------------------
# The fake Symbl with a scripted conversation
# ---------------------------------------------------------------------------------------------


def _tone_expression() -> str:
    channels = []
    for channel in (1, 2, 3):
        spans = [f"between(t,{s},{e})" for c, s, e, _ in SCRIPT if c == channel]
        channels.append(f"if({'+'.join(spans)},0.5*sin(2*PI*{220 * channel}*t),0)")
    return "aevalsrc='" + "|".join(channels) + "':s=16000:d=10"


def _flac(path: Path) -> bytes:
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            _tone_expression(),
            "-c:a",
            "flac",
            "-sample_fmt",
            "s16",
            str(path),
        ],
        check=True,
    )
    return path.read_bytes()


@dataclass
class FakeSymbl:
    state: FakeSymblState
    url: str
    media_url: str
    registry: MeetingRegistry

    def client(self) -> SymblClient:
        return SymblClient(
            self.url,
            lambda: SymblCredentials(CREDENTIALS.symbl_app_id, CREDENTIALS.symbl_app_secret),
        )

    def submit(
        self, topic: str, script: tuple[tuple[int, float, float, str], ...] = SCRIPT
    ) -> tuple[str, str]:
        """(conversation id, job id) of the scripted file submitted under `topic`; speech the
        `script` does not cover comes back unintelligible."""
        speakers = SPEAKERS
        self.registry.register(
            ScriptedMeeting(
                uuid=topic,
                topic=topic,
                speakers=[s.name for s in speakers],
                lines=[ScriptLine(speakers[c - 1].name, t, s, e) for c, s, e, t in script],
            )
        )
        job = self.client().submit_audio_url(
            AudioSubmission(
                url=self.media_url,
                name=topic,
                webhook_url="http://127.0.0.1:9/unused",
                channels=speakers,
            )
        )
        return job.conversation_id, job.job_id


@pytest.fixture(scope="module")
def symbl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeSymbl]:
    folder = tmp_path_factory.mktemp("notifier")
    audio = _flac(folder / "meeting.flac")

    def media(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response(
            "200 OK", [("Content-Type", "audio/flac"), ("Content-Length", str(len(audio)))]
        )
        return [audio]

    registry = MeetingRegistry(folder / "registry")
    state = FakeSymblState(
        app_id=CREDENTIALS.symbl_app_id,
        app_secret=CREDENTIALS.symbl_app_secret,
        concurrency_limit=10,
        queue_seconds=0.01,
        processing_seconds=0.05,
        registry=registry,
        conversation_epoch=EPOCH,
        summary_seconds=0,  # written as soon as it is asked for; the wait tests change it
    )
    server = serve(state)
    media_server = LoopbackServer(media).start()
    try:
        yield FakeSymbl(state, server.url, f"{media_server.url}/meeting.flac", registry)
    finally:
        media_server.stop()
        server.stop()
        state.close()


@pytest.fixture(scope="module")
def conversation_id(symbl: FakeSymbl) -> str:
    conversation, job = symbl.submit(TOPIC)
    assert symbl.state.wait_for_job(job, timeout=30) == "completed"
    return conversation


# ---------------------------------------------------------------------------------------------
# The notifier, its outside world, and what moto recorded
# ---------------------------------------------------------------------------------------------


@dataclass
class Rig:
    stack: ProvisionedStack
    endpoint: str
    env: dict[str, str]
    topic_arn: str
    host: str
    sent_requests: list[dict[str, Any]] = field(default_factory=list)

    def deps(self, **overrides: str) -> NotifierDeps:
        deps = build_deps(settings_from(NotifierSettings, {**self.env, **overrides}))
        # A spy on what the SES client sends (moto keeps no text part), not a stand-in for SES.
        mailer = deps.mailer
        assert isinstance(mailer, notify.SesMailer)
        mailer.client.meta.events.register(
            "provide-client-params.sesv2.SendEmail",
            lambda params, **_: self.sent_requests.append(
                {
                    "ConfigurationSetName": params.get("ConfigurationSetName"),
                    **parse_mime(params["Content"]["Raw"]["Data"]),
                }
            ),
        )
        return deps

    @property
    def store(self) -> RecordingStore:
        return RecordingStore(self.stack.names.recordings_table)

    def add_transcribed(
        self, uuid: str, conversation: str, *, topic: str = TOPIC, host: str | None = None
    ) -> Recording:
        store = self.store
        store.create_if_absent(
            Recording(
                meeting_uuid=uuid,
                meeting_id="81234567890",
                topic=topic,
                host_email=host or self.host,
                start_time="2026-03-03T13:05:00Z",
                timezone="Europe/Oslo",
                duration_minutes=47,
            )
        )
        return store.transition(
            uuid,
            State.RECEIVED,
            State.TRANSCRIBED,
            updates={"job_id": f"job-{uuid}", "conversation_id": conversation},
        )

    def emails(self) -> list[dict[str, Any]]:
        """Every email moto's SES accepted for this test's host, its MIME parsed."""
        found = []
        for m in sent_emails(REGION):
            if m.get("raw_data") and self.host in m["destinations"]:
                found.append(
                    {
                        "id": m["id"],
                        "source": m["source"],
                        "destinations": {"ToAddresses": list(m["destinations"])},
                        **parse_mime(m["raw_data"]),
                    }
                )
        return found

    def notices(self) -> list[dict[str, Any]]:
        return [
            {"message": n[1], "subject": n[2], "attributes": n[3]}
            for n in sns_notifications(self.topic_arn)
        ]


@pytest.fixture
def rig(stack: ProvisionedStack, local_aws: LocalAws, symbl: FakeSymbl) -> Rig:
    prefix = stack.names.prefix
    aws.client("sesv2").create_email_identity(EmailIdentity="notes@example.com")
    topic_arn = stack.operator_topic_arn  # provisioned with the stack, as the Terraform does
    host = f"host-{prefix}@example.com"
    env = {
        **stack.service_environment(),
        "SYMBL_API_BASE_URL": symbl.url,
        "SES_SENDER": SENDER,
        "SES_CONFIGURATION_SET": f"{prefix}-insights",
        # The host again (other case) and a colleague: the host must get one copy.
        "EXTRA_RECIPIENTS": f" {host.upper()} , team-{prefix}@example.com",
        "OPTED_OUT_HOSTS": f"optout-{prefix}@example.com",
        "INSIGHTS_PAGE_BASE_URL": "https://insights.example.test/",
        "OPERATOR_TOPIC_ARN": topic_arn,
        "SUMMARY_RETRY_SECONDS": "0",
    }
    assert local_aws.endpoint_url is not None
    return Rig(stack, local_aws.endpoint_url, env, topic_arn, host)


REGION = "us-east-1"


def sns_notifications(topic_arn: str) -> list[Any]:
    """What moto's SNS delivered to a topic, read from its backend (the server runs here)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sns.models import sns_backends

    return list(sns_backends[DEFAULT_ACCOUNT_ID][REGION].topics[topic_arn].sent_notifications)


def parse_mime(raw: str | bytes) -> dict[str, str]:
    """Subject, HTML (`body`) and text parts of a MIME message."""
    message = email_parser.message_from_bytes(
        raw if isinstance(raw, bytes) else raw.encode(), policy=email_policy.default
    )
    html = message.get_body(preferencelist=("html",))
    text = message.get_body(preferencelist=("plain",))
    return {
        "to": [address.strip() for address in str(message["To"]).split(",")],
        "subject": str(message["Subject"]),
        "body": html.get_content() if html is not None else "",
        "text": text.get_content() if text is not None else "",
    }


def sqs_event(uuid: str, *, message_id: str = "msg-1", receive_count: int = 1) -> dict[str, Any]:
    """What Lambda's SQS event source delivers for one NotifyRequest."""
    return {
        "Records": [
            {
                "messageId": message_id,
                "receiptHandle": f"receipt-{message_id}-{receive_count}",
                "body": json.dumps({"meeting_uuid": uuid}),
                "attributes": {"ApproximateReceiveCount": str(receive_count)},
            }
        ]
    }


def failed_ids(result: dict[str, Any]) -> list[str]:
    return [f["itemIdentifier"] for f in result["batchItemFailures"]]


def page_app(rig: Rig) -> Flask:
    secrets = SecretCache()
    deps = InsightsPageDeps(
        store=rig.store,
        s3=aws.client("s3"),
        bucket=rig.stack.names.media_bucket,
        signing_key=lambda: secrets.get_string(rig.env["LINK_SIGNING_KEY_SECRET_ARN"]),
    )
    app = Flask(__name__)
    app.register_blueprint(insights_blueprint(lambda: deps))
    return app


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------


def test_insights_stored_and_one_email_with_every_section(rig: Rig, conversation_id: str) -> None:
    uuid = f"{rig.stack.names.prefix}/Ab+c=="
    rig.add_transcribed(uuid, conversation_id)
    deps = rig.deps()

    assert failed_ids(handle_batch(sqs_event(uuid), deps)) == []
    assert failed_ids(handle_batch(sqs_event(uuid, receive_count=2), deps)) == []  # duplicate

    (email,) = rig.emails()
    item = rig.store.require(uuid)
    assert item.state == State.NOTIFIED and item.email_message_id == email["id"]
    assert item.insights_key == insights_key(uuid) and item.attempts["notify"] == 1
    assert email["source"] == SENDER
    # moto lists the Destination and the MIME To header together; the header is the message's.
    assert email["to"] == [
        rig.host,
        f"team-{rig.stack.names.prefix}@example.com",
    ]
    assert email["subject"] == f"Meeting notes: {TOPIC} (3 Mar 2026)"

    html = email["body"]
    assert "<script>" not in html and "<i>" not in html
    assert "Launch review &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; — Zoë &amp; 李雷" in html
    assert "Bob &lt;i&gt;the builder&lt;/i&gt;" in html
    for section in SECTIONS:
        assert f'id="{section}"' in html
    assert "Tuesday 3 March 2026 &middot; 14:05 CET &middot; 47 min" in html
    assert "I will finish the release notes by Thursday." in html
    assert 'Assigned to <strong>李雷</strong> &middot; Due <time datetime="2026-03-05">' in html
    assert "I&#39;ll send the budget summary to 李雷 tomorrow." in html  # a follow-up
    assert "Can we ship the launch build on Friday?" in html
    assert "launch" in html and "Zoë Ødegård" in html
    experience = f"{urlsplit(rig.env['SYMBL_API_BASE_URL']).netloc}/meeting/#/"
    assert experience in html

    (request,) = rig.sent_requests
    assert request["ConfigurationSetName"] == f"{rig.stack.names.prefix}-insights"
    assert request["body"] == html
    text = email["text"]
    assert request["text"] == text
    for heading in (
        "SUMMARY",
        "ACTION ITEMS",
        "FOLLOW-UPS",
        "QUESTIONS",
        "TOP TOPICS",
        "WHO SPOKE",
    ):
        assert heading in text
    assert TOPIC in text and "Bob <i>the builder</i>" in text  # plain text, as typed
    assert "Assigned to 李雷 · Due Thu 5 Mar 2026" in text
    assert experience in text

    link = unescape(html.split('id="insights-link" href="', 1)[1].split('"', 1)[0])
    assert link in text
    url = urlsplit(link)
    assert url.netloc == "insights.example.test"
    assert url.path == "/meetings/" + uuid.replace("/", "%2F").replace("+", "%2B").replace(
        "=", "%3D"
    )
    page = page_app(rig).test_client().get(f"{url.path}?{url.query}")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "Perfect, see you at the launch." in body and "&lt;script&gt;" in body
    assert "<script>" not in body


def test_insights_document_is_structured(rig: Rig, conversation_id: str) -> None:
    uuid = f"{rig.stack.names.prefix}-doc"
    rig.add_transcribed(uuid, conversation_id)
    assert failed_ids(handle_batch(sqs_event(uuid), rig.deps())) == []

    raw = aws.client("s3").get_object(Bucket=rig.stack.names.media_bucket, Key=insights_key(uuid))
    stored = json.loads(raw["Body"].read())
    assert stored["schema_version"] == 1
    document = InsightsDocument.model_validate(stored)
    assert document.conversation_id == conversation_id
    assert document.meeting.model_dump() == {
        "uuid": uuid,
        "meeting_id": "81234567890",
        "topic": TOPIC,
        "host_email": rig.host,
        "start_time": "2026-03-03T13:05:00Z",
        "timezone": "Europe/Oslo",
        "duration_seconds": 47 * 60,
    }
    assert [(s.name, s.email) for s in document.speakers] == [
        ("Zoë Ødegård", "zoe@example.com"),
        ("李雷", None),
        ("Bob <i>the builder</i>", None),
    ]
    assert all(s.talk_seconds > 1 and 0 < s.talk_percent < 100 for s in document.speakers)
    assert [(u.speaker, round(u.start_seconds)) for u in document.transcript] == [
        (SPEAKERS[c - 1].name, round(s)) for c, s, _, _ in SCRIPT
    ]
    assert document.transcript[2].text == SCRIPT[2][3]
    (action,) = document.action_items
    assert (action.text, action.assignee, action.due_date) == (
        "I will finish the release notes by Thursday.",
        "李雷",
        date(2026, 3, 5),
    )
    (follow_up,) = document.follow_ups
    assert follow_up.assignee == "Zoë Ødegård" and follow_up.due_date == date(2026, 3, 4)
    assert [q.text for q in document.questions] == ["Can we ship the launch build on Friday?"]
    assert document.questions[0].asked_by == "李雷"
    assert document.topics[0].text == "launch"
    assert document.summary and document.experience_url


def test_symbls_summary_page_expires_with_the_insights_link_and_is_read_only(
    rig: Rig, symbl: FakeSymbl, conversation_id: str
) -> None:
    uuid = f"{rig.stack.names.prefix}-page-life"
    rig.add_transcribed(uuid, conversation_id)
    asked_before = len(symbl.state.experience_requests)
    deps = rig.deps(INSIGHTS_LINK_LIFETIME_DAYS="7")
    assert failed_ids(handle_batch(sqs_event(uuid), deps)) == []

    (request,) = symbl.state.experience_requests[asked_before:]
    assert request.conversation_id == conversation_id
    assert request.options == {"summaryURLExpiresIn": 7 * 86400, "readOnly": True}
    assert stored_document(rig, uuid).experience_url == request.url
    assert request.url.startswith("https://")
    (email,) = rig.emails()
    assert f'href="{request.url}"' in email["body"] and request.url in email["text"]
    # The insights link next to it lives exactly as long.
    link = unescape(email["body"].split('id="insights-link" href="', 1)[1].split('"', 1)[0])
    claims = jwt.decode(
        urlsplit(link).query.removeprefix("token="),
        deps.link_key(),
        algorithms=["HS256"],
        audience="insights-page",
    )
    assert claims["exp"] - claims["iat"] == request.options["summaryURLExpiresIn"]


def test_a_link_signing_key_under_32_bytes_stops_the_notifier_at_start(rig: Rig) -> None:
    arn = rig.env["LINK_SIGNING_KEY_SECRET_ARN"]
    short = "k" * 31
    aws.client("secretsmanager").put_secret_value(SecretId=arn, SecretString=short)
    with pytest.raises(ConfigurationError) as refused:
        rig.deps()
    assert arn in str(refused.value) and "32 bytes" in str(refused.value)
    assert short not in str(refused.value)


class CrashAfterSend:
    """SES accepts the email, then the process dies before the outcome is recorded."""

    def __init__(self, mailer: notify.Mailer) -> None:
        self.mailer = mailer

    def send(self, email: OutgoingEmail) -> str:
        self.mailer.send(email)
        raise RuntimeError("the Lambda runtime was killed after SES accepted the email")


def test_crash_between_send_and_state_update_never_sends_twice(
    rig: Rig, conversation_id: str
) -> None:
    uuid = f"{rig.stack.names.prefix}-crash"
    rig.add_transcribed(uuid, conversation_id)
    crashing = rig.deps()
    crashing.mailer = CrashAfterSend(crashing.mailer)
    assert failed_ids(handle_batch(sqs_event(uuid), crashing)) == ["msg-1"]
    assert rig.store.require(uuid).state == State.NOTIFYING
    assert len(rig.emails()) == 1

    retry = rig.deps()
    # Right away, the first sender might still be at work: nothing is sent, the message retried.
    assert failed_ids(handle_batch(sqs_event(uuid, receive_count=2), retry)) == ["msg-1"]
    assert rig.store.require(uuid).state == State.NOTIFYING
    # Once no sender can still be running, the meeting is settled without a second email.
    retry.clock = lambda: utcnow() + timedelta(seconds=notify.SEND_SETTLE_SECONDS + 1)
    assert failed_ids(handle_batch(sqs_event(uuid, receive_count=3), retry)) == []
    item = rig.store.require(uuid)
    assert item.state == State.NOTIFIED and item.email_message_id == EMAIL_IN_DOUBT
    # Even the last allowed delivery, which gives up on failure, sends nothing more.
    assert failed_ids(handle_batch(sqs_event(uuid, receive_count=5), retry)) == []
    assert len(rig.emails()) == 1
    assert rig.notices() == []


def test_concurrent_duplicate_deliveries_send_one_email(rig: Rig, conversation_id: str) -> None:
    uuid = f"{rig.stack.names.prefix}-twice"
    rig.add_transcribed(uuid, conversation_id)
    both_rendered = threading.Barrier(2, timeout=20)
    results: list[dict[str, Any]] = []

    def container() -> None:
        deps = rig.deps()
        render = deps.render

        def render_then_wait(document: InsightsDocument, url: str) -> notify.EmailContent:
            content = render(document, url)
            both_rendered.wait()  # both deliveries reach the claim together
            return content

        deps.render = render_then_wait
        results.append(handle_batch(sqs_event(uuid), deps))

    threads = [threading.Thread(target=container) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [failed_ids(r) for r in results] == [[], []]
    assert len(rig.emails()) == 1
    assert rig.store.require(uuid).state == State.NOTIFIED


@pytest.mark.parametrize(
    ("topic", "host", "reason"),
    [
        ("Weekly 1:1 [No-Notes]", None, "topic contains '[no-notes]'"),
        ("Board prep", "optout", "host opted out of meeting notes"),
    ],
)
def test_skip_rules(rig: Rig, topic: str, host: str | None, reason: str) -> None:
    uuid = f"{rig.stack.names.prefix}-skip"
    address = f"optout-{rig.stack.names.prefix}@example.com" if host else None
    rig.add_transcribed(uuid, "no-conversation-needed", topic=topic, host=address)
    assert failed_ids(handle_batch(sqs_event(uuid), rig.deps())) == []
    item = rig.store.require(uuid)
    assert (item.state, item.skip_reason) == (State.SKIPPED, reason)
    assert rig.emails() == [] and rig.sent_requests == []


class CountingSpeech:
    """The real Symbl client, counting the summary generations it asks for."""

    def __init__(self, speech: SpeechAnalytics) -> None:
        self.speech = speech
        self.refreshes: list[str] = []

    def refresh_summary(self, conversation_id: str) -> bool:
        self.refreshes.append(conversation_id)
        return self.speech.refresh_summary(conversation_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.speech, name)


def counting(deps: NotifierDeps) -> CountingSpeech:
    """A spy on the Symbl client the provider adapter calls."""
    provider = deps.speech
    assert isinstance(provider, SymblProvider)
    spy = CountingSpeech(provider.client)
    provider.client = cast(SymblClient, spy)
    return spy


def stored_document(rig: Rig, uuid: str) -> InsightsDocument:
    raw = aws.client("s3").get_object(Bucket=rig.stack.names.media_bucket, Key=insights_key(uuid))
    return InsightsDocument.model_validate_json(raw["Body"].read())


def page_of(rig: Rig, email: dict[str, Any]) -> str:
    """The insights page the email links to, as the webhook serves it."""
    link = unescape(email["body"].split('id="insights-link" href="', 1)[1].split('"', 1)[0])
    url = urlsplit(link)
    page = page_app(rig).test_client().get(f"{url.path}?{url.query}")
    assert page.status_code == 200
    return page.get_data(as_text=True)


def test_the_summary_is_requested_once_then_read(rig: Rig, symbl: FakeSymbl) -> None:
    conversation, job = symbl.submit(f"{TOPIC} (summary on request)")
    assert symbl.state.wait_for_job(job, timeout=30) == "completed"
    client = symbl.client()
    with pytest.raises(NotReady):  # complete, but nobody asked for a summary yet
        client.conversation(conversation, "summary")
    uuid = f"{rig.stack.names.prefix}-refresh"
    rig.add_transcribed(uuid, conversation)
    deps = rig.deps()
    spy = counting(deps)

    assert failed_ids(handle_batch(sqs_event(uuid), deps)) == []
    assert spy.refreshes == [conversation]
    item = rig.store.require(uuid)
    assert item.state == State.NOTIFIED and item.attempts[symbl_provider.SUMMARY_REQUESTED] == 1
    document = stored_document(rig, uuid)
    assert document.summary and document.summary_missing is None
    (email,) = rig.emails()
    assert document.summary[0] in unescape(email["body"]) and document.summary[0] in email["text"]
    assert "No summary was generated" not in email["body"] + email["text"]


def test_summary_waited_for_then_the_email_goes_without_it(rig: Rig, symbl: FakeSymbl) -> None:
    symbl.state.summary_seconds = 600  # asked for, never written within the test
    try:
        conversation, job = symbl.submit(f"{TOPIC} (slow summary)")
        assert symbl.state.wait_for_job(job, timeout=30) == "completed"
        uuid = f"{rig.stack.names.prefix}-slow-summary"
        rig.add_transcribed(uuid, conversation)
        deps = rig.deps(SUMMARY_MAX_CHECKS="2")
        spy = counting(deps)
        queue_url = rig.stack.queue_urls["notify"]

        for check in (1, 2):
            assert failed_ids(handle_batch(sqs_event(uuid, receive_count=1), deps)) == []
            item = rig.store.require(uuid)
            assert (
                item.state == State.TRANSCRIBED
                and item.attempts[symbl_provider.SUMMARY_WAIT] == check
            )
            # A fresh, delayed request, not a failed delivery: the receive count stays 1.
            (again,) = aws.client("sqs").receive_message(QueueUrl=queue_url, WaitTimeSeconds=2)[
                "Messages"
            ]
            assert json.loads(again["Body"]) == {"meeting_uuid": uuid}
            aws.client("sqs").delete_message(
                QueueUrl=queue_url, ReceiptHandle=again["ReceiptHandle"]
            )
            assert rig.emails() == []

        # The budget is spent: the email goes out without a summary, and says so.
        assert failed_ids(handle_batch(sqs_event(uuid), deps)) == []
    finally:
        symbl.state.summary_seconds = 0
    assert spy.refreshes == [conversation]  # asked once, not on every check
    item = rig.store.require(uuid)
    assert item.state == State.NOTIFIED and item.attempts[symbl_provider.SUMMARY_WAIT] == 2
    document = stored_document(rig, uuid)
    assert (document.summary, document.summary_missing) == ([], "not_ready")
    assert document.action_items  # everything else is there
    (email,) = rig.emails()
    said = "No summary was generated: none was ready when these notes were sent."
    assert said in email["body"] and said in email["text"]
    assert said in page_of(rig, email)
    assert rig.notices() == []


SHORT_SCRIPT = SCRIPT[1:3]  # about 25 words: too short to summarise


@pytest.mark.parametrize("answer", ["empty", "404"])
def test_a_short_conversation_is_sent_at_once_without_a_summary(
    rig: Rig, symbl: FakeSymbl, answer: Literal["empty", "404"]
) -> None:
    conversation, job = symbl.submit(f"{TOPIC} (short, {answer})", SHORT_SCRIPT)
    assert symbl.state.wait_for_job(job, timeout=30) == "completed"
    uuid = f"{rig.stack.names.prefix}-short-{answer}"
    rig.add_transcribed(uuid, conversation)
    symbl.state.unsummarisable_answer = answer
    try:
        assert failed_ids(handle_batch(sqs_event(uuid), rig.deps())) == []
    finally:
        symbl.state.unsummarisable_answer = "empty"

    item = rig.store.require(uuid)
    assert item.state == State.NOTIFIED and symbl_provider.SUMMARY_WAIT not in item.attempts
    document = stored_document(rig, uuid)
    assert (document.summary, document.summary_missing) == ([], "too_short")
    (email,) = rig.emails()
    said = "No summary was generated: the conversation was too short to summarise"
    assert said in email["body"] and said in email["text"]
    assert said in page_of(rig, email)


def test_ses_refusal_fails_the_meeting_and_tells_the_operators(
    rig: Rig, conversation_id: str
) -> None:
    uuid = f"{rig.stack.names.prefix}-refused"
    rig.add_transcribed(uuid, conversation_id)
    deps = rig.deps(SES_SENDER="Nobody <nobody@unverified.example>")

    assert failed_ids(handle_batch(sqs_event(uuid), deps)) == []  # permanent: acknowledged
    item = rig.store.require(uuid)
    assert (item.state, item.failed_stage) == (State.FAILED, "notify")
    assert "MessageRejected" in (item.failure_reason or "")
    assert [t.state for t in item.history][-3:] == [
        State.NOTIFYING,
        State.TRANSCRIBED,  # the claim was released: SES sent nothing
        State.FAILED,
    ]
    assert rig.notices() == []  # the notifier announces nothing itself: the sweep does
    announce_failures(rig.store, deps.sns, rig.topic_arn)
    (notice,) = rig.notices()
    assert notice["subject"] == "Meeting processing failed at notify"
    assert uuid in notice["message"] and "MessageRejected" in notice["message"]
    assert notice["attributes"]["stage"]["Value"] == "notify"
    assert rig.emails() == []


def test_meeting_failed_elsewhere_is_announced_once_and_the_host_never_emailed(
    rig: Rig, conversation_id: str
) -> None:
    uuid = f"{rig.stack.names.prefix}-merge-failed"
    rig.add_transcribed(uuid, conversation_id)
    failed = rig.store.fail(uuid, State.TRANSCRIBED, stage="merge", reason="ffmpeg exited 1")
    QueueSender(rig.stack.queue_urls["notify"]).send(NotifyRequest(meeting_uuid=uuid))
    deps = rig.deps()

    for delivery in (1, 2):
        assert failed_ids(handle_batch(sqs_event(uuid, receive_count=delivery), deps)) == []
    assert rig.notices() == []  # the notifier announces nothing itself: the sweep does
    for _ in range(2):
        announce_failures(rig.store, deps.sns, rig.topic_arn)
    (notice,) = rig.notices()
    assert notice["subject"] == "Meeting processing failed at merge"
    assert "ffmpeg exited 1" in notice["message"] and failed.meeting_id in notice["message"]
    assert rig.host not in notice["message"]  # masked
    assert rig.emails() == []

    # Failing again after an operator retry is a new failure, announced again.
    store = rig.store
    store.transition(uuid, State.FAILED, State.TRANSCRIBED)
    store.fail(uuid, State.TRANSCRIBED, stage="notify", reason="second time")
    announce_failures(rig.store, deps.sns, rig.topic_arn)
    assert len(rig.notices()) == 2


def test_malformed_and_unknown_requests_are_acknowledged(rig: Rig) -> None:
    deps = rig.deps()
    bad = sqs_event("x")
    bad["Records"][0]["body"] = "{not json"
    assert failed_ids(handle_batch(bad, deps)) == []
    assert failed_ids(handle_batch(sqs_event(f"{rig.stack.names.prefix}-nobody"), deps)) == []
    assert rig.notices() == []


# ---------------------------------------------------------------------------------------------
# What SES's answer proves: not sent (released), or in doubt (settled, never sent again)
# ---------------------------------------------------------------------------------------------


def ses_error(code: str, status: int) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"{code} from the stub"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "SendEmail",
    )


class StubSes:
    """An SES v2 client that answers each `send_email` with the next scripted outcome (an
    exception to raise, else a message id) and records every attempt."""

    def __init__(self, *outcomes: Exception) -> None:
        self.outcomes = list(outcomes)
        self.attempts: list[dict[str, Any]] = []

    def send_email(self, **request: Any) -> dict[str, str]:
        self.attempts.append(request)
        if self.outcomes:
            raise self.outcomes.pop(0)
        return {"MessageId": f"stub-{len(self.attempts)}"}


def stubbed(rig: Rig, ses: StubSes) -> NotifierDeps:
    deps = rig.deps()
    deps.mailer = notify.SesMailer(client=ses)
    return deps


def recorded_metrics(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    names: list[str] = []
    monkeypatch.setattr(notify, "record_metric", lambda name, *_a, **_k: names.append(name))
    return names


@pytest.mark.parametrize(
    "answer",
    [
        ses_error("InternalFailure", 500),
        ses_error("ServiceUnavailable", 503),
        ReadTimeoutError(endpoint_url="https://email.us-east-1.amazonaws.com"),
    ],
    ids=["500", "503", "read-timeout"],
)
def test_an_ses_answer_in_doubt_settles_the_meeting_and_never_sends_again(
    rig: Rig, conversation_id: str, answer: Exception, monkeypatch: pytest.MonkeyPatch
) -> None:
    uuid = f"{rig.stack.names.prefix}-ses-doubt"
    rig.add_transcribed(uuid, conversation_id)
    ses = StubSes(answer)
    deps = stubbed(rig, ses)
    metrics = recorded_metrics(monkeypatch)

    assert failed_ids(handle_batch(sqs_event(uuid), deps)) == []  # settled: acknowledged
    item = rig.store.require(uuid)
    assert item.state == State.NOTIFIED and item.email_message_id == EMAIL_IN_DOUBT
    assert "not sent again" in (item.last_error or "")
    assert [t.state for t in item.history][-2:] == [State.NOTIFYING, State.NOTIFIED]
    assert "EmailsInDoubt" in metrics and "EmailsSent" not in metrics

    # A redelivery (and the last one, which gives up on failure) sends nothing.
    for receive_count in (2, 5):
        assert failed_ids(handle_batch(sqs_event(uuid, receive_count=receive_count), deps)) == []
    assert len(ses.attempts) == 1
    assert rig.store.require(uuid).state == State.NOTIFIED
    assert rig.notices() == []


def test_an_ses_rejection_releases_the_claim_and_fails_the_meeting(
    rig: Rig, conversation_id: str
) -> None:
    uuid = f"{rig.stack.names.prefix}-ses-rejected"
    rig.add_transcribed(uuid, conversation_id)
    ses = StubSes(ses_error("MessageRejected", 400))

    assert failed_ids(handle_batch(sqs_event(uuid), stubbed(rig, ses))) == []  # permanent
    item = rig.store.require(uuid)
    assert (item.state, item.failed_stage) == (State.FAILED, "notify")
    assert [t.state for t in item.history][-3:] == [
        State.NOTIFYING,
        State.TRANSCRIBED,  # released: SES sent nothing
        State.FAILED,
    ]
    assert len(ses.attempts) == 1
    announce_failures(rig.store, rig.deps().sns, rig.topic_arn)
    (notice,) = rig.notices()
    assert "MessageRejected" in notice["message"]


@pytest.mark.parametrize(
    "answer",
    [
        ses_error("Throttling", 400),
        ses_error("TooManyRequestsException", 429),
        EndpointConnectionError(endpoint_url="https://email.us-east-1.amazonaws.com"),
    ],
    ids=["throttling", "too-many-requests", "unreachable"],
)
def test_an_ses_refusal_before_acceptance_releases_the_claim_and_the_retry_sends(
    rig: Rig, conversation_id: str, answer: Exception
) -> None:
    uuid = f"{rig.stack.names.prefix}-ses-throttled"
    rig.add_transcribed(uuid, conversation_id)
    ses = StubSes(answer)
    deps = stubbed(rig, ses)

    assert failed_ids(handle_batch(sqs_event(uuid), deps)) == ["msg-1"]  # retried
    item = rig.store.require(uuid)
    assert item.state == State.TRANSCRIBED and item.email_message_id is None
    assert [t.state for t in item.history][-2:] == [State.NOTIFYING, State.TRANSCRIBED]

    assert failed_ids(handle_batch(sqs_event(uuid, receive_count=2), deps)) == []
    item = rig.store.require(uuid)
    assert (item.state, item.email_message_id) == (State.NOTIFIED, "stub-2")
    assert len(ses.attempts) == 2


def test_a_meeting_transcribed_by_the_other_provider_fails_to_be_transcribed_again(
    rig: Rig,
) -> None:
    """After a switch to Symbl, a meeting Transcribe had transcribed cannot be read here: it
    ends FAILED in the transcribe stage (announced by the failure sweep, never emailed), and a
    replay sends it back to be submitted to the current provider."""
    from services.ops.cli import replay

    uuid = f"{rig.stack.names.prefix}-switched"
    rig.add_transcribed(uuid, "transcripts/x/job.json")
    rig.store.update_fields(uuid, State.TRANSCRIBED, {"speech_provider": "aws"})
    deps = rig.deps()
    assert failed_ids(handle_batch(sqs_event(uuid), deps)) == []
    item = rig.store.require(uuid)
    assert (item.state, item.failed_stage) == (State.FAILED, "transcribe")
    assert "now uses symbl" in (item.failure_reason or "")
    assert rig.sent_requests == []
    queues = {"submit": QueueSender(rig.stack.queue_urls["submit"])}
    replay(rig.store, queues, uuid)  # type: ignore[arg-type]
    assert rig.store.require(uuid).state == State.MERGED

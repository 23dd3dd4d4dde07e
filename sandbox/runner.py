"""The whole system on one machine: AWS (moto's server, or any endpoint in `AWS_ENDPOINT_URL`),
fake Zoom, fake Symbl, and (with the AWS provider) fake Transcribe and fake Bedrock Runtime on
loopback, reached through boto3's per-service endpoint variables (`AWS_ENDPOINT_URL_TRANSCRIBE`,
`AWS_ENDPOINT_URL_BEDROCK_RUNTIME`), and the triggers AWS would fire, each calling the real
handler:

- API Gateway       → the webhook app on a local port (real HTTP);
- SQS event sources → pollers that receive from the merge and notify queues and call the
                      consumers with SQS-shaped events; only the records not reported in
                      `batchItemFailures` are deleted, so visibility timeouts and the queues'
                      redrive to their DLQs work as they do in AWS;
- `ecs:RunTask`     → the merger's Fargate entrypoint as a subprocess, with the environment
                      overrides read back from the ECS API (so the real RunTask call is made);
- async `lambda:Invoke` of the pump → the pump handler on a worker thread (the call is taken
                      off boto3 before it leaves, as Lambda would take it);
- the reconciler's schedule → a timer;
- the EventBridge rule on "Transcribe Job State Change" → the fake Transcribe's events are sent
                      to the job-events queue (as the rule's SQS target would), whose poller
                      calls the job-events consumer.

`LocalStack.stop()` ends every thread, subprocess and port it opened.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.aws_resources import ProvisionedStack, StackNames, provision
from sandbox.credentials import SandboxCredentials
from sandbox.fake_bedrock import FakeBedrockState
from sandbox.fake_bedrock import serve as serve_bedrock
from sandbox.fake_symbl import FakeSymblState
from sandbox.fake_symbl import serve as serve_symbl
from sandbox.fake_transcribe import FakeTranscribeState
from sandbox.fake_transcribe import serve as serve_transcribe
from sandbox.fake_zoom import FakeZoomState, loopback_origin
from sandbox.http_server import LoopbackServer
from sandbox.local_aws import LocalAws, sent_emails
from sandbox.registry import MeetingRegistry
from services.core import aws
from services.core.observability import logger
from services.core.settings import (
    JobEventsSettings,
    MergerSettings,
    NotifierSettings,
    ReconcilerSettings,
    SubmitterSettings,
    WebhookSettings,
    settings_from,
)

ROOT = Path(__file__).resolve().parent.parent
SES_SENDER = "Meeting notes <notes@insights.example.com>"


@dataclass
class StackOptions:
    prefix: str = "local"
    symbl_limit: int = 2
    symbl_queue_seconds: float = 0.2
    symbl_processing_seconds: float = 1.0
    reconcile_every_seconds: float = 5.0
    # Scaled deadlines for the reconciler, so repairs happen within a demo or a test.
    stuck_seconds: int = 60
    inline_merge_max_seconds: int = 2 * 3600
    audio_layout: str = "compact"  # or "multichannel" (AUDIO_LAYOUT)
    speech_provider: str = "symbl"  # or "aws" (SPEECH_PROVIDER)
    # The AWS provider: our slot limit, the fake's concurrent-job quota, its processing time,
    # and the model's context window (the fake Bedrock enforces the same window).
    transcribe_limit: int = 2
    transcribe_quota: int = 250
    transcribe_processing_seconds: float = 1.0
    bedrock_context_tokens: int = 300_000
    bedrock_max_output_tokens: int = 4_096
    pump_workers: int = 2
    # Concurrent invocations per SQS event source (Lambda scales consumers out the same way).
    merge_concurrency: int = 2
    notify_concurrency: int = 2
    workdir: Path = field(default_factory=lambda: ROOT / ".demo")


class _Poller(threading.Thread):
    """An SQS event source: receive, call the consumer, delete what it did not report failed."""

    def __init__(
        self,
        name: str,
        queue_url: str,
        consumer: Callable[[dict[str, Any]], dict[str, Any]],
        stop: threading.Event,
        batch_size: int = 1,
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.queue_url = queue_url
        self.consumer = consumer
        self.stop_event = stop
        self.batch_size = batch_size
        self.invocations = 0

    def run(self) -> None:
        sqs = aws.client("sqs")
        arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        while not self.stop_event.is_set():
            try:
                messages = sqs.receive_message(
                    QueueUrl=self.queue_url,
                    MaxNumberOfMessages=self.batch_size,
                    WaitTimeSeconds=1,
                    AttributeNames=["All"],
                ).get("Messages", [])
            except Exception as e:  # noqa: BLE001 - keep polling; the endpoint may be restarting
                logger.warning("poll failed", queue=self.name, error=str(e))
                self.stop_event.wait(0.5)
                continue
            if not messages:
                continue
            event = {"Records": [_record(m, arn) for m in messages]}
            self.invocations += 1
            try:
                result = self.consumer(event)
                failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
            except Exception:  # noqa: BLE001 - Lambda would report the whole batch failed
                logger.exception("consumer crashed", queue=self.name)
                continue
            for message in messages:
                if message["MessageId"] not in failed:
                    sqs.delete_message(
                        QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                    )


def _record(message: dict[str, Any], arn: str) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": aws.client("sqs").meta.region_name,
    }


class LocalStack:
    def __init__(self, options: StackOptions | None = None) -> None:
        self.options = options or StackOptions()
        self.credentials = SandboxCredentials()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._servers: list[LoopbackServer] = []
        self._tasks: dict[str, subprocess.Popen[bytes]] = {}
        self._pump_pool = ThreadPoolExecutor(
            max_workers=self.options.pump_workers, thread_name_prefix="pump"
        )
        self._pump_pending = threading.Semaphore(self.options.pump_workers + 1)
        self.aws = LocalAws(os.environ.get("AWS_ENDPOINT_URL"))
        self.pump_runs = 0
        self.task_runs = 0

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> LocalStack:
        workdir = self.options.workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.aws.start()
        names = StackNames(self.options.prefix)
        self.stack: ProvisionedStack = provision(names, self.credentials.secret_values())
        self._provision_extras(names)
        self.registry = MeetingRegistry(workdir / "registry")
        self.zoom = FakeZoomState(
            account_id=self.credentials.zoom_account_id,
            client_id=self.credentials.zoom_client_id,
            client_secret=self.credentials.zoom_client_secret,
        )
        self.zoom_server = self._serve(LoopbackServer(_zoom_app(self.zoom)))
        self.symbl = FakeSymblState(
            app_id=self.credentials.symbl_app_id,
            app_secret=self.credentials.symbl_app_secret,
            concurrency_limit=self.options.symbl_limit,
            queue_seconds=self.options.symbl_queue_seconds,
            processing_seconds=self.options.symbl_processing_seconds,
            registry=self.registry,
            # Template fingerprints depend only on the renders: built once per machine.
            fingerprint_cache_dir=ROOT / ".cache" / "fingerprints",
        )
        self.symbl_server = serve_symbl(self.symbl)
        self._servers.append(self.symbl_server)
        self.transcribe: FakeTranscribeState | None = None
        self.bedrock: FakeBedrockState | None = None
        self._saved_env: dict[str, str | None] = {}
        if self.options.speech_provider == "aws":
            self._start_aws_speech()
        self._intercept_pump_invokes()
        # The API's port is needed in the services' settings before the app is built.
        from services.webhook.app import build_deps, create_app

        api_app = _LazyApp()
        self.api = LoopbackServer(api_app)
        self.env = self._environment(self.api.url)
        api_app.target = create_app(build_deps(settings_from(WebhookSettings, self.env)))
        self._serve(self.api)
        self._start_triggers()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)
        self._pump_pool.shutdown(wait=True, cancel_futures=True)
        for process in self._tasks.values():
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
        for server in reversed(self._servers):
            server.stop()
        self.symbl.close()
        if self.transcribe is not None:
            self.transcribe.close()
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        aws.reset_clients()
        self.aws.stop()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- setup -------------------------------------------------------------------------------

    def _serve(self, server: LoopbackServer) -> LoopbackServer:
        server.start()
        self._servers.append(server)
        return server

    def _start_aws_speech(self) -> None:
        """Fake Transcribe and Bedrock Runtime on loopback; boto3 reaches them through the
        per-service endpoint variables while everything else stays on moto."""
        o = self.options
        self.transcribe = FakeTranscribeState(
            s3_client_factory=lambda: aws.client("s3"),
            registry=self.registry,
            fingerprint_cache_dir=ROOT / ".cache" / "fingerprints",
            processing_seconds=o.transcribe_processing_seconds,
            concurrency_quota=o.transcribe_quota,
            on_event=self._deliver_job_event,
        )
        transcribe_server = self._serve_started(serve_transcribe(self.transcribe))
        self.bedrock = FakeBedrockState(context_tokens=o.bedrock_context_tokens)
        bedrock_server = self._serve_started(serve_bedrock(self.bedrock))
        for key, value in (
            ("AWS_ENDPOINT_URL_TRANSCRIBE", transcribe_server.url),
            ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", bedrock_server.url),
        ):
            self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value
        aws.reset_clients()

    def _serve_started(self, server: LoopbackServer) -> LoopbackServer:
        self._servers.append(server)
        return server

    def _deliver_job_event(self, envelope: dict[str, Any]) -> None:
        """The EventBridge rule's SQS target: the event, as JSON, is the message body."""
        aws.client("sqs").send_message(
            QueueUrl=self.stack.queue_urls["job-events"], MessageBody=json.dumps(envelope)
        )

    def _provision_extras(self, names: StackNames) -> None:
        """The Fargate side the Terraform declares: a VPC subnet, a security group, the cluster
        and the merger's task definition (moto's ECS wants DNS hostnames on the VPC)."""
        ec2 = aws.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        self.subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.1.0/24")["Subnet"]["SubnetId"]
        self.security_group = ec2.create_security_group(
            GroupName=f"{names.prefix}-merger-task", Description="merger task", VpcId=vpc
        )["GroupId"]
        ecs = aws.client("ecs")
        self.cluster = f"{names.prefix}-cluster"
        ecs.create_cluster(clusterName=self.cluster)
        self.task_definition = ecs.register_task_definition(
            family=f"{names.prefix}-merger",
            requiresCompatibilities=["FARGATE"],
            networkMode="awsvpc",
            cpu="2048",
            memory="4096",
            containerDefinitions=[
                {
                    "name": "merger",
                    "image": f"{names.prefix}/merger-task:local",
                    "memory": 4096,
                    "command": ["python", "-m", "services.merger.task"],
                }
            ],
        )["taskDefinition"]["taskDefinitionArn"]

    def _environment(self, api_url: str) -> dict[str, str]:
        o = self.options
        env = {
            **self.stack.service_environment(),
            "ZOOM_API_BASE_URL": f"{self.zoom_server.url}/v2",
            "ZOOM_OAUTH_URL": f"{self.zoom_server.url}/oauth/token",
            # The fake Zoom serves downloads over plain http on loopback: allow exactly it.
            "ZOOM_DOWNLOAD_LOOPBACK_ORIGINS": loopback_origin(self.zoom_server.url),
            "SYMBL_API_BASE_URL": self.symbl_server.url,
            "SYMBL_CONCURRENCY_LIMIT": str(o.symbl_limit),
            "SPEECH_PROVIDER": o.speech_provider,
            "TRANSCRIBE_CONCURRENCY_LIMIT": str(o.transcribe_limit),
            "BEDROCK_CONTEXT_TOKENS": str(o.bedrock_context_tokens),
            "BEDROCK_MAX_OUTPUT_TOKENS": str(o.bedrock_max_output_tokens),
            "CALLBACK_BASE_URL": api_url,
            "INSIGHTS_PAGE_BASE_URL": api_url,
            "SES_SENDER": SES_SENDER,
            "ECS_CLUSTER": self.cluster,
            "ECS_TASK_DEFINITION": self.task_definition,
            "ECS_SUBNETS": self.subnet,
            "ECS_SECURITY_GROUPS": self.security_group,
            "INLINE_MERGE_MAX_SECONDS": str(o.inline_merge_max_seconds),
            "DOWNLOAD_RETRY_BUDGET_SECONDS": "60",
            "PUMP_MAX_SECONDS": "20",
            "SUMMARY_RETRY_SECONDS": "2",
            "AUDIO_LAYOUT": o.audio_layout,
            "SPEAKER_RETRY_SECONDS": "1",
            "WORK_DIR": str(o.workdir),
            "RECEIVED_STUCK_SECONDS": str(o.stuck_seconds),
            "MERGED_STUCK_SECONDS": str(o.stuck_seconds),
            "SUBMITTING_STUCK_SECONDS": str(max(30, o.stuck_seconds // 2)),
            "TRANSCRIBED_STUCK_SECONDS": str(o.stuck_seconds),
            "MERGE_STUCK_SECONDS": str(o.stuck_seconds * 10),
            "SUBMITTED_CHECK_SECONDS": str(max(1, o.stuck_seconds // 6)),
            # Sandbox jobs take seconds: a job (or a submission whose outcome is unknown) is
            # given up after this, not after production's hour.
            "JOB_DEADLINE_BASE_SECONDS": str(o.stuck_seconds * 2),
        }
        return env

    def _intercept_pump_invokes(self) -> None:
        """Async invokes of the pump run the pump handler here, as Lambda would."""
        pump_name = self.stack.names.function("pump")

        def before_invoke(params: dict[str, Any], **_: Any) -> Any:
            # `params` is the serialised request: the function name is in its path.
            if f"/functions/{pump_name}/" not in str(params.get("url_path", "")):
                return None
            self.nudge_pump()
            return (_FakeHttp(202), {"StatusCode": 202, "ResponseMetadata": {}})

        aws.client("lambda").meta.events.register("before-call.lambda.Invoke", before_invoke)

    def sent_emails(self) -> list[dict[str, Any]]:
        """Every email SES sent, from the endpoint's own state."""
        if self.aws.started_server:
            return sent_emails(self.aws.region)
        return sent_emails_at(self.aws.endpoint_url or "")

    def nudge_pump(self) -> None:
        # Coalesce: while every worker is busy and one run is queued, more nudges add nothing.
        if not self._pump_pending.acquire(blocking=False):
            return
        self._pump_pool.submit(self._run_pump)

    def _run_pump(self) -> None:
        from services.submitter.handler import build_pump_deps
        from services.submitter.pump import run_pump

        try:
            self.pump_runs += 1
            deps = build_pump_deps(settings_from(SubmitterSettings, self.env))
            deps.jobs.pump = _Nudge(self)
            run_pump(deps)
        except Exception:  # noqa: BLE001 - a failed invoke; the schedule runs it again
            logger.exception("pump run failed")
        finally:
            self._pump_pending.release()

    # --- triggers ----------------------------------------------------------------------------

    def _start_triggers(self) -> None:
        from services.merger.handler import handle_batch as merge_batch
        from services.merger.merge import build_deps as merger_deps
        from services.notifier.handler import build_deps as notifier_deps
        from services.notifier.handler import handle_batch as notify_batch
        from services.submitter.handler import (
            build_job_events_deps,
            build_reconciler_deps,
            handle_job_events,
        )
        from services.submitter.reconciler import reconcile

        merger = merger_deps(settings_from(MergerSettings, self.env))
        merger.pump = _Nudge(self)
        notifier = notifier_deps(settings_from(NotifierSettings, self.env))
        reconciler = build_reconciler_deps(settings_from(ReconcilerSettings, self.env))
        reconciler.jobs.pump = _Nudge(self)
        job_events_settings = settings_from(JobEventsSettings, self.env)
        job_events = build_job_events_deps(job_events_settings)
        job_events.pump = _Nudge(self)
        o = self.options
        self._threads += [
            *(
                _Poller(
                    f"merge-{i}",
                    self.stack.queue_urls["merge"],
                    lambda event: merge_batch(event, merger),
                    self._stop,
                )
                for i in range(o.merge_concurrency)
            ),
            *(
                _Poller(
                    f"notify-{i}",
                    self.stack.queue_urls["notify"],
                    lambda event: notify_batch(event, notifier),
                    self._stop,
                    batch_size=5,
                )
                for i in range(o.notify_concurrency)
            ),
            _Poller(
                "job-events",
                self.stack.queue_urls["job-events"],
                lambda event: handle_job_events(event, job_events_settings, job_events),
                self._stop,
                batch_size=10,
            ),
            threading.Thread(target=self._run_tasks, name="ecs", daemon=True),
            threading.Thread(
                target=self._schedule,
                args=(lambda: reconcile(reconciler),),
                name="schedule",
                daemon=True,
            ),
        ]
        for thread in self._threads:
            thread.start()

    def _schedule(self, reconcile: Callable[[], Any]) -> None:
        while not self._stop.wait(self.options.reconcile_every_seconds):
            try:
                reconcile()
            except Exception:  # noqa: BLE001 - the next tick tries again
                logger.exception("reconciler run failed")

    def _run_tasks(self) -> None:
        """Play Fargate: start each task RunTask created, with its overrides, as a subprocess."""
        ecs = aws.client("ecs")
        while not self._stop.wait(0.5):
            try:
                arns = ecs.list_tasks(cluster=self.cluster).get("taskArns", [])
                new = [arn for arn in arns if arn not in self._tasks]
                if new:
                    for task in ecs.describe_tasks(cluster=self.cluster, tasks=new)["tasks"]:
                        self._start_task(task)
                for arn, process in list(self._tasks.items()):
                    if process.poll() is not None and arn in arns:
                        ecs.stop_task(cluster=self.cluster, task=arn, reason="exited")
            except Exception:  # noqa: BLE001 - keep playing ECS
                logger.exception("ECS emulation failed")

    def _start_task(self, task: dict[str, Any]) -> None:
        env = {**os.environ, **self.env, "PYTHONPATH": str(ROOT)}
        for override in task.get("overrides", {}).get("containerOverrides", []):
            for pair in override.get("environment", []):
                env[pair["name"]] = pair["value"]
        self.task_runs += 1
        logs = self.options.workdir / "tasks"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / f"{task['taskArn'].rsplit('/', 1)[-1]}.log", "wb") as log:
            self._tasks[task["taskArn"]] = subprocess.Popen(
                [sys.executable, "-m", "services.merger.task"],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )


class _Nudge:
    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack

    def nudge(self, reason: str) -> None:
        self.stack.nudge_pump()


class _FakeHttp:
    def __init__(self, status: int) -> None:
        self.status_code = status
        self.headers: dict[str, str] = {}
        self.content = b""


class _LazyApp:
    """A WSGI app whose target is set once the port it is served on is known."""

    target: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self.target(environ, start_response)


def _zoom_app(state: FakeZoomState) -> Any:
    from sandbox.fake_zoom import create_app

    return create_app(state)


def sent_emails_at(endpoint_url: str) -> list[dict[str, Any]]:
    """What LocalStack's SES sent (its `/_aws/ses` endpoint), in the same shape."""
    import requests

    found = requests.get(f"{endpoint_url}/_aws/ses", timeout=10).json().get("messages", [])
    return [
        {
            "id": m.get("Id"),
            "source": m.get("Source"),
            "destinations": m.get("Destination"),
            "subject": m.get("Subject"),
            "body": (m.get("Body") or {}).get("html_part")
            or (m.get("Body") or {}).get("text_part"),
            "raw_data": m.get("RawData"),
        }
        for m in found
    ]

"""`make demo`: one meeting through the pipeline on the local stack.

Starts moto's server as AWS, provisions the resources, serves the webhook app on a loopback port
(API Gateway's role), has "Zoom" validate the endpoint and deliver a signed `recording.completed`,
then shows the recording item and the queued merge request.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.aws_resources import StackNames, provision
from sandbox.credentials import SandboxCredentials
from sandbox.http_server import LoopbackServer
from sandbox.local_aws import LocalAws
from sandbox.zoom_webhook_sender import ZoomWebhookSender
from services.core import aws
from services.core.observability import logger
from services.core.recordings import RecordingStore, State
from services.core.settings import WebhookSettings, settings_from
from services.webhook.app import build_deps, create_app


def demo_event(now: datetime) -> dict[str, Any]:
    """A `recording.completed` for a three-person meeting that ended a minute ago."""
    uuid = secrets.token_urlsafe(16)[:22] + "=="
    start = now - timedelta(minutes=3)
    speakers = [("Ana Ruiz-Soto", 0), ("Bo Chen", 12), ("Zoë Ødegård", 31)]
    files = [
        {
            "id": f"p-{i + 1}",
            "recording_start": (start + timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "recording_end": (start + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "file_name": f"Audio only - {name}",
            "file_type": "M4A",
            "file_extension": "M4A",
            "file_size": 480_000,
            "download_url": f"http://127.0.0.1/rec/webhook_download/p-{i + 1}",
            "status": "completed",
        }
        for i, (name, offset) in enumerate(speakers)
    ]
    return {
        "event": "recording.completed",
        "event_ts": int(now.timestamp() * 1000),
        "download_token": "demo-download-token",
        "payload": {
            "account_id": "demo-account",
            "object": {
                "uuid": uuid,
                "id": 81234567890,
                "account_id": "demo-account",
                "host_id": "demo-host",
                "host_email": "host@example.com",
                "topic": "Demo: quarterly planning",
                "type": 2,
                "start_time": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "timezone": "Europe/Madrid",
                "duration": 2,
                "recording_files": [],
                "participant_audio_files": files,
            },
        },
    }


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    credentials = SandboxCredentials()
    webhook_secret = credentials.zoom_webhook_secret
    with LocalAws() as local:
        print(f"AWS (moto server)      {local.endpoint_url}")
        stack = provision(StackNames("demo"), credentials.secret_values())
        env = stack.service_environment()
        settings = settings_from(WebhookSettings, env)
        with LoopbackServer(create_app(build_deps(settings))) as api:
            url = f"{api.url}/zoom/webhook"
            print(f"webhook (API Gateway)  {url}")
            zoom = ZoomWebhookSender(url, webhook_secret, time_scale=0.001)
            if not zoom.validate_endpoint():
                print("FAILED: the endpoint did not pass Zoom's URL validation")
                return 1
            print("Zoom URL validation    passed")
            event = demo_event(datetime.now(UTC))
            uuid = event["payload"]["object"]["uuid"]
            result = zoom.deliver(event)
            print(
                f"recording.completed    HTTP {result.statuses[-1]}, {result.attempts} attempt(s)"
            )
            duplicate = zoom.deliver(event)
            print(f"duplicate delivery     HTTP {duplicate.statuses[-1]} (recorded once)")

        recording = RecordingStore(settings.recordings_table).require(uuid)
        print(f"\nrecording {uuid}: {recording.state.value}")
        print(f"  topic    {recording.topic}")
        print(f"  started  {recording.start_time} ({recording.timezone})")
        for track in recording.tracks:
            print(f"  speaker  {track.name:<16} joined {track.recording_start}")
        received = (
            aws.client("sqs")
            .receive_message(QueueUrl=stack.queue_urls["merge"], MaxNumberOfMessages=10)
            .get("Messages", [])
        )
        print(f"\nmerge queue: {len(received)} message(s)")
        for message in received:
            body = json.loads(message["Body"])
            shown = {k: ("<redacted>" if k == "download_token" else v) for k, v in body.items()}
            print(f"  {json.dumps(shown, ensure_ascii=False)}")
        ok = recording.state == State.RECEIVED and len(received) == 1
        print(
            "\nThe meeting is recorded once and waits in RECEIVED for the merge stage, which is"
            " not built yet: next come the merger (audio download and multichannel merge), the"
            " Symbl submitter, and the notifier."
        )
        print(f"\ndemo {'passed' if ok else 'FAILED'} in {time.monotonic() - started:.1f} s")
        return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.demo", description=__doc__)
    parser.add_argument("--verbose", action="store_true", help="show the services' JSON logs")
    args = parser.parse_args(argv)
    if not args.verbose:
        logger.setLevel("WARNING")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

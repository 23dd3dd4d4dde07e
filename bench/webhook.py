"""Webhook intake latency and cold start.

A `recording.completed` with 10 participant files goes through the real Lambda handler (Mangum →
Flask → DynamoDB conditional put → SQS send) against moto in-process; the baseline, measured in
the same run, is a bare Flask handler that only returns 200 behind the same Mangum adapter.
Cold start is a fresh interpreter importing the handler and answering its first request.

Targets: p99 ≤ 30 ms; cold start ≤ 1 s (Zoom allows 3 s for the whole answer). The bench exits
1 when a target is missed.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._targets import Target, report  # noqa: E402

os.environ.update(
    AWS_ACCESS_KEY_ID="bench",
    AWS_SECRET_ACCESS_KEY="bench",
    AWS_DEFAULT_REGION="us-east-1",
    POWERTOOLS_METRICS_DISABLED="true",
    POWERTOOLS_LOG_LEVEL="WARNING",
)
os.environ.pop("AWS_ENDPOINT_URL", None)

SECRET = "bench-webhook-secret"
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "500"))
WARMUP = 30


def bench_secrets() -> dict[str, str]:
    from dataclasses import replace

    from sandbox.credentials import SandboxCredentials

    return replace(SandboxCredentials(), zoom_webhook_secret=SECRET).secret_values()


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(call: Callable[[int], dict[str, Any]]) -> dict[str, float]:
    for i in range(WARMUP):
        call(-1 - i)
    latencies = []
    started = time.perf_counter()
    for i in range(REQUESTS):
        t0 = time.perf_counter()
        response = call(i)
        latencies.append(time.perf_counter() - t0)
        assert response["statusCode"] == 200, response
    elapsed = time.perf_counter() - started
    return {
        "rps": REQUESTS / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


def event_for(i: int) -> dict[str, Any]:
    from sandbox.zoom_webhook_sender import compact_json
    from services.webhook.zoom_signature import zoom_signature
    from tests.support.apigw import http_api_event
    from tests.support.zoom_events import recording_completed

    names = [f"Speaker {n}-{i}" for n in range(10)]
    body = compact_json(recording_completed(f"bench/{i}+uuid==", participants=names))
    ts = str(int(time.time()))
    headers = {
        "content-type": "application/json",
        "x-zm-request-timestamp": ts,
        "x-zm-signature": zoom_signature(SECRET, ts, body),
    }
    return http_api_event("POST", "/zoom/webhook", body, headers)


# The child imports nothing before the clock starts: every module the handler needs (boto3,
# pydantic, Flask, powertools) is loaded inside the measurement, as in a fresh Lambda container.
COLD_START = r"""
import time
t0 = time.perf_counter()
import json, sys
from services.webhook.handler import lambda_handler
t1 = time.perf_counter()
class Context:
    function_name = "webhook"; memory_limit_in_mb = 512; aws_request_id = "cold"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:webhook"
response = lambda_handler(json.loads(sys.stdin.read()), Context())
t2 = time.perf_counter()
assert response["statusCode"] == 200, response
print(json.dumps({"import_s": t1 - t0, "first_request_s": t2 - t1}))
"""


def cold_start() -> dict[str, float]:
    """A fresh interpreter against moto's server on loopback (AWS calls cross a socket)."""
    from sandbox.aws_resources import StackNames, provision
    from sandbox.local_aws import LocalAws

    event = json.dumps(event_for(10_000_000))
    with LocalAws() as local:
        stack = provision(StackNames("cold"), bench_secrets())
        env = {**os.environ, **local.env, **stack.service_environment(), "PYTHONPATH": str(ROOT)}
        return _run_cold(event, env)


def _run_cold(event: str, env: dict[str, str]) -> dict[str, float]:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    interpreter = time.perf_counter() - t0
    out = subprocess.run(
        [sys.executable, "-c", COLD_START],
        input=event,
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    figures: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    figures["interpreter_s"] = interpreter
    figures["cold_start_s"] = interpreter + figures["import_s"] + figures["first_request_s"]
    return figures


def main() -> int:
    from asgiref.wsgi import WsgiToAsgi
    from flask import Flask
    from mangum import Mangum
    from moto import mock_aws

    from tests.support.apigw import FakeLambdaContext

    context = FakeLambdaContext()
    with mock_aws():
        from sandbox.aws_resources import StackNames, provision
        from services.core import aws
        from services.core.settings import WebhookSettings, settings_from
        from services.webhook.app import build_deps
        from services.webhook.handler import build_handler

        aws.reset_clients()
        stack = provision(StackNames("bench"), bench_secrets())
        env = stack.service_environment()
        settings = settings_from(WebhookSettings, env)
        handler = build_handler(build_deps(settings))
        events = {i: event_for(i) for i in range(-WARMUP, REQUESTS)}
        intake = measure(lambda i: handler(events[i], context))
        duplicate = measure(lambda i: handler(events[0], context))

        bare = Flask("bare")
        bare.add_url_rule("/zoom/webhook", "ok", lambda: ("", 200), methods=["POST"])
        bare_handler = Mangum(WsgiToAsgi(bare), lifespan="off")
        baseline = measure(lambda i: bare_handler(events[i], context))
    cold = cold_start()

    print(f"webhook intake: {REQUESTS} requests, 10 participant files each, moto in-process\n")
    print(f"{'path':<34}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'p99 / bare':>12}")
    for name, figures in (
        ("bare Flask 200 (baseline)", baseline),
        ("recording.completed (new)", intake),
        ("recording.completed (duplicate)", duplicate),
    ):
        ratio = figures["p99_ms"] / baseline["p99_ms"]
        print(
            f"{name:<34}{figures['rps']:>10.0f}{figures['p50_ms']:>10.2f}"
            f"{figures['p99_ms']:>10.2f}{ratio:>12.1f}"
        )
    print(
        f"\ncold start: {cold['cold_start_s']:.3f} s = interpreter {cold['interpreter_s']:.3f}"
        f" + import {cold['import_s']:.3f} + first request {cold['first_request_s']:.3f}"
    )
    print()
    return report(
        [
            Target("p99 ≤ 30 ms", intake["p99_ms"] <= 30, f"{intake['p99_ms']:.2f} ms"),
            Target(
                "cold start ≤ 1 s", cold["cold_start_s"] <= 1.0, f"{cold['cold_start_s']:.3f} s"
            ),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())

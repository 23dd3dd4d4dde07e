"""AWS on one machine: moto's server on a free loopback port, or an endpoint you already run.

`LocalAws` points boto3 at the endpoint through the standard variables (`AWS_ENDPOINT_URL`, fake
credentials, a region), so the services' own code runs unchanged. With `AWS_ENDPOINT_URL` already
set (LocalStack, say), it uses that endpoint and starts nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

from sandbox.http_server import LoopbackServer
from services.core import aws

DEFAULT_REGION = "us-east-1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serialized_moto_app(wrap: Callable[[Any], Any] | None = None) -> Any:
    """moto's server app, one request at a time.

    moto's DynamoDB backend is not thread-safe (an update deep-copies an item while another
    thread may be changing it), whereas the real service is linearizable per item. Running
    DynamoDB requests one at a time gives the services' concurrency tests the guarantees AWS
    gives. Responses are materialised under the lock and written to the socket outside it.
    """
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    app = DomainDispatcherApplication(create_backend_app)
    if wrap is not None:  # e.g. a benchmark timing moto's own work, inside the lock
        app = wrap(app)
    lock = threading.Lock()

    def serialized(environ: dict[str, Any], start_response: Any) -> Any:
        # Only DynamoDB needs it; SQS long polls must not hold everyone else up.
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB"):
            return app(environ, start_response)
        with lock:
            result = app(environ, start_response)
            try:
                return list(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()

    return serialized


def sent_emails(region: str = DEFAULT_REGION) -> list[dict[str, Any]]:
    """What SES sent, read from moto's own SES backend (the server runs in this process).

    Each entry has `raw_data` (the MIME message) for raw sends, or `subject`/`body` for simple
    ones, plus `source` and `destinations`. moto's `/moto-api/data.json` would serve the same,
    but it fails outright when any S3 object in the backend cannot be described.
    """
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    messages = []
    for message in ses_backends[DEFAULT_ACCOUNT_ID][region].sent_messages:
        messages.append(
            {
                key: getattr(message, key)
                for key in ("id", "source", "destinations", "subject", "body", "raw_data")
                if hasattr(message, key)
            }
        )
    return messages


_IN_PROCESS_ENDPOINTS: set[str] = set()


class LocalAws:
    def __init__(self, endpoint_url: str | None = None, region: str = DEFAULT_REGION) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self._server: LoopbackServer | None = None
        self._saved_env: dict[str, str | None] = {}

    def start(self) -> LocalAws:
        if self.endpoint_url is None:
            # moto's server logs every request through werkzeug; keep only problems.
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
            server = LoopbackServer(serialized_moto_app()).start()
            self._server = server
            self.endpoint_url = server.url
            _IN_PROCESS_ENDPOINTS.add(server.url)
        self.env = {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }
        for key, value in self.env.items():
            self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value
        aws.reset_clients()
        return self

    @property
    def started_server(self) -> bool:
        """True when moto's server at this endpoint runs in this process (its state can be read
        directly), whether this instance or an outer one (a test session's) started it."""
        return self.endpoint_url in _IN_PROCESS_ENDPOINTS

    def stop(self) -> None:
        if self._server is not None:
            _IN_PROCESS_ENDPOINTS.discard(self._server.url)
            self._server.stop()
            self._server = None
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()
        aws.reset_clients()

    def __enter__(self) -> LocalAws:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

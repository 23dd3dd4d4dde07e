"""The HTTP face of the fake Transcribe: awsJson1.1 (`POST /`, `X-Amz-Target:
Transcribe.<Action>`), errors as `{"__type": code, "Message": ...}` (botocore's JSON parser reads
both), plus the service bucket's temporary transcript URLs and a sandbox billing readout.

botocore's Transcribe model now lists `smithy-rpc-v2-cbor` first, but botocore 1.44 still sends
awsJson1.1; a CBOR request (`POST /service/Transcribe/operation/...`) gets a 404 that says so.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, request
from flask.typing import ResponseReturnValue

from sandbox.fake_transcribe.model import TranscribeError
from sandbox.fake_transcribe.state import FakeTranscribeState
from sandbox.http_server import LoopbackServer

logger = logging.getLogger(__name__)

_CONTENT_TYPE = "application/x-amz-json-1.1"
_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request")


def credential_scope_error(authorization: str, region: str, service: str) -> TranscribeError | None:
    """Why a request's SigV4 Authorization header would be refused (no header, another region
    or service in its credential scope), or None. Signatures are not checked: the fakes hold no
    secret keys."""
    if not authorization:
        return TranscribeError(
            "MissingAuthenticationTokenException", "Missing Authentication Token", 403
        )
    scope = _SCOPE.search(authorization)
    if not authorization.startswith("AWS4-HMAC-SHA256 ") or scope is None:
        return TranscribeError(
            "IncompleteSignatureException", "Authorization header requires a SigV4 Credential.", 403
        )
    if scope["region"] != region:
        return TranscribeError(
            "InvalidSignatureException",
            f"Credential should be scoped to a valid region, not '{scope['region']}'.",
            403,
        )
    if scope["service"] != service:
        return TranscribeError(
            "InvalidSignatureException",
            f"Credential should be scoped to correct service: '{service}'.",
            403,
        )
    return None


def _answer(body: dict[str, Any], status: int = 200) -> Response:
    response = Response(json.dumps(body), status=status, mimetype=_CONTENT_TYPE)
    response.headers["x-amzn-RequestId"] = str(uuid.uuid4())
    return response


def _error(error: TranscribeError) -> Response:
    return _answer({"__type": error.code, "Message": error.message}, error.status)


def create_app(state: FakeTranscribeState) -> Flask:
    """The Flask app serving `state`."""
    app = Flask(__name__, static_folder=None)
    actions: dict[str, Callable[[object], dict[str, Any]]] = {
        "StartTranscriptionJob": state.start,
        "GetTranscriptionJob": lambda body: state.get(body, request.host_url),
        "DeleteTranscriptionJob": state.delete,
        "ListTranscriptionJobs": state.list_jobs,
    }

    @app.post("/", endpoint="api")
    def api() -> ResponseReturnValue:
        refused = credential_scope_error(
            request.headers.get("Authorization", ""), state.region, "transcribe"
        )
        if refused is not None:
            return _error(refused)
        target = request.headers.get("X-Amz-Target", "")
        prefix, _, action = target.partition(".")
        handler = actions.get(action) if prefix == "Transcribe" else None
        if handler is None:
            return _error(
                TranscribeError(
                    "UnknownOperationException", f"The fake Transcribe does not serve {target!r}."
                )
            )
        try:
            body = json.loads(request.get_data() or b"{}")
        except ValueError:
            return _error(TranscribeError("SerializationException", "The body is not JSON."))
        try:
            return _answer(handler(body))
        except TranscribeError as exc:
            return _error(exc)
        except Exception:
            logger.exception("fake Transcribe failed on %s", action)
            return _error(TranscribeError("InternalFailureException", "Internal failure.", 500))

    @app.get("/_transcripts/<name>.json", endpoint="service_transcript")
    def service_transcript(name: str) -> ResponseReturnValue:
        document = state.service_transcript(
            name,
            request.args.get("X-Amz-Date", ""),
            request.args.get("X-Amz-Signature", ""),
        )
        if document is None:
            xml = (
                "<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code>"
                "<Message>Request has expired or is not valid</Message></Error>"
            )
            return Response(xml, status=403, mimetype="application/xml")
        return Response(json.dumps(document), mimetype="application/json")

    @app.get("/_sandbox/billing", endpoint="sandbox_billing")
    def billing() -> ResponseReturnValue:
        rows = state.billing()
        return Response(
            json.dumps(
                {
                    "jobs": [
                        {
                            "jobName": b.job_name,
                            "mediaSeconds": round(b.media_seconds, 3),
                            "channels": b.channels,
                            "billedSeconds": b.billed_seconds,
                            "billedSecondsWithMinimum": b.billed_seconds_with_minimum,
                        }
                        for b in rows
                    ],
                    "totalBilledSeconds": sum(b.billed_seconds for b in rows),
                    "totalBilledSecondsWithMinimum": sum(
                        b.billed_seconds_with_minimum for b in rows
                    ),
                }
            ),
            mimetype="application/json",
        )

    @app.route("/<path:other>", methods=["GET", "POST", "PUT", "DELETE"], endpoint="other")
    def other(other: str) -> ResponseReturnValue:
        return _error(
            TranscribeError(
                "UnknownOperationException",
                f"The fake Transcribe speaks awsJson1.1 only (POST / with X-Amz-Target); "
                f"nothing at /{other}.",
                404,
            )
        )

    return app


def serve(state: FakeTranscribeState) -> LoopbackServer:
    """Serve `state` on a free loopback port; the server is already started, call `.stop()`."""
    return LoopbackServer(create_app(state)).start()

"""API Gateway HTTP API (payload format 2.0) events, as Lambda receives them.

An HTTP API hands the path over percent-decoded, in `rawPath` and `requestContext.http.path`
alike (a `%2F` arrives as `/`); `rawQueryString` stays encoded. Pass `path` decoded, as it would
arrive; `route_key` and `path_parameters` are what the matched route put in the event.
"""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any


def http_api_event(
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    base64_body: bool = False,
    include_content_length: bool = True,
    query: str = "",
    route_key: str = "$default",
    path_parameters: dict[str, str] | None = None,
) -> dict[str, Any]:
    all_headers = {k.lower(): v for k, v in (headers or {}).items()}
    if include_content_length and body:
        all_headers["content-length"] = str(len(body))
    else:
        all_headers.pop("content-length", None)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": query,
        "headers": all_headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "api.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "api",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": all_headers.get("user-agent", "test"),
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": route_key,
            "stage": "$default",
            "time": "27/Nov/2026:17:00:00 +0000",
            "timeEpoch": int(time.time() * 1000),
        },
        "body": base64.b64encode(body).decode() if base64_body else body.decode("utf-8"),
        "isBase64Encoded": base64_body,
    }
    if path_parameters is not None:
        event["pathParameters"] = path_parameters
    return event


class FakeLambdaContext:
    function_name = "webhook"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:webhook"
    aws_request_id = "req-1"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000

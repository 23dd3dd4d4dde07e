"""Nudging the submitter pump: an asynchronous Lambda invoke, so the caller never waits for it.

A lost nudge costs only latency: the scheduled reconciler runs the pump every minute anyway.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from services.core import aws
from services.core.observability import logger


class PumpNudger(Protocol):
    def nudge(self, reason: str) -> None: ...


class LambdaPumpNudger:
    def __init__(self, function_name: str, client: Any | None = None) -> None:
        self.function_name = function_name
        self._client = client

    def nudge(self, reason: str) -> None:
        client = self._client or aws.client("lambda")
        try:
            client.invoke(
                FunctionName=self.function_name,
                InvocationType="Event",
                Payload=json.dumps({"reason": reason}).encode(),
            )
        except (ClientError, BotoCoreError) as e:
            logger.warning("pump nudge failed; the schedule will run it", error=str(e))

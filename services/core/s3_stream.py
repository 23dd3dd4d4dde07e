"""Streaming writes to S3: multipart upload with one part in memory at a time."""

from __future__ import annotations

import base64
import contextlib
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from services.core.errors import TransientError

MIN_PART_BYTES = 5 * 1024 * 1024  # S3's minimum for every part but the last
DEFAULT_PART_BYTES = 8 * 1024 * 1024


def meeting_key(meeting_uuid: str) -> str:
    """A reversible, collision-free S3 key segment for a meeting UUID.

    Zoom UUIDs contain '/', '+' and '='; base64url of the exact bytes keeps every UUID distinct
    (a sanitised form would not) and keeps '/' out of the key.
    """
    return base64.urlsafe_b64encode(meeting_uuid.encode()).decode().rstrip("=")


def meeting_from_key(key: str) -> str | None:
    """The meeting UUID a `meeting_key` names, or None when `key` is not one."""
    try:
        raw = base64.b64decode(key + "=" * (-len(key) % 4), altchars=b"-_", validate=True)
        return raw.decode() or None
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        return None


class MultipartWriter:
    """Write bytes in any chunk sizes; parts of `part_bytes` go to S3 as they fill.

    Memory stays at one part whatever the object size. `abort()` discards what was uploaded.
    """

    def __init__(
        self,
        s3: Any,
        bucket: str,
        key: str,
        *,
        content_type: str = "application/octet-stream",
        part_bytes: int = DEFAULT_PART_BYTES,
    ) -> None:
        if part_bytes < MIN_PART_BYTES:
            raise ValueError(f"part_bytes must be at least {MIN_PART_BYTES}")
        self.s3 = s3
        self.bucket = bucket
        self.key = key
        self.part_bytes = part_bytes
        self._buffer = bytearray()
        self._parts: list[dict[str, Any]] = []
        self.bytes_written = 0
        try:
            self._upload_id: str | None = s3.create_multipart_upload(
                Bucket=bucket, Key=key, ContentType=content_type
            )["UploadId"]
        except (ClientError, BotoCoreError) as e:
            raise TransientError(f"cannot start upload of s3://{bucket}/{key}: {e}") from e

    def write(self, chunk: bytes) -> None:
        self._buffer.extend(chunk)
        self.bytes_written += len(chunk)
        while len(self._buffer) >= self.part_bytes:
            part = bytes(self._buffer[: self.part_bytes])
            del self._buffer[: self.part_bytes]
            self._upload_part(part)

    def _upload_part(self, data: bytes) -> None:
        number = len(self._parts) + 1
        try:
            response = self.s3.upload_part(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=data,
            )
        except (ClientError, BotoCoreError) as e:
            raise TransientError(f"upload of part {number} failed: {e}") from e
        self._parts.append({"PartNumber": number, "ETag": response["ETag"]})

    def complete(self) -> int:
        """Upload the last part and finish; returns the object's size."""
        if self._buffer or not self._parts:
            self._upload_part(bytes(self._buffer))
            self._buffer.clear()
        try:
            self.s3.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        except (ClientError, BotoCoreError) as e:
            raise TransientError(f"completing s3://{self.bucket}/{self.key} failed: {e}") from e
        self._upload_id = None
        return self.bytes_written

    def abort(self) -> None:
        if self._upload_id is None:
            return
        # Lifecycle rules clean up incomplete uploads; the caller is failing anyway.
        with contextlib.suppress(ClientError, BotoCoreError):
            self.s3.abort_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self._upload_id
            )
        self._upload_id = None

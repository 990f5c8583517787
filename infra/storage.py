"""The S3 artifact store: every byte the service keeps, and presigned URLs to hand them out."""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

from botocore.exceptions import ClientError
from opentelemetry.trace import Span, SpanKind
from pydantic import BaseModel

from infra.tracing import span

# `bytes 0-99/12345`: a ranged GET's answer names the object's whole size.
_CONTENT_RANGE = re.compile(r"^bytes \d+-\d+/(?P<size>\d+)$")


class ArtifactStore:
    """Reads and writes objects of the artifacts bucket."""

    def __init__(self, s3: Any, bucket: str) -> None:
        self.s3 = s3
        self.bucket = bucket

    def _span(self, operation: str, key: str) -> contextlib.AbstractContextManager[Span]:
        # A CLIENT span per object read or written (aiobotocore has no instrumentation of its own here).
        attributes = {"rpc.system": "aws-api", "rpc.service": "S3", "rpc.method": operation}
        attributes |= {"aws.s3.bucket": self.bucket, "aws.s3.key": key}
        return span(f"S3.{operation}", kind=SpanKind.CLIENT, attributes=attributes)

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        """Write one object."""
        with self._span("PutObject", key) as current:
            current.set_attribute("lorafoundry.bytes", len(data))
            await self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    async def put_model(self, key: str, model: BaseModel) -> None:
        """Write a pydantic model as JSON (how markers are written)."""
        await self.put_bytes(key, model.model_dump_json().encode(), "application/json")

    async def get_bytes(self, key: str) -> bytes | None:
        """Read one object, or None if it does not exist."""
        with self._span("GetObject", key) as current:
            try:
                response = await self.s3.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
                    current.set_attribute("lorafoundry.found", False)
                    return None
                raise
            async with response["Body"] as body:
                data: bytes = await body.read()
            current.set_attribute("lorafoundry.bytes", len(data))
            return data

    async def get_range(self, key: str, start: int, end: int) -> tuple[bytes, int] | None:
        """Bytes `start`..`end` (inclusive) of one object and the object's whole size, or None if it does not
        exist (a header without the file: a big upload is checked before it is read)."""
        with self._span("GetObject", key) as current:
            try:
                response = await self.s3.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={start}-{end}")
            except ClientError as exc:
                if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
                    current.set_attribute("lorafoundry.found", False)
                    return None
                raise
            async with response["Body"] as body:
                data: bytes = await body.read()
            current.set_attribute("lorafoundry.bytes", len(data))
            whole = _CONTENT_RANGE.match(response.get("ContentRange") or "")
            return data, int(whole["size"]) if whole else len(data)

    async def size(self, key: str) -> int | None:
        """An object's size in bytes, or None if it does not exist."""
        with self._span("HeadObject", key):
            try:
                head = await self.s3.head_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if exc.response["Error"]["Code"] in ("NoSuchKey", "404", "NotFound"):
                    return None
                raise
            return int(head["ContentLength"])

    async def get_json(self, key: str) -> Any | None:
        """Read and parse a JSON object, or None if it does not exist."""
        data = await self.get_bytes(key)
        return None if data is None else json.loads(data)

    async def delete(self, key: str) -> None:
        """Remove one object (absent is fine)."""
        await self.s3.delete_object(Bucket=self.bucket, Key=key)

    async def list_keys(self, prefix: str) -> list[str]:
        """Every key under a prefix."""
        keys: list[str] = []
        paginator = self.s3.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return keys

    async def presign_get(self, key: str, expires_in: int, file_name: str | None = None) -> str:
        """A time-limited GET URL for one object; with `file_name`, a browser saves it under that name."""
        params = {"Bucket": self.bucket, "Key": key}
        if file_name is not None:
            params["ResponseContentDisposition"] = f'attachment; filename="{file_name}"'
        return await self.s3.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in)

    async def presign_post(self, key: str, max_bytes: int, expires_in: int) -> dict[str, Any]:
        """A time-limited browser-style POST upload of one object; S3 itself refuses a body over `max_bytes`
        (the `content-length-range` condition), so an oversized file never lands."""
        return await self.s3.generate_presigned_post(
            Bucket=self.bucket,
            Key=key,
            Conditions=[["content-length-range", 1, max_bytes]],
            ExpiresIn=expires_in,
        )

"""`Idempotency-Key` on every create: the first request with a key runs, every repeat gets its response.

An ASGI middleware, so every POST route gets the same behaviour without knowing of it:
- the key is scoped to the caller's tenant and the endpoint, and bound to a fingerprint of the request;
- the first request claims the key with a conditional write, runs, and stores its response (a 2xx or 4xx;
  after a 5xx the claim is released, so a retry runs again);
- a repeat with the same fingerprint gets the stored response, marked `Idempotent-Replayed: true`; one that
  arrives while the first still runs waits for it (bounded), so concurrent repeats make one job;
- the same key with another request is refused (422 `idempotency_key_reused`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from events.records.idempotency import StoredResponse
from events.states import IdempotencyStatus
from functions.api.errors import error_body
from infra.repositories.api_keys import parse_authorization
from infra.repositories.idempotency import Claim, IdempotencyRepository
from infra.runtime import ServiceContext

log = logging.getLogger(__name__)

HEADER = "idempotency-key"
REPLAYED_HEADER = "idempotent-replayed"
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, as the IETF draft's examples and Stripe's keys
_REPLAYED_HEADERS = ("content-type", "location", "retry-after")
_POLL_S = 0.05
# DynamoDB items hold 400 KB: a create's response is far smaller; a bigger one is not stored.
_MAX_STORED_BODY = 300_000


def request_fingerprint(method: str, path: str, query: bytes, content_type: str, body: bytes) -> str:
    """What makes two requests "the same": method, path, query, media type and body. A multipart body's
    boundary is random per request, so it is replaced by a fixed token before hashing."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    match = re.search(r"boundary=\"?([^\";]+)\"?", content_type)
    if media_type.startswith("multipart/") and match:
        body = body.replace(match.group(1).encode(), b"BOUNDARY")
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query, media_type.encode()):
        digest.update(part + b"\0")
    digest.update(body)
    return digest.hexdigest()


def key_scope(tenant_id: str, method: str, path: str, key: str) -> str:
    """Keys are per tenant and per endpoint: the same key on two endpoints is two keys."""
    return f"{tenant_id}\0{method} {path}\0{key}"


async def _respond(send: Send, status: int, body: bytes, headers: dict[str, str]) -> None:
    raw = [(k.encode(), v.encode()) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _error(send: Send, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps(error_body(code, message, field="Idempotency-Key")).encode()
    await _respond(send, status, body, {"content-type": "application/json", **(headers or {})})


class IdempotencyMiddleware:
    """Applies `Idempotency-Key` to POST requests under `/v1/` that carry it."""

    def __init__(self, app: ASGIApp, open_context: Callable[[Scope], Awaitable[ServiceContext]]) -> None:
        self.app = app
        self.open_context = open_context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        key = headers.get(HEADER)
        if key is None:
            await self.app(scope, receive, send)
            return
        if not _KEY.match(key):
            await _error(send, 400, "invalid_idempotency_key", "Idempotency-Key must be 1 to 255 visible characters")
            return
        try:
            context = await self.open_context(scope)
            # The same parser and check as the app's own authentication (Bearer or Basic), so a key is
            # scoped to exactly the tenant the route will see.
            api_key = await context.api_keys.authenticate(parse_authorization(headers.get("authorization")))
        except Exception:  # the app itself answers (401, 503): nothing is claimed for it
            api_key = None
        if api_key is None:
            await self.app(scope, receive, send)
            return
        try:
            body = await _read_body(receive)
        except HTTPException as exc:  # the body limit, raised while reading
            await _error(send, exc.status_code, "payload_too_large", str(exc.detail))
            return
        fingerprint = request_fingerprint(
            scope["method"], scope["path"], scope.get("query_string", b""), headers.get("content-type", ""), body
        )
        record_scope = key_scope(api_key.tenantId, scope["method"], scope["path"], key)
        await _Request(self.app, context.idempotency, context, scope, body, fingerprint, record_scope).run(send)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


class _Request:
    """One request with a key: claim and run it, or wait for and replay the first one."""

    def __init__(
        self,
        app: ASGIApp,
        records: IdempotencyRepository,
        context: ServiceContext,
        scope: Scope,
        body: bytes,
        fingerprint: str,
        record_scope: str,
    ) -> None:
        self.app = app
        self.records = records
        self.settings = context.settings
        self.scope = scope
        self.body = body
        self.fingerprint = fingerprint
        self.record_scope = record_scope

    async def run(self, send: Send) -> None:
        deadline = time.monotonic() + self.settings.idempotency_wait_seconds
        while True:
            claim = await self.records.claim(
                self.record_scope,
                self.fingerprint,
                self.settings.idempotency_ttl_seconds,
                self.settings.idempotency_lock_seconds,
            )
            if claim.owned:
                await self._run_first(send, claim)
                return
            record = claim.record
            if record is not None and record.fingerprint != self.fingerprint:
                await _error(
                    send,
                    422,
                    "idempotency_key_reused",
                    "this Idempotency-Key was already used with a different request; use a new key",
                )
                return
            if record is not None and record.status is IdempotencyStatus.COMPLETED and record.response is not None:
                stored = record.response
                await _respond(send, stored.status, stored.body.encode(), {**stored.headers, REPLAYED_HEADER: "true"})
                return
            if time.monotonic() > deadline:
                await _error(
                    send,
                    409,
                    "idempotency_request_in_progress",
                    "the first request with this Idempotency-Key is still running; retry shortly",
                    {"retry-after": "1"},
                )
                return
            # The first request is running (or its record was released or expired between our two calls, and
            # the next claim takes it): poll until the deadline.
            await asyncio.sleep(_POLL_S)

    async def _run_first(self, send: Send, claim: Claim) -> None:
        started: Message = {}
        chunks: list[bytes] = []
        replayed = False

        async def receive() -> Message:
            nonlocal replayed
            if replayed:
                return {"type": "http.disconnect"}
            replayed = True
            return {"type": "http.request", "body": self.body, "more_body": False}

        async def capture(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(self.scope, receive, capture)
        except BaseException:
            await self.records.release(self.record_scope)
            raise
        status = int(started.get("status", 500))
        body = b"".join(chunks)
        if status >= 500 or len(body) > _MAX_STORED_BODY:
            # Our failure, not the request's: a retry with the same key must run again.
            await self.records.release(self.record_scope)
            return
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1")
            for k, v in started.get("headers", [])
            if k.decode("latin-1").lower() in _REPLAYED_HEADERS
        }
        await self.records.complete(
            self.record_scope,
            claim,
            self.fingerprint,
            StoredResponse(status=status, headers=headers, body=body.decode("utf-8", "replace")),
        )

"""ASGI middleware that refuses request bodies over a size limit with 413, before they are buffered."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from functions.api.errors import error_body


class BodySizeLimit:
    """Rejects bodies larger than the limit of their path, by Content-Length up front or while streaming.

    `overrides` are (path regex, limit) pairs, first match wins; other paths get `max_bytes`.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, overrides: Sequence[tuple[str, int]] = ()) -> None:
        self.app = app
        self.default_max = max_bytes
        self.overrides = [(re.compile(pattern), limit) for pattern, limit in overrides]

    def limit_for(self, path: str) -> int:
        """The body limit of one path."""
        return next((limit for pattern, limit in self.overrides if pattern.fullmatch(path)), self.default_max)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.limit_for(scope.get("path", ""))
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
            status = 413 if declared.isdigit() else 400
            message = f"request body exceeds {max_bytes} bytes" if status == 413 else "invalid Content-Length"
            code = "payload_too_large" if status == 413 else "bad_request"
            body = json.dumps(error_body(code, message)).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    # Raised inside the app's body read, so FastAPI's handlers render it as a 413.
                    raise HTTPException(413, f"request body exceeds {max_bytes} bytes")
            return message

        await self.app(scope, limited_receive, send)

"""A loopback HTTP server for tests that fetch URLs: it serves fixed routes and records what it was asked."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Response = tuple[int, dict[str, str], bytes]


@dataclass(frozen=True)
class Received:
    """A POST the server got: its path, headers (lower-cased names) and body."""

    path: str
    headers: dict[str, str]
    body: bytes


class LoopbackServer:
    """Routes: path -> (status, headers, body), or a list of them answered in turn (the last one repeats).
    Every request path is recorded in `requests`, every POST or PUT in `posts`."""

    def __init__(self) -> None:
        self.routes: dict[str, Response | list[Response]] = {}
        self.requests: list[str] = []
        self.posts: list[Received] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.posts.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.do_GET()

            # A presigned-URL upload (CloudFormation's custom resource answer) is recorded like a POST.
            do_PUT = do_POST

            def do_GET(self) -> None:
                server.requests.append(self.path)
                status, headers, body = server.answer(self.path)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    def answer(self, path: str) -> Response:
        """The response for `path`, taking the next of a list."""
        route = self.routes.get(path, (404, {}, b"not found"))
        if isinstance(route, list):
            return route.pop(0) if len(route) > 1 else route[0]
        return route

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"


@contextmanager
def loopback_server() -> Iterator[LoopbackServer]:
    """Run a LoopbackServer in a thread for the duration of the block."""
    server = LoopbackServer()
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()

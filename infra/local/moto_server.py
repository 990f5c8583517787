"""moto's server (S3, DynamoDB, SQS on one port) under waitress, which keeps connections alive.

`python -m moto.server` runs werkzeug's development server, which answers every request with
`Connection: close`: each SDK call then opens a new TCP connection. bench/api_throughput.py measured that set-up
at about a fifth of the API's CPU per job creation, and as much again in moto. The same moto application under
waitress (a production WSGI server) keeps the SDK's pooled connections open: creations/s rose from 187 to 235
at concurrency 16 on the 2-core build machine, with less CPU per request on both sides.

    python -m infra.local.moto_server -H 127.0.0.1 -p 5000
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import waitress
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

# moto serves one request at a time under its own lock anyway; more threads only hold more connections.
THREADS = 8


def main(argv: list[str] | None = None) -> None:
    """Serve moto on the given host and port until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description="moto (S3, DynamoDB, SQS) with keep-alive connections")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args(argv)
    # moto builds some URLs (SQS queue URLs, S3 redirects) from this, as its own entry point sets it.
    os.environ.setdefault("MOTO_PORT", str(args.port))
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    waitress.serve(app, host=args.host, port=args.port, threads=THREADS, _quiet=True)


if __name__ == "__main__":
    main()

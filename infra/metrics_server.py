"""Serving this process's Prometheus metrics: the text a scrape gets (the API's `/metrics`), and a small HTTP server
of its own on LF_METRICS_PORT (each worker).

With several processes behind one address (the API's uvicorn workers), prometheus_client's multiprocess mode is
on when PROMETHEUS_MULTIPROC_DIR names a folder: every process writes its values there and a scrape of any one
of them reads them all.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

log = logging.getLogger(__name__)

MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Every interface: on ECS the scraper is another host. No secret is among the metrics.
DEFAULT_BIND = "0.0.0.0"


def scrape_registry() -> CollectorRegistry:
    """The registry a scrape reads: every process's values in multiprocess mode, else this process's."""
    if os.environ.get(MULTIPROCESS_DIR_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return registry
    return REGISTRY


def exposition() -> tuple[bytes, str]:
    """The Prometheus text of a scrape, and its content type."""
    return generate_latest(scrape_registry()), CONTENT_TYPE_LATEST


@dataclass
class MetricsServer:
    """A running metrics server (prometheus_client's, in a daemon thread); `url` is where it is scraped."""

    server: WSGIServer
    thread: threading.Thread
    url: str

    @property
    def port(self) -> int:
        """The port it listens on (the one the system chose, when asked for port 0)."""
        return int(self.server.server_port)

    def stop(self) -> None:
        """Stop serving and release the port."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_metrics_server(port: int, host: str = DEFAULT_BIND) -> MetricsServer:
    """Serve this process's metrics on `port` (0: a free one, logged with the address)."""
    server, thread = start_http_server(port, addr=host, registry=scrape_registry())
    actual = int(server.server_port)
    advertised = socket.gethostname() if host in ("0.0.0.0", "::", "") else host
    url = f"http://{advertised}:{actual}/metrics"
    log.info("metrics served at %s", url)
    return MetricsServer(server, thread, url)

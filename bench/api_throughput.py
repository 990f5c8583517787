"""API throughput: job creations per second, latency and CPU per request, against a no-I/O baseline.

Starts the parts of the embedded stack a creation touches (moto, Tansu, bootstrap, the API under uvicorn with
the stack's own command line), no workers, so nothing consumes the jobs. For each concurrency it sends a
bounded number of requests over keep-alive loopback connections:
- baseline: `GET /healthz` (no I/O), the same server, the same client;
- `POST /v1/images/generate` without, then with a fresh `Idempotency-Key` per request.
It prints requests/s, p50/p99 latency and the CPU time per request of the API processes (the uvicorn
supervisor and its workers), of moto and of Tansu (from psutil, before/after), and the ratios to the baseline.

The load generator is a minimal HTTP/1.1 client on asyncio streams, so that on a small machine it takes as
little CPU from the server as possible.

    python -m bench.api_throughput --requests 2000 --concurrency 16 64
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil

from infra.bootstrap import bootstrap
from infra.local.processes import ManagedProcess, free_port
from infra.local.stack import api_argv, api_healthy, start_moto, start_tansu
from infra.repositories.api_keys import generate_api_key
from infra.settings import Settings
from infra.signing import generate_signing_secret

BODY = json.dumps({"modelId": "tiny-sd", "prompt": "a red fox", "width": 64, "height": 64, "seed": 1}).encode()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


class Connection:
    """One keep-alive HTTP/1.1 connection: a request, then its whole response (Content-Length bodies only)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> int:
        """Send one request; returns the status code."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await self.reader.readexactly(length)
        return status

    async def close(self) -> None:
        """Close the connection."""
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


@dataclass
class Result:
    """One scenario's figures."""

    name: str
    concurrency: int
    count: int
    errors: int
    wall_s: float
    latencies_ms: list[float]
    cpu_ms: dict[str, float]  # component -> CPU ms per request

    @property
    def rate(self) -> float:
        """Successful requests per second."""
        return (self.count - self.errors) / self.wall_s


def cpu_seconds(processes: list[psutil.Process]) -> float:
    """User + system CPU seconds of the processes (those that vanished count as nothing)."""
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


async def run_scenario(
    name: str,
    host: str,
    port: int,
    concurrency: int,
    count: int,
    make_request: callable,  # type: ignore[valid-type]
    components: dict[str, list[psutil.Process]],
    expected: int,
) -> Result:
    """`count` requests from `concurrency` connections; latency per request, CPU per component."""
    connections = [Connection(host, port) for _ in range(concurrency)]
    # Connect (and warm each connection) before measuring.
    await asyncio.gather(*(c.request("GET", "/healthz", {}) for c in connections))
    remaining = count
    latencies: list[float] = []
    errors = 0

    async def drive(connection: Connection) -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            method, path, headers, body = make_request()
            started = time.perf_counter()
            status = await connection.request(method, path, headers, body)
            latencies.append((time.perf_counter() - started) * 1000)
            if status != expected:
                errors += 1

    before = {k: cpu_seconds(v) for k, v in components.items()}
    started = time.perf_counter()
    await asyncio.gather(*(drive(c) for c in connections))
    wall = time.perf_counter() - started
    after = {k: cpu_seconds(v) for k, v in components.items()}
    await asyncio.gather(*(c.close() for c in connections))
    cpu = {k: (after[k] - before[k]) * 1000 / count for k in components}
    return Result(name, concurrency, count, errors, wall, latencies, cpu)


def start_servers(log_dir: Path, api_workers: int | None) -> tuple[list[ManagedProcess], dict[str, str], str, int]:
    """moto, Tansu, bootstrap and the API; returns the processes, the API's env, its key, its port."""
    host = "127.0.0.1"
    processes: list[ManagedProcess] = []
    moto_port, kafka_port, api_port = free_port(host), free_port(host), free_port(host)
    processes.append(start_moto(host, moto_port, log_dir / "moto.log"))
    processes.append(start_tansu(host, kafka_port, log_dir / "tansu.log"))
    api_key = generate_api_key()
    env = {
        "LF_DEV_API_KEY": api_key,
        "LF_DEV_SIGNING_SECRET": generate_signing_secret(),
        "LF_AWS_ENDPOINT_URL": f"http://{host}:{moto_port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "LF_AWS_ACCESS_KEY_ID": "testing",
        "LF_AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "LF_KAFKA_BOOTSTRAP_SERVERS": f"{host}:{kafka_port}",
        "LF_KAFKA_IDEMPOTENCE": "false",
        "LF_RESOURCE_PREFIX": f"bench-{uuid.uuid4().hex[:6]}",
        # The API imports this checkout's code, whatever else is installed.
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
    }
    if api_workers is not None:
        env["LF_API_WORKERS"] = str(api_workers)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        **{k.removeprefix("LF_").lower(): v for k, v in env.items() if k.startswith("LF_")},  # type: ignore[arg-type]
    )
    asyncio.run(bootstrap(settings))
    api = ManagedProcess("api", api_argv(host, api_port, settings), log_dir / "api.log", env=env).start()
    processes.append(api)
    api.wait_ready(lambda: api_healthy(f"http://{host}:{api_port}"), 60)
    return processes, env, api_key, api_port


def process_tree(pid: int) -> list[psutil.Process]:
    """A process and its descendants (uvicorn's supervisor and workers)."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def main() -> None:
    """Run every scenario and print the figures and the ratios to the baseline."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="requests per scenario")
    parser.add_argument("--warmup", type=int, default=200, help="requests before measuring (per concurrency)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--api-workers", type=int, default=None, help="LF_API_WORKERS (default: the setting's)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat every scenario this many times")
    args = parser.parse_args()

    log_dir = Path(tempfile.mkdtemp(prefix="lf-bench-"))
    processes, _, api_key, port = start_servers(log_dir, args.api_workers)
    try:
        moto, tansu, api = (psutil.Process(p.process.pid) for p in processes)  # type: ignore[union-attr]
        components = {"api": process_tree(api.pid), "moto": [moto], "tansu": [tansu]}
        print(f"API processes: {len(components['api'])} (cpu count {os.cpu_count()}), logs in {log_dir}")
        auth = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}

        def health() -> tuple[str, str, dict[str, str], bytes]:
            return "GET", "/healthz", {}, b""

        def create() -> tuple[str, str, dict[str, str], bytes]:
            return "POST", "/v1/images/generate", auth, BODY

        def create_idempotent() -> tuple[str, str, dict[str, str], bytes]:
            return "POST", "/v1/images/generate", {**auth, "Idempotency-Key": uuid.uuid4().hex}, BODY

        scenarios = [
            ("baseline GET /healthz", health, 200),
            ("POST generate", create, 202),
            ("POST generate + Idempotency-Key", create_idempotent, 202),
        ]
        results: list[Result] = []

        async def run_all() -> None:
            for concurrency in args.concurrency:
                for _, make, expected in scenarios[1:]:  # warm every path (connections, caches, moto tables)
                    await run_scenario("warmup", "127.0.0.1", port, concurrency, args.warmup, make, {}, expected)
                for _ in range(args.rounds):
                    for name, make, expected in scenarios:
                        results.append(
                            await run_scenario(
                                name, "127.0.0.1", port, concurrency, args.requests, make, components, expected
                            )
                        )

        try:
            import uvloop

            uvloop.run(run_all())
        except ImportError:
            asyncio.run(run_all())
    finally:
        for process in reversed(processes):
            process.stop()

    header = f"{'scenario':<34} {'conc':>4} {'n':>5} {'err':>4} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7}"
    print(header + f" {'api cpu ms':>10} {'moto cpu ms':>11} {'tansu cpu ms':>12} {'x baseline':>10}")
    for concurrency in args.concurrency:
        rows = [r for r in results if r.concurrency == concurrency]
        base = statistics.median(r.rate for r in rows if r.name.startswith("baseline"))
        for name, _, _ in scenarios:
            group = [r for r in rows if r.name == name]
            rate = statistics.median(r.rate for r in group)
            p50 = statistics.median(percentile(r.latencies_ms, 50) for r in group)
            p99 = statistics.median(percentile(r.latencies_ms, 99) for r in group)
            cpu = {k: statistics.median(r.cpu_ms[k] for r in group) for k in ("api", "moto", "tansu")}
            errors = sum(r.errors for r in group)
            print(
                f"{name:<34} {concurrency:>4} {group[0].count:>5} {errors:>4} {rate:>7.1f} {p50:>7.1f} {p99:>7.1f}"
                f" {cpu['api']:>10.2f} {cpu['moto']:>11.2f} {cpu['tansu']:>12.2f} {rate / base:>10.3f}"
            )
    print(f"(medians over {args.rounds} round(s); python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()

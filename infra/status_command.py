"""`lorafoundry status`: each component (with its latency or its error), consumer lag per group, jobs by kind and
status and the live workers, from the operator API's `GET /v1/admin/status`. Exit 1 when a component is down (or
the API cannot be reached), so scripts and health checks can use it."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from infra.admin_client import AdminClient, AdminClientError, add_target_options, target_of

STATUS_PATH = "/v1/admin/status"


def _age(iso: str | None) -> str:
    """How long ago an ISO time was, for a person (`12s`, `5m`, `3h`)."""
    if not iso:
        return "-"
    try:
        seconds = (datetime.now(UTC) - datetime.fromisoformat(iso.replace("Z", "+00:00"))).total_seconds()
    except ValueError:
        return iso
    if seconds < 120:
        return f"{max(0, int(seconds))}s"
    if seconds < 7200:
        return f"{int(seconds // 60)}m"
    return f"{int(seconds // 3600)}h"


def tables(status: dict[str, Any]) -> list[tuple[Table, str | None]]:
    """The report's sections as tables, each with a note printed under it (or None): components, consumer lag,
    jobs, workers."""
    components = Table(title="Components", title_justify="left")
    for column in ("component", "state", "latency", "detail"):
        components.add_column(column)
    for c in status["components"]:
        latency = "-" if c.get("latencyMs") is None else f"{c['latencyMs']:.1f} ms"
        state = "[green]ok[/green]" if c["ok"] else "[red]down[/red]"
        components.add_row(c["name"], state, latency, c.get("detail") or "")

    lag = Table(title="Consumer lag", title_justify="left")
    for column in ("group", "topic", "lag"):
        lag.add_column(column, justify="right" if column == "lag" else "left")
    for item in status["consumerLag"]:
        lag.add_row(item["group"], item["topic"], str(item["lag"]))
    lag_note = f"not measured: {status['lagError']}" if status.get("lagError") else None

    jobs = Table(title="Jobs", title_justify="left")
    for column in ("kind", "status", "count"):
        jobs.add_column(column, justify="right" if column == "count" else "left")
    counts = status.get("jobs")
    jobs_note = None
    if counts is None:
        jobs_note = "not counted: the jobs table could not be read"
    else:
        for item in counts["counts"]:
            jobs.add_row(item["kind"], item["status"], str(item["count"]))
        if not counts["complete"]:
            jobs_note = "the count stopped at its bound: at least these"

    workers = Table(title="Live workers", title_justify="left")
    for column in ("worker", "kind", "state", "job", "host", "pid", "up", "seen", "metrics"):
        workers.add_column(column)
    for w in status["workers"]:
        workers.add_row(
            w["workerId"],
            w["kind"],
            w["state"],
            w.get("jobId") or "-",
            w["host"],
            str(w["pid"]),
            _age(w.get("startedAt")),
            _age(w.get("heartbeatAt")),
            w.get("metricsUrl") or "-",
        )
    workers_note = None if status["workers"] else "none (no worker has refreshed its record lately)"
    return [(components, None), (lag, lag_note), (jobs, jobs_note), (workers, workers_note)]


def cmd_status(args: argparse.Namespace) -> int:
    """Print the report; 1 when a component is down or the API cannot be asked."""
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    try:
        with AdminClient(target_of(args)) as client:
            status = client.call("GET", STATUS_PATH)
    except AdminClientError as exc:
        print(f"lorafoundry status: {exc}", file=sys.stderr)
        return 1
    for table, note in tables(status):
        console.print(table)
        if note:
            console.print(f"  [dim]{note}[/dim]")
    if not status["ok"]:
        down = ", ".join(c["name"] for c in status["components"] if not c["ok"])
        console.print(f"[red]down:[/red] {down}")
        return 1
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `status` command."""
    status = sub.add_parser("status", help="components, consumer lag, jobs and live workers of a deployment")
    add_target_options(status)
    status.set_defaults(func=cmd_status)

"""How long a killed worker's partitions wait: from SIGKILL of one of two members of a consumer group to a
record on one of its partitions reaching another member (the survivor, or a replacement started at once, as
the stack's supervisor does).

Each member is a process consuming the way a generator worker does (`infra.kafka.create_consumer` with the
settings under test, one record at a time, committed after it is handled) without loading a model, so that a
trial measures the group protocol and not torch's import. A fresh Tansu broker is started for the run; every
trial uses a group of its own. The baseline, measured in the same run, is aiokafka's own defaults (10 s
session, 3 s heartbeat); then the project's settings before issue 12 (10 s, 2 s) and its defaults now.

    python bench/worker_takeover.py --trials 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from infra.local.processes import ManagedProcess, free_port, wait_until
from infra.local.stack import start_tansu

ROOT = Path(__file__).resolve().parents[1]
TOPIC = "bench.takeover"
PARTITIONS = 4


@dataclass(frozen=True)
class Config:
    """Consumer settings under test."""

    name: str
    session_ms: int
    heartbeat_ms: int
    static: bool = False


CONFIGS = (
    Config("aiokafka defaults (baseline)", 10_000, 3_000),
    Config("before issue 12", 10_000, 2_000),
    Config("LF defaults now", 6_000, 1_000),
    Config("LF defaults + static ids", 6_000, 1_000, static=True),
)


# --- a member (child process) ------------------------------------------------------------------------------


def _emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, "t": time.monotonic(), **fields}), flush=True)


async def _member(group: str) -> None:
    from aiokafka import ConsumerRebalanceListener

    from infra.kafka import create_consumer
    from infra.settings import Settings

    class Report(ConsumerRebalanceListener):
        async def on_partitions_revoked(self, revoked) -> None:  # type: ignore[no-untyped-def]
            _emit("revoked", partitions=sorted(tp.partition for tp in revoked))

        async def on_partitions_assigned(self, assigned) -> None:  # type: ignore[no-untyped-def]
            _emit("assigned", partitions=sorted(tp.partition for tp in assigned))

    consumer = create_consumer(Settings(), group_id=group)
    consumer.subscribe([TOPIC], listener=Report())
    await consumer.start()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=500, max_records=1)
            for tp, records in batch.items():
                for record in records:
                    _emit("got", partition=tp.partition, offset=record.offset)
                    await consumer.commit({tp: record.offset + 1})
    finally:
        await consumer.stop()


# --- the driver ----------------------------------------------------------------------------------------------


def _events(process: ManagedProcess) -> list[dict]:
    try:
        lines = process.log_path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [json.loads(line) for line in lines if line.startswith('{"event"')]


def _assignment(process: ManagedProcess) -> set[int] | None:
    """The member's current partitions, None before its first assignment."""
    current = None
    for event in _events(process):
        if event["event"] == "assigned":
            current = set(event["partitions"])
        elif event["event"] == "revoked":
            current = set()
    return current


def _got(process: ManagedProcess, partitions: set[int], after: float) -> float | None:
    """When the member first received a record of `partitions` after `after`."""
    for event in _events(process):
        if event["event"] == "got" and event["partition"] in partitions and event["t"] > after:
            return event["t"]
    return None


class Bench:
    """A broker, a producer and the members of one trial."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        port = free_port()
        self.bootstrap = f"127.0.0.1:{port}"
        self.broker = start_tansu("127.0.0.1", port, log_dir / "tansu.log")
        self.loop = asyncio.new_event_loop()
        self.producer = self.loop.run_until_complete(self._producer())

    async def _producer(self):  # type: ignore[no-untyped-def]
        from aiokafka import AIOKafkaProducer
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
        finally:
            await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, enable_idempotence=False, linger_ms=0)
        await producer.start()
        return producer

    def send(self, partitions: set[int]) -> None:
        """One record on each of `partitions`."""

        async def send() -> None:
            for partition in sorted(partitions):
                await self.producer.send_and_wait(TOPIC, b"job", partition=partition)

        self.loop.run_until_complete(send())

    def member(self, config: Config, group: str, name: str, instance: str) -> ManagedProcess:
        """Start one member of `group`."""
        env = {
            # This checkout's code, whichever one the environment's install points at.
            "PYTHONPATH": str(ROOT),
            "LF_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "LF_KAFKA_IDEMPOTENCE": "false",
            "LF_KAFKA_SESSION_TIMEOUT_MS": str(config.session_ms),
            "LF_KAFKA_HEARTBEAT_INTERVAL_MS": str(config.heartbeat_ms),
        }
        if config.static:
            env["LF_KAFKA_GROUP_INSTANCE_ID"] = f"{group}-{instance}"
        argv = [sys.executable, __file__, "--member", group]
        return ManagedProcess(name, argv, self.log_dir / f"{group}-{name}.log", env=env).start()

    def trial(self, config: Config, replace: bool, timeout_s: float) -> float:
        """Seconds from the SIGKILL to the first record of the dead member's partitions reaching a member."""
        group = f"takeover-{secrets.token_hex(3)}"
        victim = self.member(config, group, "a", "a")
        survivor = self.member(config, group, "b", "b")
        members = [victim, survivor]
        try:

            def settled() -> bool:
                mine, theirs = _assignment(victim), _assignment(survivor)
                return bool(mine) and bool(theirs) and mine | theirs == set(range(PARTITIONS)) and not mine & theirs

            wait_until(settled, 120, "both members to share the partitions", interval_s=0.05)
            # Each member handles a record first: offsets are committed and fetches running, as in service.
            started = time.monotonic()
            self.send(set(range(PARTITIONS)))
            wait_until(lambda: all(_got(m, _assignment(m) or set(), started) for m in members), 60, "the first records")
            orphaned = _assignment(victim) or set()
            killed_at = time.monotonic()
            victim.kill()
            if replace:
                # Under the same static id, as a supervisor restarts the same worker slot.
                members.append(self.member(config, group, "a2", "a"))
            self.send(orphaned)
            found: list[float] = []

            def taken_over() -> bool:
                found.extend(t for m in members[1:] if (t := _got(m, orphaned, killed_at)) is not None)
                return bool(found)

            wait_until(taken_over, timeout_s, f"a record of partitions {sorted(orphaned)}", interval_s=0.02)
            return min(found) - killed_at
        finally:
            for member in members:
                member.kill()

    def close(self) -> None:
        """Stop the producer and the broker."""
        self.loop.run_until_complete(self.producer.stop())
        self.loop.close()
        self.broker.stop()


def main() -> None:
    """Run every configuration's trials, alternating, and print medians against the baseline."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds a trial may wait for the takeover")
    parser.add_argument("--member", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.member:
        asyncio.run(_member(args.member))
        return

    log_dir = Path(tempfile.mkdtemp(prefix="lf-takeover-"))
    print(f"logs in {log_dir}; {os.cpu_count()} CPUs")
    bench = Bench(log_dir)
    results: dict[tuple[str, bool], list[float]] = {}
    try:
        for trial in range(args.trials):
            for config in CONFIGS:
                for replace in (False, True):
                    seconds = bench.trial(config, replace, args.timeout)
                    results.setdefault((config.name, replace), []).append(seconds)
                    scenario = "survivor + replacement" if replace else "survivor only"
                    print(f"trial {trial + 1}: {config.name:<30} {scenario:<24} {seconds:6.2f}s", flush=True)
    finally:
        bench.close()

    print()
    print(f"{'configuration':<30} {'session/heartbeat':<18} {'scenario':<24} {'median':>8} {'max':>8} {'ratio':>7}")
    for replace in (False, True):
        baseline = statistics.median(results[(CONFIGS[0].name, replace)])
        for config in CONFIGS:
            values = results[(config.name, replace)]
            median = statistics.median(values)
            scenario = "survivor + replacement" if replace else "survivor only"
            timing = f"{config.session_ms / 1000:g} s / {config.heartbeat_ms / 1000:g} s"
            print(
                f"{config.name:<30} {timing:<18} {scenario:<24} {median:7.2f}s {max(values):7.2f}s"
                f" {baseline / median:6.2f}x"
            )


if __name__ == "__main__":
    main()

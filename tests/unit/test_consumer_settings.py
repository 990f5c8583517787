"""Consumer-group timing and static membership come from settings (LF_ variables), not from code."""

from __future__ import annotations

from infra.kafka import create_consumer
from infra.settings import Settings


async def test_session_heartbeat_and_instance_id_come_from_settings() -> None:
    settings = Settings(_env_file=None, kafka_session_timeout_ms=7000, kafka_heartbeat_interval_ms=700)  # type: ignore[call-arg]
    consumer = create_consumer(settings, "topic", group_id="g")
    assert consumer._session_timeout_ms == 7000 and consumer._heartbeat_interval_ms == 700
    assert consumer._group_instance_id is None  # dynamic membership unless an id is given

    static = create_consumer(settings.model_copy(update={"kafka_group_instance_id": "worker-0"}), "t", group_id="g")
    assert static._group_instance_id == "worker-0"


def test_defaults_bound_a_takeover() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.kafka_session_timeout_ms == 6000 and settings.kafka_heartbeat_interval_ms == 1000

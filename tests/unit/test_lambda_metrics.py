"""The EMF bridge: what the Prometheus objects recorded during an invocation becomes CloudWatch embedded metrics,
as deltas, one line per label set with the labels as dimensions; nothing when nothing moved."""

from __future__ import annotations

import json

import pytest
from prometheus_client import Counter, Gauge, Histogram

from infra import metrics as service_metrics
from infra.lambda_metrics import NAMESPACE, EmbeddedMetrics, FlushingHandler, flushing, service_metric_objects


@pytest.fixture
def objects() -> tuple[Counter, Histogram, Gauge]:
    # Unregistered objects: the bridge reads only what it is given, and the process's registry stays untouched.
    counter = Counter("lorafoundry_things", "Things.", ["route", "status"], registry=None)
    histogram = Histogram("lorafoundry_thing_duration_seconds", "Durations.", ["route"], registry=None)
    gauge = Gauge("lorafoundry_thing_bytes", "Bytes.", ["device"], registry=None)
    return counter, histogram, gauge


def emitted(lines: list[str]) -> list[dict]:
    return [json.loads(line) for line in lines]


def metric_values(document: dict) -> dict[str, float]:
    """Each metric's value (powertools writes a list of values: one here)."""
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    values = {m["Name"]: document[m["Name"]] for m in directive["Metrics"]}
    assert all(len(v) == 1 for v in values.values()), values
    return {name: v[0] for name, v in values.items()}


def test_counter_deltas_per_label_set_with_labels_as_dimensions(objects) -> None:
    counter, _, _ = objects
    counter.labels(route="/a", status="200").inc(5)  # before the bridge exists: not this invocation's
    lines: list[str] = []
    bridge = EmbeddedMetrics("lorafoundry-test", objects, write=lines.append)
    counter.labels(route="/a", status="200").inc(2)
    counter.labels(route="/b/{id}", status="404").inc()

    assert bridge.flush() == 2
    by_route = {doc["route"]: doc for doc in emitted(lines)}
    assert metric_values(by_route["/a"]) == {"things": 2}
    assert metric_values(by_route["/b/{id}"]) == {"things": 1}
    directive = by_route["/b/{id}"]["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == NAMESPACE
    assert set(directive["Dimensions"][0]) == {"route", "status", "service"}
    assert by_route["/b/{id}"]["status"] == "404"
    assert by_route["/b/{id}"]["service"] == "lorafoundry-test"

    lines.clear()
    counter.labels(route="/a", status="200").inc(3)
    assert bridge.flush() == 1
    assert metric_values(emitted(lines)[0]) == {"things": 3}  # the delta since the last flush, not the total


def test_histogram_sum_and_count_deltas(objects) -> None:
    _, histogram, _ = objects
    lines: list[str] = []
    bridge = EmbeddedMetrics("svc", objects, write=lines.append)
    histogram.labels(route="/a").observe(0.25)
    histogram.labels(route="/a").observe(0.5)

    assert bridge.flush() == 1
    (document,) = emitted(lines)
    assert metric_values(document) == {"thing_duration_seconds_sum": 0.75, "thing_duration_seconds_count": 2}
    units = {m["Name"]: m["Unit"] for m in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units == {"thing_duration_seconds_sum": "Seconds", "thing_duration_seconds_count": "Count"}


def test_gauges_are_emitted_as_levels_when_they_change(objects) -> None:
    _, _, gauge = objects
    lines: list[str] = []
    bridge = EmbeddedMetrics("svc", objects, write=lines.append)
    gauge.labels(device="cuda:0").set(1024)
    assert bridge.flush() == 1
    assert metric_values(emitted(lines)[0]) == {"thing_bytes": 1024}
    lines.clear()
    assert bridge.flush() == 0  # unchanged
    gauge.labels(device="cuda:0").set(512)
    assert bridge.flush() == 1
    assert metric_values(emitted(lines)[0]) == {"thing_bytes": 512}


def test_nothing_is_emitted_when_nothing_moved(objects) -> None:
    counter, histogram, _ = objects
    counter.labels(route="/a", status="200").inc()
    histogram.labels(route="/a").observe(1)
    lines: list[str] = []
    bridge = EmbeddedMetrics("svc", objects, write=lines.append)
    assert bridge.flush() == 0
    assert lines == []


def test_the_bridge_reads_every_object_of_infra_metrics() -> None:
    found = service_metric_objects()
    assert service_metrics.HTTP_REQUESTS in found
    assert service_metrics.JOBS_FINISHED in found
    assert service_metrics.GPU_MEMORY in found


def test_the_handler_wrapper_flushes_only_in_lambda(monkeypatch, capsys) -> None:
    def handle(event, context):
        service_metrics.QUOTA_REFUSALS.labels(limit="emf-test").inc()
        return "done"

    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    assert flushing(handle, "svc") is handle  # outside Lambda: the handler as it is

    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "lorafoundry-api")
    inside = flushing(handle, "svc")
    assert isinstance(inside, FlushingHandler)
    capsys.readouterr()
    assert inside({}) == "done"
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    refusals = [doc for doc in lines if doc.get("limit") == "emf-test"]
    assert [metric_values(doc) for doc in refusals] == [{"quota_refusals": 1}]

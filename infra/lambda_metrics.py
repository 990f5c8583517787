"""CloudWatch embedded metrics (EMF) from the Prometheus objects of `infra.metrics`, for code that runs in Lambda.

Nothing scrapes a Lambda function, so after each invocation the bridge writes what the objects recorded during it
as EMF lines on stdout, which CloudWatch Logs turns into metrics (namespace `LoRAFoundry`): a counter's increase,
a histogram's sum and count increases, a gauge's value when it changed. Each label set is one line whose
dimensions are the labels. Code records only into the Prometheus objects, the same everywhere.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from prometheus_client.metrics import MetricWrapperBase

from infra import metrics as service_metrics

log = logging.getLogger(__name__)

NAMESPACE = "LoRAFoundry"
LAMBDA_ENV = "AWS_LAMBDA_FUNCTION_NAME"
_PREFIX = "lorafoundry_"

Labels = tuple[tuple[str, str], ...]
HandlerT = TypeVar("HandlerT", bound=Callable[..., Any])


def in_lambda() -> bool:
    """Whether this process is a Lambda function's (the runtime sets the function's name)."""
    return bool(os.environ.get(LAMBDA_ENV))


def service_metric_objects() -> list[MetricWrapperBase]:
    """Every metric object `infra.metrics` defines."""
    return [value for value in vars(service_metrics).values() if isinstance(value, MetricWrapperBase)]


@dataclass(frozen=True)
class EmfValue:
    """One value to emit: its EMF metric name, unit and value."""

    name: str
    unit: str
    value: float


def _unit(name: str, kind: str) -> str:
    if name.endswith("_seconds") and kind == "sum":
        return "Seconds"
    if name.endswith("_bytes"):
        return "Bytes"
    return "Count"


def _readings(objects: Iterable[MetricWrapperBase]) -> dict[tuple[str, Labels], tuple[EmfValue, bool]]:
    """Every sample worth emitting, keyed by (EMF name, labels): the value and whether it is cumulative (a delta is
    emitted) or a level (emitted as it is, when it changed)."""
    readings: dict[tuple[str, Labels], tuple[EmfValue, bool]] = {}
    for obj in objects:
        for family in obj.collect():
            base = family.name.removeprefix(_PREFIX)
            for sample in family.samples:
                labels: Labels = tuple(sorted(sample.labels.items()))
                if family.type == "counter" and sample.name.endswith("_total"):
                    value, cumulative = EmfValue(base, "Count", sample.value), True
                elif family.type == "histogram" and sample.name.endswith(("_sum", "_count")):
                    kind = sample.name.rsplit("_", 1)[1]
                    value, cumulative = EmfValue(f"{base}_{kind}", _unit(base, kind), sample.value), True
                elif family.type == "gauge":
                    value, cumulative = EmfValue(base, _unit(base, "value"), sample.value), False
                else:
                    continue  # _created, _bucket: nothing CloudWatch keeps
                readings[(value.name, labels)] = (value, cumulative)
    return readings


class EmbeddedMetrics:
    """Writes, at each `flush`, what moved since the last one (or since it was made) as EMF lines."""

    def __init__(
        self,
        service: str,
        objects: Iterable[MetricWrapperBase] | None = None,
        write: Callable[[str], None] | None = None,
    ) -> None:
        self.service = service
        self.objects = list(objects) if objects is not None else service_metric_objects()
        self.write = write or _stdout
        self._last = {key: reading[0].value for key, reading in _readings(self.objects).items()}

    def changes(self) -> dict[Labels, list[EmfValue]]:
        """What moved since the last flush, by label set (and remember it as flushed)."""
        moved: dict[Labels, list[EmfValue]] = {}
        for key, (reading, cumulative) in _readings(self.objects).items():
            before = self._last.get(key, 0.0 if cumulative else None)
            self._last[key] = reading.value
            if cumulative:
                assert before is not None
                delta = reading.value - before
                if delta > 0:
                    moved.setdefault(key[1], []).append(EmfValue(reading.name, reading.unit, delta))
            elif before != reading.value:
                moved.setdefault(key[1], []).append(reading)
        return moved

    def flush(self) -> int:
        """Write one EMF line per label set that moved; how many lines were written."""
        from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

        lines = 0
        for labels, values in self.changes().items():
            provider = AmazonCloudWatchEMFProvider(namespace=NAMESPACE, service=self.service)
            for name, value in labels:
                provider.add_dimension(name=name, value=value or "none")
            for item in values:
                provider.add_metric(name=item.name, unit=item.unit, value=item.value)
            self.write(json.dumps(provider.serialize_metric_set(), separators=(",", ":")))
            lines += 1
        return lines


def _stdout(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def flush_quietly(metrics: EmbeddedMetrics | None) -> None:
    """Flush, if there is anything to flush with: a metrics failure is logged, never the invocation's failure."""
    if metrics is None:
        return
    try:
        metrics.flush()
    except Exception:
        log.exception("could not write the embedded metrics")


class FlushingHandler:
    """A Lambda handler that flushes the embedded metrics after each invocation."""

    def __init__(self, handler: Callable[[Any, Any], Any], service: str) -> None:
        self.handler = handler
        self.metrics = EmbeddedMetrics(service)

    def __call__(self, event: Any, context: Any = None) -> Any:
        try:
            return self.handler(event, context)
        finally:
            flush_quietly(self.metrics)


def flushing(handler: HandlerT, service: str) -> HandlerT | FlushingHandler:
    """In Lambda, `handler` flushing the embedded metrics after each invocation; elsewhere `handler` itself (the
    local stack and tests call it as it is, and a scrape reads the metrics instead)."""
    return FlushingHandler(handler, service) if in_lambda() else handler

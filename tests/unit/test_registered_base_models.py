"""The run-time base models, pure parts: how registered rows merge into the registry (the deployment's own names
win), which names and weights a registration may have, and the per-process cache of the table's read."""

from __future__ import annotations

import pytest

from events.records.base_models import RegisteredBaseModelRecord
from infra.base_models import (
    Family,
    base_model_catalog,
    base_model_registry,
    base_model_source_problem,
    reserved_base_model_name,
)
from infra.repositories.base_models import RegisteredBaseModelCache, _rows, as_source
from infra.repositories.dynamo import to_item
from infra.settings import BaseModelSource, Settings

SETTINGS = Settings(
    base_models={"sd-1.5": "/models/sd15"},
    base_model_aliases={"realm-xl": "studio-xl", "sd": "sd-1.5"},
)


def test_registered_rows_join_the_registry_after_the_deployments_own_names() -> None:
    registered = {
        "studio-xl": BaseModelSource(source="s3://weights/studio-xl/", family="sd-xl"),
        "sd-1.5": BaseModelSource(source="/elsewhere", family="flux.1"),  # the settings took this name: ignored
        "tiny-sd": BaseModelSource(source="/elsewhere", family="flux.1"),  # a built-in's: ignored
        "sd": BaseModelSource(source="/elsewhere"),  # an alias's: ignored
    }
    registry = base_model_registry(SETTINGS, registered)

    assert registry["studio-xl"].family is Family.SDXL and registry["studio-xl"].source == "s3://weights/studio-xl/"
    assert registry["studio-xl"].default_size == 1024  # the family's defaults
    assert registry["realm-xl"] is registry["studio-xl"]  # an alias may name a registered model
    assert registry["sd-1.5"].source == "/models/sd15" and registry["sd-1.5"].family is Family.SD15
    assert registry["tiny-sd"].is_builtin and registry["sd"] is registry["sd-1.5"]
    assert "studio-xl" not in base_model_registry(SETTINGS)  # without the rows, as before
    names = {entry.spec.name: entry.aliases for entry in base_model_catalog(SETTINGS, registered)}
    assert names["studio-xl"] == ("realm-xl",)


def test_a_registration_may_not_take_a_name_the_deployment_uses() -> None:
    assert "built-in" in (reserved_base_model_name("tiny-flux", SETTINGS) or "")
    assert "settings" in (reserved_base_model_name("sd-1.5", SETTINGS) or "")
    assert "alias" in (reserved_base_model_name("realm-xl", SETTINGS) or "")
    assert reserved_base_model_name("studio-xl", SETTINGS) is None


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (dict(source="/models/xl"), None),
        (dict(source="s3://bucket/models/xl/"), None),
        (dict(source="s3://b/ckpt.safetensors", config="s3://b/xl-config/", sha256="a" * 64), None),
        (dict(source="/models/ckpt.safetensors", config="/models/xl-config"), None),
        (dict(source="models/xl"), "source"),  # relative: the workers' working directory is not the API's
        (dict(source="s3://bucket"), "source"),
        (dict(source="builtin:tiny-sd"), "source"),
        (dict(source="/models/ckpt.safetensors"), "config"),
        (dict(source="/models/ckpt.safetensors", config="relative/config"), "config"),
        (dict(source="/models/xl", config="/models/xl-config"), "config"),
        (dict(source="/models/xl", sha256="a" * 64), "sha256"),
        # A key that would climb out of the workers' model cache.
        (dict(source="s3://b/../../../tmp/evil.safetensors", config="s3://b/c/"), "source"),
        (dict(source="s3://b/m.safetensors", config="s3://b/./c/"), "config"),
    ],
)
def test_a_registrations_weights_must_be_readable_by_the_workers(entry: dict, problem: str | None) -> None:
    found = base_model_source_problem(BaseModelSource(**entry))
    assert (found[0] if found else None) == problem


def test_the_tables_read_is_trusted_for_its_period_then_read_again() -> None:
    now = [100.0]
    cache = RegisteredBaseModelCache(2.0, clock=lambda: now[0])
    row = RegisteredBaseModelRecord(name="studio-xl", source="/models/xl", family="sd-xl")
    assert cache.get() is None
    cache.put([row])
    now[0] += 1.9
    assert cache.get() == [row]
    now[0] += 0.2
    assert cache.get() is None
    cache.put([row])
    cache.forget()  # this process changed the table
    assert cache.get() is None
    off = RegisteredBaseModelCache(0.0)
    off.put([row])
    assert off.get() is None
    assert as_source(row) == BaseModelSource(source="/models/xl", family="sd-xl")


def test_a_malformed_row_is_skipped_not_fatal() -> None:
    good = to_item({"name": "ok-xl", "source": "/models/xl", "family": "sd-xl"})
    bad = to_item({"name": "broken", "family": "no-such-family"})
    assert [row.name for row in _rows([bad, good])] == ["ok-xl"]

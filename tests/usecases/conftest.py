"""The fast tier's fixture: a fresh in-memory `FakeBackends` per test."""

from __future__ import annotations

import pytest

from tests.fakes import FakeBackends


@pytest.fixture
def backends() -> FakeBackends:
    """Empty in-memory backends (jobs, models, training data, uploads, store, broker)."""
    return FakeBackends()

"""The generation job state machine."""

from __future__ import annotations

import itertools

import pytest

from events.states import GENERATION, GenerationStatus, IllegalTransition

G = GenerationStatus
ALLOWED = {
    (G.QUEUED, G.PROCESSING),
    (G.QUEUED, G.FAILED),
    (G.QUEUED, G.CANCELED),
    (G.PROCESSING, G.PROCESSING),
    (G.PROCESSING, G.COMPLETED),
    (G.PROCESSING, G.FAILED),
    (G.PROCESSING, G.CANCELED),
}


@pytest.mark.parametrize("current, target", list(itertools.product(G, G)))
def test_transition_table(current: G, target: G) -> None:
    assert GENERATION.can_transition(current, target) == ((current, target) in ALLOWED)
    if (current, target) in ALLOWED:
        GENERATION.check(current, target)
    else:
        with pytest.raises(IllegalTransition, match=f"{current.value} to {target.value}"):
            GENERATION.check(current, target)


def test_terminal_states_are_final() -> None:
    assert GENERATION.terminal == {G.COMPLETED, G.FAILED, G.CANCELED}
    for state, target in itertools.product(GENERATION.terminal, G):
        assert not GENERATION.can_transition(state, target)


def test_initial_state_is_queued_and_nothing_returns_to_it() -> None:
    assert GENERATION.initial is G.QUEUED
    assert GENERATION.allowed_predecessors(G.QUEUED) == frozenset()


def test_predecessors_are_the_condition_of_a_write() -> None:
    assert GENERATION.allowed_predecessors(G.COMPLETED) == {G.PROCESSING}
    assert GENERATION.allowed_predecessors(G.FAILED) == {G.QUEUED, G.PROCESSING}
    assert GENERATION.allowed_predecessors(G.PROCESSING) == {G.QUEUED, G.PROCESSING}

"""Python values as DynamoDB attribute values and back, within what DynamoDB can store."""

from __future__ import annotations

import pytest

from infra.repositories.dynamo import from_item, to_item


@pytest.mark.parametrize("value", [0.8, -1.95, 1e-120, 7.5, 123456789.125])
def test_floats_round_trip_exactly(value: float) -> None:
    assert from_item(to_item({"v": value}))["v"] == value


@pytest.mark.parametrize("value", [-3.578710758818514e-275, 5e-324, 1e-131])
def test_a_float_too_close_to_zero_for_dynamodb_is_stored_as_zero(value: float) -> None:
    # Found by the API fuzzer: a composition concept's scale of -3.6e-275 made the SDK raise decimal.Underflow.
    assert to_item({"concepts": [{"scale": value}]}) == {"concepts": {"L": [{"M": {"scale": {"N": "0"}}}]}}
    assert from_item(to_item({"v": value}))["v"] == 0


def test_none_values_are_left_out() -> None:
    assert to_item({"a": 1, "b": None, "c": {"d": None, "e": "x"}}) == {"a": {"N": "1"}, "c": {"M": {"e": {"S": "x"}}}}

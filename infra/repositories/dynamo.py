"""Conversion between plain Python values and DynamoDB attribute values."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


# DynamoDB's smallest positive number is 1e-130; a float closer to zero is refused by the SDK (decimal Underflow).
# Any such value (a fuzzer's scale of -3.6e-275) is zero for every quantity stored here, so it is stored as 0.
DYNAMODB_SMALLEST = 1e-130


def _to_dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(0) if abs(value) < DYNAMODB_SMALLEST else Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _to_dynamo(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_to_dynamo(v) for v in value]
    return value


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamo(v) for v in value]
    if isinstance(value, set):
        return {_from_dynamo(v) for v in value}
    return value


def serialize(value: Any) -> dict[str, Any]:
    """One Python value as a DynamoDB attribute value (floats become exact decimals)."""
    return _serializer.serialize(_to_dynamo(value))


def to_item(record: dict[str, Any]) -> dict[str, Any]:
    """A Python dict as a DynamoDB item; None values are left out."""
    return {k: serialize(v) for k, v in record.items() if v is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as a plain Python dict (numbers as int or float)."""
    return {k: _from_dynamo(_deserializer.deserialize(v)) for k, v in item.items()}


def is_condition_failure(exc: ClientError) -> bool:
    """Whether a write failed only because its condition did not hold."""
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


async def query_all(dynamodb: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """Every item a Query returns, following LastEvaluatedKey across pages, as plain dicts."""
    items: list[dict[str, Any]] = []
    while True:
        response = await dynamodb.query(**kwargs)
        items.extend(from_item(i) for i in response.get("Items", []))
        if "LastEvaluatedKey" not in response:
            return items
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

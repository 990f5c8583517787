"""Conversion between plain Python values (and typed records) and DynamoDB attribute values."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from functools import cache
from typing import Annotated, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError
from pydantic import TypeAdapter

from events.records.base import StoredRecord

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


async def count_all_pages(dynamodb: Any, **kwargs: Any) -> int:
    """The Count of a Query with `Select=COUNT`, over every page (a page stops at 1 MB read, not at a count)."""
    kwargs = {**kwargs, "Select": "COUNT"}
    total = 0
    while True:
        response = await dynamodb.query(**kwargs)
        total += response.get("Count", 0)
        if "LastEvaluatedKey" not in response:
            return total
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def record_item(record: StoredRecord) -> dict[str, Any]:
    """A typed record as a DynamoDB item (None left out, floats as exact decimals, string sets as SS)."""
    return to_item(record.to_document())


def declared_fields(record_classes: tuple[type[StoredRecord], ...], fields: Mapping[str, Any]) -> dict[str, Any]:
    """`fields` of a partial update as stored values, each validated by the first of `record_classes` that
    declares it; ValueError naming any field none declares (nothing undeclared reaches the table)."""
    stored: dict[str, Any] = {}
    for name, value in fields.items():
        owner = next((cls for cls in record_classes if cls.declares(name)), None)
        if owner is None:
            names = ", ".join(cls.__name__ for cls in record_classes)
            raise ValueError(f"{name!r} is not a field of {names}")
        if value is None:
            stored[name] = None
            continue
        adapter = _field_adapter(owner, name)
        stored[name] = adapter.dump_python(adapter.validate_python(value), mode="json")
        if name in owner.string_sets:
            stored[name] = set(stored[name])
    return stored


@cache
def _field_adapter(owner: type[StoredRecord], name: str) -> TypeAdapter[Any]:
    info = owner.model_fields[name]
    if not info.metadata:
        return TypeAdapter(info.annotation)
    return TypeAdapter(Annotated[(info.annotation, *info.metadata)])  # type: ignore[valid-type]

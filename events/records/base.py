"""What every stored record shares: undeclared fields are refused, and times are stored as ISO strings.

Times stay the ISO 8601 strings (or, where a record says so, epoch seconds) that DynamoDB holds: they are
compared inside key conditions and filters (`createdAt < :c`, `nextAttemptAt <= :now`), so the stored form is
the contract, and a record carries it unchanged rather than a datetime that would re-serialize differently.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from events.envelope import utcnow

IsoTime = Annotated[str, Field(min_length=1, description="An ISO 8601 time, as stored (sorts as the time does).")]


def now_iso() -> str:
    """The current time as records store it."""
    return utcnow().isoformat()


class ValidatedImage(BaseModel):
    """What validation learned about an uploaded image: shared by training images and uploads. Each is None
    until the bytes have been validated."""

    width: int | None = Field(default=None, ge=1, description="Width in pixels, once validated.")
    height: int | None = Field(default=None, ge=1, description="Height in pixels, once validated.")
    format: str | None = Field(default=None, description="The uploaded file's image format (e.g. JPEG).")
    bytes: int | None = Field(default=None, ge=0, description="The uploaded file's size in bytes.")
    sha256: str | None = Field(default=None, description="SHA-256 of the normalized image.")


class StoredRecord(BaseModel):
    """A DynamoDB item as a typed record. Field names are the stored attribute names."""

    model_config = ConfigDict(extra="forbid")

    # Attributes stored as DynamoDB string sets (SS): JSON has no sets, so the serializer restores them.
    string_sets: ClassVar[frozenset[str]] = frozenset()

    def to_document(self) -> dict[str, Any]:
        """The record as the plain values an item is written from (None left out, string sets as sets)."""
        document = self.model_dump(mode="json", exclude_none=True)
        for name in self.string_sets:
            if name in document:
                if document[name]:
                    document[name] = set(document[name])
                else:
                    del document[name]  # DynamoDB refuses an empty set
        return document

    @classmethod
    def declares(cls, name: str) -> bool:
        """Whether `name` is one of this record's stored attributes."""
        return name in cls.model_fields

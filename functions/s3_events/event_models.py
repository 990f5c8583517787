"""Typed models of the Lambda SQS event and of the S3 notifications inside its records."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class S3Object(BaseModel):
    """The object a notification is about; `key` is URL-encoded as S3 sends it."""

    model_config = ConfigDict(extra="allow")

    key: str
    size: int | None = None
    eTag: str | None = None
    sequencer: str | None = None  # absent from moto's notifications


class S3Bucket(BaseModel):
    """The bucket a notification is about."""

    model_config = ConfigDict(extra="allow")

    name: str


class S3Entity(BaseModel):
    """The `s3` part of a notification record."""

    model_config = ConfigDict(extra="allow")

    bucket: S3Bucket
    object: S3Object


class S3Record(BaseModel):
    """One S3 event notification record."""

    model_config = ConfigDict(extra="allow")

    eventName: str
    eventTime: str | None = None
    s3: S3Entity


class S3Notification(BaseModel):
    """The body of an SQS message from S3: records, or a test event sent when notifications are set."""

    model_config = ConfigDict(extra="allow")

    Records: list[S3Record] = Field(default_factory=list)
    Event: str | None = None

    @property
    def is_test_event(self) -> bool:
        """S3 sends `s3:TestEvent` once when a notification configuration is written."""
        return self.Event == "s3:TestEvent"


class SqsRecord(BaseModel):
    """One record of a Lambda SQS event."""

    model_config = ConfigDict(extra="allow")

    messageId: str
    receiptHandle: str | None = None
    body: str
    attributes: dict[str, Any] = Field(default_factory=dict)
    eventSource: str | None = None
    eventSourceARN: str | None = None


class SqsEvent(BaseModel):
    """A Lambda SQS event (a batch)."""

    Records: list[SqsRecord]

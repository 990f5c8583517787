"""Typed stored records: one pydantic model per DynamoDB item family, field names as stored."""

from events.records.api_keys import ApiKeyRecord
from events.records.base import IsoTime, StoredRecord, now_iso
from events.records.idempotency import IdempotencyRecord, StoredResponse
from events.records.jobs import (
    JOB_CLASSES,
    EpochRecord,
    GenerationJob,
    Job,
    JobRecordBase,
    PortraitJob,
    PortraitStyle,
    TrainingJob,
    parse_job,
)
from events.records.models import ConceptRef, ModelRecord
from events.records.nonces import NonceRecord
from events.records.tenants import TenantQuotas, TenantRecord
from events.records.training_data import TrainingImageRecord
from events.records.uploads import UploadPurpose, UploadRecord
from events.records.webhooks import DeliveryAttempt, DeliveryRecord, WebhookSecretRecord
from events.records.workers import WorkerRecord

__all__ = [
    "JOB_CLASSES",
    "ApiKeyRecord",
    "ConceptRef",
    "DeliveryAttempt",
    "DeliveryRecord",
    "EpochRecord",
    "GenerationJob",
    "IdempotencyRecord",
    "IsoTime",
    "Job",
    "JobRecordBase",
    "ModelRecord",
    "NonceRecord",
    "PortraitJob",
    "PortraitStyle",
    "StoredRecord",
    "StoredResponse",
    "TenantQuotas",
    "TenantRecord",
    "TrainingImageRecord",
    "TrainingJob",
    "UploadPurpose",
    "UploadRecord",
    "WebhookSecretRecord",
    "WorkerRecord",
    "now_iso",
    "parse_job",
]

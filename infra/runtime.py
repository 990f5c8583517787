"""The long-lived clients one process needs (AWS, Kafka) and the repositories built on them.

Handlers and workers open one `ServiceContext` per process (per warm Lambda container) and reuse it.
"""

from __future__ import annotations

import logging

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from infra.aws import AwsClients
from infra.base_models import BaseModelSpec, base_model_registry
from infra.kafka import EventPublisher, create_producer
from infra.kafka_auth import resolve_kafka_settings
from infra.repositories.api_keys import ApiKeyCache, ApiKeyRepository
from infra.repositories.base_models import BaseModelRepository, RegisteredBaseModelCache
from infra.repositories.idempotency import IdempotencyRepository
from infra.repositories.job_counts import JobCountRepository
from infra.repositories.jobs import JobRepository
from infra.repositories.models import ModelRepository
from infra.repositories.nonces import NonceRepository
from infra.repositories.rate_limits import RateLeases, RateLimitRepository
from infra.repositories.tenants import TenantCache, TenantRepository
from infra.repositories.training_data import TrainingDataRepository
from infra.repositories.uploads import UploadRepository
from infra.repositories.webhooks import DeliveryRepository, WebhookSecretRepository
from infra.settings import BaseModelSource, Settings
from infra.storage import ArtifactStore

log = logging.getLogger(__name__)


class ServiceContext:
    """Open clients and the repositories over them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.clients = AwsClients(settings)
        self.producer = create_producer(settings)
        self.publisher = EventPublisher(self.producer)
        # Every API request reads its key: this process trusts a read for a few seconds (bounded staleness).
        self.api_key_cache = ApiKeyCache(settings.api_key_cache_seconds)
        # And its tenant's record (quotas, suspension), with the same bound on staleness.
        self.tenant_cache = TenantCache(settings.api_key_cache_seconds)
        # Shares of each key's per-second allowance this process has taken (infra/repositories/rate_limits.py).
        self.rate_leases = RateLeases()
        # The base models an operator registered at run time: one read of their table trusted for as long, and the
        # rows of the last read, which `base_models` merges (`refresh_base_models` renews them, once per request).
        self.base_model_cache = RegisteredBaseModelCache(settings.api_key_cache_seconds)
        self.registered_base_model_sources: dict[str, BaseModelSource] = {}
        self._kafka_started = False

    async def open(self, *, kafka: bool = True) -> ServiceContext:
        """Open the AWS clients and, unless told not to, start the Kafka producer (on AWS, after finding the
        brokers and credentials the settings name by ARN: `self.settings` is then the resolved copy)."""
        await self.clients.open()
        if kafka:
            try:
                resolved = await resolve_kafka_settings(self.settings)
                if resolved is not self.settings:
                    # The producer built in __init__ never started: nothing to close.
                    self.settings = resolved
                    self.producer = create_producer(resolved)
                    self.publisher = EventPublisher(self.producer)
                await self.producer.start()
            except BaseException:
                await self.producer.stop()  # releases what start() left half-open
                await self.clients.close()
                raise
            self._kafka_started = True
        return self

    async def close(self) -> None:
        """Flush and close everything."""
        try:
            if self._kafka_started:
                await self.producer.stop()
        finally:
            await self.clients.close()

    @property
    def jobs(self) -> JobRepository:
        """Jobs of every kind (generations, trainings, portraits): one table, each kind its state machine."""
        return JobRepository(self.clients.dynamodb, self.settings.jobs_table)

    @property
    def base_models(self) -> dict[str, BaseModelSpec]:
        """The base models this deployment offers, by name and alias (those registered at run time as of the last
        `refresh_base_models`)."""
        return base_model_registry(self.settings, self.registered_base_model_sources)

    @property
    def registered_base_models(self) -> BaseModelRepository:
        """Base models an operator registered at run time (the base-models table), read through this process's cache."""
        return BaseModelRepository(self.clients.dynamodb, self.settings.base_models_table, self.base_model_cache)

    async def refresh_base_models(self) -> dict[str, BaseModelSpec]:
        """Renew the registered base models (at most one table read per cache period), then the registry. If the
        table cannot be read, the last read stands: a request that names no such model must not fail for it."""
        try:
            self.registered_base_model_sources = await self.registered_base_models.sources()
        except (BotoCoreError, ClientError, ValidationError):
            log.warning("cannot read the base-models table; using the last read", exc_info=True)
        return self.base_models

    @property
    def models(self) -> ModelRepository:
        """Models."""
        return ModelRepository(self.clients.dynamodb, self.settings.models_table)

    @property
    def training_data(self) -> TrainingDataRepository:
        """Training images' records."""
        return TrainingDataRepository(self.clients.dynamodb, self.settings.training_data_table)

    @property
    def idempotency(self) -> IdempotencyRepository:
        """Idempotency-Key records."""
        return IdempotencyRepository(self.clients.dynamodb, self.settings.idempotency_table)

    @property
    def webhook_secrets(self) -> WebhookSecretRepository:
        """Tenants' webhook signing secrets."""
        return WebhookSecretRepository(self.clients.dynamodb, self.settings.webhook_secrets_table)

    @property
    def deliveries(self) -> DeliveryRepository:
        """Webhook deliveries."""
        return DeliveryRepository(self.clients.dynamodb, self.settings.webhook_deliveries_table)

    @property
    def nonces(self) -> NonceRepository:
        """One-time tokens."""
        return NonceRepository(self.clients.dynamodb, self.settings.nonces_table)

    @property
    def uploads(self) -> UploadRepository:
        """Upload records."""
        return UploadRepository(self.clients.dynamodb, self.settings.uploads_table)

    @property
    def api_keys(self) -> ApiKeyRepository:
        """Hashed API keys, looked up through this process's cache."""
        return ApiKeyRepository(self.clients.dynamodb, self.settings.api_keys_table, self.api_key_cache)

    @property
    def tenants(self) -> TenantRepository:
        """Tenants (quotas, status, stored bytes), read per request through this process's cache."""
        return TenantRepository(self.clients.dynamodb, self.settings.tenants_table, self.tenant_cache)

    @property
    def rate_limits(self) -> RateLimitRepository:
        """Per-key request windows, counted across processes (in the nonces table), leased to this process."""
        return RateLimitRepository(self.clients.dynamodb, self.settings.nonces_table, self.rate_leases)

    @property
    def job_counts(self) -> JobCountRepository:
        """A tenant's jobs queued or running, counted on the sparse indexes (the active-jobs quota)."""
        return JobCountRepository(self.clients.dynamodb, self.settings.jobs_table)

    @property
    def store(self) -> ArtifactStore:
        """The artifacts bucket."""
        return ArtifactStore(self.clients.s3, self.settings.bucket)

"""All configuration in one place: environment variables prefixed `LF_` (or a `.env` file).

Endpoints are overridable so the same code targets moto, LocalStack or AWS, and Kafka anywhere.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Checkpoint files that are pickles: loading one can run code, so a base model is never one.
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")


class BaseModelSource(BaseModel):
    """One configured base model's weights (an entry of `base_models`)."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1, description="A diffusers folder or s3:// prefix, or one .safetensors file.")
    family: Literal["sd-1_5", "sd-xl", "flux.1"] | None = None
    config: str | None = Field(
        default=None, description="A single file's configuration: a diffusers folder (local or s3://), no weights."
    )
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")

    @field_validator("source")
    @classmethod
    def _no_pickle(cls, source: str) -> str:
        # Loading a pickle runs its code: checkpoints are accepted as safetensors only.
        if source.lower().endswith(PICKLE_SUFFIXES):
            raise ValueError(f"{source!r} is a pickle checkpoint; convert it to .safetensors")
        return source


class Settings(BaseSettings):
    """Every setting of LoRA Foundry; see the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="LF_", env_file=".env", extra="ignore")

    # AWS. `aws_endpoint_url` points every service at one endpoint (moto, LocalStack); the per-service
    # ones override it. Left empty, the SDK's normal resolution (real AWS) applies.
    aws_region: str = "us-east-1"
    aws_endpoint_url: str | None = None
    s3_endpoint_url: str | None = None
    dynamodb_endpoint_url: str | None = None
    sqs_endpoint_url: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: SecretStr | None = None

    # Resource names. A prefix keeps several stacks (or test runs) apart in one account.
    resource_prefix: str = "lorafoundry"
    bucket_name: str | None = Field(default=None, description="Defaults to '{resource_prefix}-artifacts'.")

    # Kafka.
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    # On AWS (see infra.kafka_auth): an MSK cluster by ARN, its brokers asked of the kafka API at start-up, and
    # SCRAM credentials read from a Secrets Manager secret (JSON username/password) instead of the two above.
    kafka_cluster_arn: str | None = None
    kafka_sasl_secret_arn: str | None = None
    # Tansu rejects InitProducerId, so the embedded stack turns idempotence off; real Kafka keeps it on.
    kafka_idempotence: bool = True
    kafka_partitions: int = Field(default=4, ge=1)
    kafka_replication_factor: int = Field(default=1, ge=1)
    kafka_consumer_group: str = "lorafoundry-generators"
    kafka_training_consumer_group: str = "lorafoundry-trainers"
    kafka_portraits_consumer_group: str = "lorafoundry-portraits"
    # How long the broker may hold an empty fetch. Tansu answers only when it expires, not when a record
    # arrives, so this bounds how long a new job waits on an idle worker (measured by bench/pipeline_overhead.py).
    kafka_fetch_max_wait_ms: int = Field(default=50, ge=0, le=5000)
    # How soon the group notices a member that died without leaving (SIGKILL, OOM) and hands its partitions to
    # the others: a takeover takes the session timeout plus a rebalance (about 4 s on Tansu, which holds every
    # follower's JoinGroup 3 s); measured by bench/worker_takeover.py. 6 s is the least a Kafka broker accepts
    # by default (group.min.session.timeout.ms); heartbeats come from a task of their own, so a long job running
    # off the event loop does not miss them.
    kafka_session_timeout_ms: int = Field(default=6_000, ge=1_000, le=300_000)
    kafka_heartbeat_interval_ms: int = Field(default=1_000, ge=100, le=100_000)
    # Static membership (KIP-345), one id per consumer process: a member that comes back under its id within the
    # session timeout takes its partitions back without a rebalance. Unset by default: on Tansu 0.6 (which
    # accepts it) every static JoinGroup is held 3 s, so a takeover by a survivor is slower (bench).
    kafka_group_instance_id: str | None = None

    # API.
    presign_expiry_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    max_request_bytes: int = Field(default=1_048_576, ge=1024)
    # One training image (the custom-models API: 10 MB) and a whole multipart training request (the Realm-style API).
    max_image_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_training_upload_bytes: int = Field(default=100 * 1024 * 1024, ge=1024)
    # Decoded size limit: a bigger image is refused before its pixels are decoded (decompression bombs).
    max_image_pixels: int = Field(default=40_000_000, ge=4096)
    # Training images are stored with their longer side at most this (they are resized for training anyway).
    training_image_max_side: int = Field(default=1024, ge=64)
    # Presigned uploads (bigger than an API Gateway + Lambda body can carry, 6 MB) and the headshot API's upload keys.
    max_presigned_upload_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    upload_expiry_seconds: int = Field(default=24 * 3600, ge=60, description="The headshot API: upload keys last 24 h.")
    # LoRA files imported into a model: as the raw body of `PUT /v1/models/{id}/adapter` (API Gateway takes 10 MB;
    # through Lambda a binary body is base64 in a 6 MB payload, so about 4.4 MB arrive), and presigned (S3 takes
    # the bytes, the notification handler checks them: high-rank SDXL LoRAs run to hundreds of MB). Converting
    # one takes about 4x its size on top of the file itself (measured: a 207 MiB F16 kohya file peaks at 1 GiB
    # RSS), so the s3-events function needs about 5x this limit of memory.
    max_adapter_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_adapter_upload_bytes: int = Field(default=512 * 1024 * 1024, ge=1024)
    max_adapter_rank: int = Field(default=256, ge=1)
    # A kohya download is converted in the API's Lambda on its first request, only of a stored adapter up to this
    # size (bigger ones: 409, the diffusers file is downloadable): measured, converting takes about 3x the file on
    # top of the process (a 122 MiB SDXL file: 74 -> 449 MiB peak RSS), and the read and the upload hold a copy
    # each, so 128 MiB stays under about 800 MB of the API's 1024 (infra/deploy/catalog.py).
    max_adapter_export_convert_bytes: int = Field(default=128 * 1024 * 1024, ge=1024)
    # Fetching user-given URLs (headshot imageUrls): networks allowed despite being private (e.g. a partner
    # network, or loopback in tests), and the limits of one fetch.
    egress_allowed_networks: list[str] = Field(default_factory=list)
    url_fetch_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    # Idempotency-Key on creates: how long a key is remembered, how long a first request holds it (a request
    # that died frees it after this), and how long a concurrent repeat waits for the first one's response.
    idempotency_ttl_seconds: int = Field(default=24 * 3600, ge=60)
    idempotency_lock_seconds: int = Field(default=60, ge=1)
    idempotency_wait_seconds: float = Field(default=25.0, ge=0, le=300)
    # Webhooks: one delivery attempt's time limit, how long a rotated-out secret keeps signing, how long a
    # dispatcher holds an attempt before another may take it, and (embedded stack) how often the sweep runs.
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    webhook_secret_overlap_seconds: int = Field(default=24 * 3600, ge=0)
    webhook_lease_seconds: int = Field(default=60, ge=1)
    webhook_sweep_interval_seconds: float = Field(default=5.0, gt=0)
    kafka_webhooks_consumer_group: str = "lorafoundry-webhooks"
    # The reconciler: a job queued this long has its command published again; a job whose worker's lease
    # lapsed is published again, up to this many attempts, then failed; how often it runs (embedded stack).
    reconcile_queued_after_seconds: int = Field(default=120, ge=0)
    reconcile_max_attempts: int = Field(default=3, ge=1)
    reconcile_interval_seconds: float = Field(default=15.0, gt=0)
    # Headshot portraits: images are squared to this size with white padding.
    portrait_image_size: int = Field(default=640, ge=64, le=1024)
    # How old a request signature (the Realm-style API's DELETE) may be, in seconds either way.
    signature_tolerance_seconds: int = Field(default=300, ge=10)
    default_base_model: str = "tiny-sd"
    dev_api_key: SecretStr | None = Field(
        default=None, description="Bootstrap creates this key for the 'dev' tenant when set."
    )
    dev_signing_secret: SecretStr | None = Field(
        default=None, description="The dev key's signing secret (for signed calls such as DELETE /v1/models/{id})."
    )
    # Whether the dev key must prove its signing secret to delete a model (the Realm-style API: a signature, or Basic
    # auth with the secret); false lets a custom-models client delete with the key alone.
    dev_require_signed_deletes: bool = True
    # How long the API trusts an API-key lookup: a revoked key keeps working for at most this long (0: no cache).
    # Under the 5 s an operator is promised between revoking a key and every process refusing it.
    api_key_cache_seconds: float = Field(default=2.0, ge=0, le=60)
    # API worker processes in the embedded stack (uvicorn --workers). Default: one per CPU but one, because
    # moto and Tansu run on the same machine; on 2 cores 1 worker made 1.7x the creations/s of 2 (the API
    # processes and moto competed for the cores; bench/api_throughput.py).
    api_workers: int = Field(default_factory=lambda: max(1, (os.cpu_count() or 1) - 1), ge=1, le=64)

    # Operating it (docs/operations.md). The operator's credential for /v1/admin/ and /metrics: never a tenant's
    # key. Unset, the operator API is off. On AWS it is read from a Secrets Manager secret (JSON or plain string).
    admin_token: SecretStr | None = None
    admin_token_secret_arn: str | None = None
    # Quotas per tenant (0: no limit); a tenant's record may override each. Jobs queued or running of each kind,
    # requests per second of one API key, training images of one model, bytes of images a tenant has stored.
    quota_active_generations: int = Field(default=100, ge=0, le=1_000_000)
    quota_active_trainings: int = Field(default=10, ge=0, le=1_000_000)
    quota_requests_per_second: float = Field(default=100.0, ge=0, le=1_000_000, allow_inf_nan=False)
    quota_training_images_per_model: int = Field(default=200, ge=0, le=1_000_000)
    quota_storage_bytes: int = Field(default=10 * 1024**3, ge=0, le=10**15)
    # Prometheus text on a port of each worker (and of each local event source); unset: no metrics server.
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    # Where that server binds: every interface by default (a container's port is what is published); the embedded
    # stack binds its own host (loopback) so a laptop's counters are not served to its network.
    metrics_host: str = "0.0.0.0"
    # OpenTelemetry: spans are always made (their ids join logs and events); exported over OTLP/HTTP only when an
    # endpoint is set, e.g. LF_OTLP_ENDPOINT=http://collector:4318.
    otlp_endpoint: str | None = None
    trace_sample_ratio: float = Field(default=1.0, ge=0, le=1)
    # Logs: one JSON object per line (job id, tenant and trace id on every line about a job), or plain text.
    log_format: Literal["json", "text"] = "json"
    log_level: str = "INFO"
    # Live workers: each refreshes its record this often; a record not refreshed for 3 intervals is gone (TTL).
    worker_registry_interval_seconds: float = Field(default=10.0, gt=0, le=300)

    # Workers.
    worker_id: str | None = None
    worker_lease_seconds: int = Field(default=120, ge=5)
    # A file the worker's loop touches while it is alive, which `python -m workers.health` (the container's
    # health check) reads: older than the max age, the worker is unhealthy. Unset: no heartbeat is written.
    worker_heartbeat_path: Path | None = None
    worker_heartbeat_max_age_seconds: float = Field(default=60.0, gt=0)
    # On ECS: protect the task from the service's scale-in while it runs a job (trainers: a training outlasts any
    # stop timeout), so scaling in stops an idle task rather than a busy one. Off elsewhere.
    worker_scale_in_protection: bool = False
    model_cache_dir: Path = Path.home() / ".cache" / "lorafoundry" / "models"
    # LoRA weights a generator keeps loaded per base pipeline; past it, the least recently used are unloaded.
    adapter_cache_bytes: int = Field(default=1024**3, ge=0)
    # Extra base models: JSON object of name -> a local folder or s3:// prefix in diffusers' layout, or an entry
    # naming its family and, for a single .safetensors checkpoint, its configuration folder and sha256, e.g.
    # LF_BASE_MODELS='{"sd-1.5": "/models/sd15", "my-xl": {"source": "s3://m/xl.safetensors", "family": "sd-xl",
    # "config": "s3://m/sdxl-config/", "sha256": "…"}}'. Without a family, the name's prefix says (sd-xl…, flux…).
    base_models: dict[str, str | BaseModelSource] = Field(default_factory=dict)
    # Other names for base models, e.g. LF_BASE_MODEL_ALIASES='{"realm-base-v2.1": "sd-1.5"}', so clients
    # written against another service's model names work unchanged.
    base_model_aliases: dict[str, str] = Field(default_factory=dict)
    torch_device: str = "auto"
    # Automatic captioning of training images that have no description: a captioning model's folder (local or s3://,
    # in transformers' layout, e.g. a BLIP image-to-text model) the trainer loads; unset, images without a
    # description train on the concept prompt. Nothing is downloaded from a hub at run time.
    captioning_model: str | None = None
    # Training on a GPU: an 8-bit AdamW (bitsandbytes, when it is installed) halves the optimizer's memory.
    trainer_8bit_optimizer: bool = False

    # Local poller that plays the SQS -> Lambda event source mapping.
    poller_batch_size: int = Field(default=10, ge=1, le=10)
    poller_wait_seconds: int = Field(default=1, ge=0, le=20)

    @property
    def bucket(self) -> str:
        """The artifacts bucket."""
        return self.bucket_name or f"{self.resource_prefix}-artifacts"

    @property
    def jobs_table(self) -> str:
        """DynamoDB table of jobs (generations, later trainings)."""
        return f"{self.resource_prefix}-jobs"

    @property
    def api_keys_table(self) -> str:
        """DynamoDB table of hashed API keys."""
        return f"{self.resource_prefix}-api-keys"

    @property
    def models_table(self) -> str:
        """DynamoDB table of models."""
        return f"{self.resource_prefix}-models"

    @property
    def training_data_table(self) -> str:
        """DynamoDB table of training images (key: model id, data id)."""
        return f"{self.resource_prefix}-training-data"

    @property
    def uploads_table(self) -> str:
        """DynamoDB table of uploads (presigned or direct), forgotten by TTL when they expire."""
        return f"{self.resource_prefix}-uploads"

    @property
    def idempotency_table(self) -> str:
        """DynamoDB table of Idempotency-Key records (TTL)."""
        return f"{self.resource_prefix}-idempotency"

    @property
    def webhook_secrets_table(self) -> str:
        """DynamoDB table of each tenant's webhook signing secrets."""
        return f"{self.resource_prefix}-webhook-secrets"

    @property
    def webhook_deliveries_table(self) -> str:
        """DynamoDB table of webhook deliveries and their retry schedule."""
        return f"{self.resource_prefix}-webhook-deliveries"

    @property
    def nonces_table(self) -> str:
        """DynamoDB table of one-time tokens (request signatures already used)."""
        return f"{self.resource_prefix}-nonces"

    @property
    def tenants_table(self) -> str:
        """DynamoDB table of tenants (their quotas and usage)."""
        return f"{self.resource_prefix}-tenants"

    @property
    def workers_table(self) -> str:
        """DynamoDB table of live workers, each record refreshed while its worker lives (TTL forgets the dead)."""
        return f"{self.resource_prefix}-workers"

    @property
    def base_models_table(self) -> str:
        """DynamoDB table of base models an operator registered at run time (on top of settings' `base_models`)."""
        return f"{self.resource_prefix}-base-models"

    @property
    def notifications_queue(self) -> str:
        """SQS queue that receives the bucket's object notifications."""
        return f"{self.resource_prefix}-s3-notifications"

    def endpoint_for(self, service: str) -> str | None:
        """The endpoint URL of one AWS service, or None for the SDK default."""
        specific = {
            "s3": self.s3_endpoint_url,
            "dynamodb": self.dynamodb_endpoint_url,
            "sqs": self.sqs_endpoint_url,
        }.get(service)
        return specific or self.aws_endpoint_url


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()

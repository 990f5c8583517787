"""The S3 key layout shared by workers (who write) and the notification handler (who reads). Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import unquote_plus

from events.states import JobKind


class Marker(StrEnum):
    """Objects whose creation changes a job's status."""

    RESULT = "result.json"
    FAILED = "failed.json"
    CANCELED = "canceled.json"
    PROGRESS = "progress.json"


_JOB_MARKER = re.compile(r"^jobs/(?P<job_id>[A-Za-z0-9_-]{1,64})/(?P<marker>[a-z]+\.json)$")
_TRAINING_MARKER = re.compile(r"^trainings/(?P<job_id>[A-Za-z0-9_-]{1,64})/(?P<marker>[a-z]+\.json)$")
_EPOCH_MARKER = re.compile(r"^trainings/(?P<job_id>[A-Za-z0-9_-]{1,64})/checkpoints/(?P<epoch>\d{6})/epoch\.json$")
EPOCH_MARKER_NAME = "epoch.json"
UPLOAD_RAW_NAME = "raw"
_UPLOAD_RAW = re.compile(r"^uploads/(?P<tenant>[A-Za-z0-9_.-]{1,128})/(?P<upload_id>upl_[a-f0-9]{8,64})/raw$")
UPLOAD_ADAPTER_NAME = "adapter.safetensors"
_UPLOAD_ADAPTER = re.compile(
    r"^uploads/(?P<tenant>[A-Za-z0-9_.-]{1,128})/(?P<upload_id>upl_[a-f0-9]{8,64})/adapter\.safetensors$"
)
_UPLOAD_IMAGE = re.compile(r"^uploads/(?P<tenant>[A-Za-z0-9_.-]{1,128})/(?P<upload_id>upl_[a-f0-9]{8,64})/image\.png$")


def job_prefix(job_id: str) -> str:
    """Everything a generation job writes lives under this prefix."""
    return f"jobs/{job_id}/"


def job_output_key(job_id: str, index: int, extension: str) -> str:
    """Key of the `index`-th output image; deterministic so a rerun overwrites, never duplicates."""
    return f"{job_prefix(job_id)}outputs/{index}.{extension}"


def job_marker_key(job_id: str, marker: Marker) -> str:
    """Key of one of a job's status markers."""
    return f"{job_prefix(job_id)}{marker.value}"


class JobInput(StrEnum):
    """Images a modify job (image-to-image, inpainting) reads."""

    IMAGE = "image"
    MASK = "mask"


def job_input_key(job_id: str, name: JobInput) -> str:
    """Where the API stores a modify job's input image or mask (normalized PNG) before queueing it."""
    return f"{job_prefix(job_id)}inputs/{name.value}.png"


def is_job_input_key(key: str, job_id: str) -> bool:
    """Whether `key` is one of job `job_id`'s own input images."""
    return key in {job_input_key(job_id, name) for name in JobInput}


def is_tenant_upload_image_key(key: str, tenant_id: str) -> bool:
    """Whether `key` is a normalized upload (the headshot API's `POST /uploads`) of `tenant_id`."""
    match = _UPLOAD_IMAGE.match(key)
    return match is not None and match["tenant"] == tenant_id


def model_data_key(model_id: str, data_id: str, digest: str) -> str:
    """A normalized training image, addressed by content: a replacement gets a new key, so a training
    that already read the old key's list still finds its bytes."""
    return f"models/{model_id}/data/{data_id}/{digest[:16]}.png"


def upload_raw_key(tenant_id: str, upload_id: str) -> str:
    """Where a presigned upload lands, unvalidated; its notification triggers the validation."""
    return f"uploads/{tenant_id}/{upload_id}/{UPLOAD_RAW_NAME}"


def upload_adapter_key(tenant_id: str, upload_id: str) -> str:
    """Where a presigned LoRA file upload lands, unvalidated: a name of its own, so its notification starts
    the adapter import rather than the image validation."""
    return f"uploads/{tenant_id}/{upload_id}/{UPLOAD_ADAPTER_NAME}"


def parse_adapter_upload_key(raw_key: str) -> UploadRef | None:
    """Parse a notification key as a presigned LoRA file upload's; None if it is not one."""
    match = _UPLOAD_ADAPTER.match(unquote_plus(raw_key))
    return UploadRef(match["tenant"], match["upload_id"]) if match else None


def upload_image_key(tenant_id: str, upload_id: str) -> str:
    """An upload's normalized image (headshot upload keys point here)."""
    return f"uploads/{tenant_id}/{upload_id}/image.png"


@dataclass(frozen=True)
class UploadRef:
    """A parsed raw-upload key."""

    tenant_id: str
    upload_id: str


def parse_upload_key(raw_key: str) -> UploadRef | None:
    """Parse a notification key as a raw upload's; None if it is not one."""
    match = _UPLOAD_RAW.match(unquote_plus(raw_key))
    return UploadRef(match["tenant"], match["upload_id"]) if match else None


def training_prefix(training_id: str) -> str:
    """Everything a training writes lives under this prefix."""
    return f"trainings/{training_id}/"


def training_marker_key(training_id: str, marker: Marker) -> str:
    """Key of one of a training's status markers."""
    return f"{training_prefix(training_id)}{marker.value}"


def training_checkpoint_prefix(training_id: str, epoch: str) -> str:
    """Where one epoch's adapter, resume state and samples live."""
    return f"{training_prefix(training_id)}checkpoints/{epoch}/"


def training_epoch_keys(training_id: str, epoch: str) -> tuple[str, str, str]:
    """(adapter, resume snapshot, epoch marker) keys of one epoch; the marker is written last."""
    prefix = training_checkpoint_prefix(training_id, epoch)
    return f"{prefix}adapter.safetensors", f"{prefix}state.pt", f"{prefix}{EPOCH_MARKER_NAME}"


def training_sample_key(training_id: str, epoch: str, index: int) -> str:
    """The `index`-th sample image of an epoch."""
    return f"{training_prefix(training_id)}samples/{epoch}/{index}.png"


def training_adapter_key(training_id: str) -> str:
    """The one final adapter of a training (a fixed key: a resumed run overwrites, never duplicates)."""
    return f"{training_prefix(training_id)}adapter.safetensors"


class AdapterFormat(StrEnum):
    """The key namings an adapter file can be downloaded in (and, with peft's, imported from)."""

    DIFFUSERS = "diffusers"  # diffusers' `save_lora_weights` naming: what the service stores and serves
    KOHYA = "kohya"  # kohya-ss naming: what AUTOMATIC1111, Forge and ComfyUI load


# Hex digits of the sent file's SHA-256 in its import's key: enough that two different files never meet.
IMPORT_DIGEST_CHARS = 16


def adapter_import_key(model_id: str, import_id: str, sha256: str) -> str:
    """An imported adapter, converted to the diffusers naming the generator serves: a key per import and per file
    (`sha256` of the file as sent), so two files delivered under one import id (a presigned form POSTed twice)
    never overwrite each other; the one the model does not serve is deleted."""
    return f"models/{model_id}/adapters/{import_id}/{sha256[:IMPORT_DIGEST_CHARS]}/adapter.safetensors"


IMPORT_ID_PREFIX = "imp_"


def is_import_id(adapter_id: str | None) -> bool:
    """Whether an adapter id (`adapterTrainingId`, `AdapterRef.trainingId`) names an import, not a training."""
    return adapter_id is not None and adapter_id.startswith(IMPORT_ID_PREFIX)


def adapter_export_key(adapter_key: str, fmt: AdapterFormat) -> str:
    """The download of `adapter_key` in `fmt`: beside it, made once (the source key's content never changes:
    every training and import writes keys of its own). One export per source, not per metadata: the kohya file's
    `ss_*` names (model name, trigger word) are those of its first download; a rename does not rebuild it (the
    downloaded file's name is the model's current one, given at each download), and one known key per source
    keeps its deletion exact and the grants narrow."""
    if fmt is AdapterFormat.DIFFUSERS:
        return adapter_key
    return f"{adapter_key.removesuffix('.safetensors')}.{fmt.value}.safetensors"


@dataclass(frozen=True)
class JobMarkerRef:
    """A parsed marker key: a job status marker, or (with `epoch`) a training's epoch marker."""

    job_id: str
    marker: Marker | None
    kind: JobKind = JobKind.GENERATION  # generation or training: the two kinds that write markers
    epoch: str | None = None


def parse_notification_key(raw_key: str) -> JobMarkerRef | None:
    """Parse a key as it arrives in an S3 notification (URL-encoded, '+' for space); None if not a marker."""
    key = unquote_plus(raw_key)
    if match := _EPOCH_MARKER.match(key):
        return JobMarkerRef(job_id=match["job_id"], marker=None, kind=JobKind.TRAINING, epoch=match["epoch"])
    for pattern, kind in ((_JOB_MARKER, JobKind.GENERATION), (_TRAINING_MARKER, JobKind.TRAINING)):
        match = pattern.match(key)
        if match:
            try:
                return JobMarkerRef(job_id=match["job_id"], marker=Marker(match["marker"]), kind=kind)
            except ValueError:
                return None
    return None


# --- issue 16: captions ---
CAPTIONS_MARKER_NAME = "captions.json"
_CAPTIONS_MARKER = re.compile(r"^trainings/(?P<job_id>[A-Za-z0-9_-]{1,64})/captions\.json$")
_MODEL_DATA = re.compile(r"^models/(?P<model_id>[^/]+)/data/(?P<data_id>[^/]+)/[^/]+$")


def training_captions_key(training_id: str) -> str:
    """`captions.json`: the captions a training's captioning model gave its images (no status of its own)."""
    return f"{training_prefix(training_id)}{CAPTIONS_MARKER_NAME}"


def parse_captions_key(raw_key: str) -> str | None:
    """The training id of a notification key that is a training's captions marker; None if it is not one."""
    match = _CAPTIONS_MARKER.match(unquote_plus(raw_key))
    return match["job_id"] if match else None


def parse_model_data_key(key: str) -> tuple[str, str] | None:
    """(model id, data id) of a normalized training image's key (`model_data_key`); None if it is not one."""
    match = _MODEL_DATA.match(key)
    return (match["model_id"], match["data_id"]) if match else None

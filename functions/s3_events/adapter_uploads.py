"""A presigned LoRA file upload has landed: check its header first (a ranged read, so a big file that is not a
fitting LoRA is refused without reading it whole), then import it into the upload's model, and mark the upload
ready or rejected with the problem. The uploaded object is deleted either way: what is kept is the converted
file under the model. A redelivered notification changes nothing: the upload is no longer pending, or its
model already serves the import (whose id the upload fixes). An unexpected error rejects the upload too (code
`internal`, the traceback only in the log): redelivering a file that broke the import would break it again."""

from __future__ import annotations

import logging

from events.lifecycle import JobError
from events.records.uploads import UploadRecord
from events.states import UploadStatus
from events.storage_keys import UploadRef, upload_adapter_key
from events.usecases.adapter_imports import AdapterFile, import_adapter, import_id_for_upload, importable_model
from events.usecases.errors import UseCaseError
from functions.adapter_files import LoraFiles
from infra.runtime import ServiceContext

log = logging.getLogger(__name__)

# Enough for the length field and a small LoRA's whole header in one read; a bigger header takes a second one.
FIRST_READ_BYTES = 64 * 1024


async def read_range(context: ServiceContext, key: str, length: int) -> tuple[bytes, int] | None:
    """The first `length` bytes of an object and its full size; None if it is gone."""
    return await context.store.get_range(key, 0, length - 1)


# What an upload the import broke on says: the traceback is in the log, not in what the tenant reads.
INTERNAL_ERROR = JobError(
    code="internal", message="the file could not be imported (an internal error, logged); try another file or PUT it"
)

GONE_ERROR = JobError(
    code="upload_missing", message="the uploaded file is gone: request a new upload and send it again"
)


async def _reject(context: ServiceContext, upload: UploadRecord, error: JobError) -> None:
    await context.uploads.settle(upload.uploadId, UploadStatus.REJECTED, {"error": error})


async def _import(context: ServiceContext, upload: UploadRecord, key: str) -> None:
    """Check, import and settle one pending upload whose object is at `key`; refusals settle it rejected."""
    assert upload.modelId is not None  # set on every adapter upload
    files = LoraFiles(context.settings)
    try:
        _model, spec = await importable_model(context, upload.tenantId, upload.modelId)
        first = await read_range(context, key, FIRST_READ_BYTES)
        if first is None:
            # Deleted by a delivery that settled it (then this settle changes nothing: it is conditional on
            # pending) or that failed to settle it: then nothing else would.
            await _reject(context, upload, GONE_ERROR)
            return
        prefix, size = first
        needed = files.header_size(prefix)
        if needed > len(prefix) and size >= needed:
            prefix = (await read_range(context, key, needed) or (prefix, size))[0]
        files.check(prefix[:needed], size, spec)
        data = await context.store.get_bytes(key)
        if data is None:
            await _reject(context, upload, GONE_ERROR)
            return
        model = await import_adapter(
            context,
            files,
            upload.tenantId,
            upload.modelId,
            AdapterFile(data, upload.name),
            import_id=import_id_for_upload(upload.uploadId),
        )
    except UseCaseError as refusal:
        # Nobody waits on this request: the upload is rejected with the refusal's words (a quota's included).
        await _reject(context, upload, JobError(code=refusal.code, message=refusal.message))
        return
    except Exception:
        # Settled rather than raised: a redelivery would meet the same file, fail the same way five times and
        # leave the upload pending. The use case has taken back what it wrote.
        log.exception("adapter upload %s of model %s failed", upload.uploadId, upload.modelId)
        await _reject(context, upload, INTERNAL_ERROR)
        return
    imported = model.importedAdapter
    fields = {"key": model.adapterKey}
    if imported is not None:
        fields |= {"bytes": imported.bytes, "sha256": imported.sha256, "format": imported.format}
    await context.uploads.settle(upload.uploadId, UploadStatus.READY, fields)


async def apply_adapter_upload(context: ServiceContext, ref: UploadRef) -> None:
    """Process one landed LoRA file upload; a duplicate or late notification changes nothing."""
    key = upload_adapter_key(ref.tenant_id, ref.upload_id)
    try:
        upload = await context.uploads.get(ref.upload_id)
        if upload is None or upload.tenantId != ref.tenant_id or upload.modelId is None:
            log.warning("adapter upload %s/%s has no live upload record: deleted", ref.tenant_id, ref.upload_id)
            return
        # Not pending: settled by an earlier delivery, or the form POSTed again late; either way its bytes go.
        if upload.status is UploadStatus.PENDING:
            await _import(context, upload, key)
    finally:
        # The converted file under the model is what is kept; this object goes whatever happened, so nothing
        # is left behind for the tenant to pay for or a redelivery to import.
        await context.store.delete(key)

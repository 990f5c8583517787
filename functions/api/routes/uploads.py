"""Uploads: `POST /v1/uploads` (the headshot API's image upload: an image in, a key out that lasts 24 h),
`POST /v1/uploads/presigned` (files too big for a Lambda body go straight to S3), `GET /v1/uploads/{key}`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.datastructures import UploadFile

from functions.api.dependencies import ContextDep, TenantDep, UploadKeyPath
from functions.api.errors import ApiError
from functions.api.openapi import error_responses
from functions.api.schemas.common import ERROR_RESPONSES
from functions.api.schemas.uploads import PresignedUploadRequest, UploadOut
from functions.api.services import uploads as service

router = APIRouter(prefix="/v1/uploads", tags=["uploads"], responses=ERROR_RESPONSES)

FILE_FIELDS = ("file", "image", "style")

_IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
            },
            **{
                media: {"schema": {"type": "string", "format": "binary"}}
                for media in ("image/webp", "image/png", "image/jpeg", "application/octet-stream")
            },
        },
    }
}


async def _image_from(request: Request) -> tuple[bytes, str | None]:
    """The image of a multipart form (`file`, `image` or `style`) or of a raw body."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=10)
        for name in FILE_FIELDS:
            value = form.get(name)
            if isinstance(value, UploadFile):
                return await value.read(), value.filename
        raise ApiError(422, "validation_error", "send the image as the form's `file` field", field="file")
    return await request.body(), request.headers.get("x-file-name")


@router.post(
    "",
    status_code=201,
    response_model=UploadOut,
    response_model_exclude_none=True,
    openapi_extra=_IMAGE_BODY,
    responses=error_responses(413, 415),
)
async def upload_image(request: Request, tenant: TenantDep, context: ContextDep) -> UploadOut:
    """Upload an image (webp, png, jpeg; 10 MB max); its `key` works in other requests for 24 hours."""
    data, name = await _image_from(request)
    upload = await service.upload_image(context, tenant, data, name)
    return await service.render_upload(context, upload)


@router.post("/presigned", status_code=201, response_model=UploadOut, response_model_exclude_none=True)
async def presign_upload(
    tenant: TenantDep, context: ContextDep, body: PresignedUploadRequest | None = None
) -> UploadOut:
    """A URL to POST a big image to directly; poll the key until it reads `ready` or `rejected`."""
    upload, post = await service.presign_upload(context, tenant, body.name if body else None)
    return await service.render_upload(context, upload, post)


@router.get("/{key}", response_model=UploadOut, response_model_exclude_none=True)
async def get_upload(key: UploadKeyPath, tenant: TenantDep, context: ContextDep) -> UploadOut:
    """An upload's status, and its image's URL once ready."""
    upload = await context.uploads.get_for_tenant(tenant, key)
    if upload is None:
        raise ApiError(404, "upload_not_found", f"upload {key!r} does not exist or has expired", field="key")
    return await service.render_upload(context, upload)

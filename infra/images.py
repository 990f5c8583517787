"""Validating and normalizing uploaded images before anything is stored.

The format is sniffed from the bytes (the declared content type is ignored), the pixel count is checked
from the header before the pixels are decoded (decompression bombs), and a truncated or corrupt file is
refused because it is fully decoded once. What is stored is a plain RGB PNG, EXIF orientation applied.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PIL import Image, ImageOps

if TYPE_CHECKING:
    from infra.settings import Settings

ACCEPTED_FORMATS = ("webp", "png", "jpeg")
MIN_SIDE = 32

_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
)


class ImageRejected(ValueError):
    """Why an upload is not a usable image; `status` is the HTTP status that says so."""

    def __init__(self, message: str, code: str, status: int = 422) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass(frozen=True)
class NormalizedImage:
    """An accepted image, as stored."""

    png: bytes
    width: int
    height: int
    source_format: str
    source_bytes: int
    sha256: str


def sniff_format(data: bytes) -> str | None:
    """The image format the bytes start with (webp, png, jpeg), or None."""
    for signature, name in _SIGNATURES:
        if data.startswith(signature):
            return name
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def _flatten(image: Image.Image) -> Image.Image:
    """RGB on white: transparency becomes the white a user sees behind it."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def normalize_image(data: bytes, *, max_bytes: int, max_pixels: int, max_side: int) -> NormalizedImage:
    """Check an uploaded image and return it as a normalized PNG; raises ImageRejected with the reason."""
    if not data:
        raise ImageRejected("the request body is empty; send the image's bytes as the body", "empty_body", 400)
    if len(data) > max_bytes:
        raise ImageRejected(f"image is {len(data)} bytes; the limit is {max_bytes}", "payload_too_large", 413)
    detected = sniff_format(data)
    if detected is None:
        hint = " (send the raw image bytes, not a multipart form)" if data[:2] == b"--" else ""
        raise ImageRejected(f"not a supported image{hint}: send webp, png or jpeg", "unsupported_image_format", 415)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[detected.upper()])
            width, height = image.size
            if width * height > max_pixels:
                raise ImageRejected(
                    f"image is {width}x{height} pixels; the limit is {max_pixels} pixels", "image_too_large", 422
                )
            if min(width, height) < MIN_SIDE:
                raise ImageRejected(
                    f"image is {width}x{height}; each side must be at least {MIN_SIDE} pixels", "image_too_small"
                )
            image.load()
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(f"image refused as a decompression bomb: {exc}", "image_too_large") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected(f"image is truncated or corrupt: {exc}", "corrupt_image") from exc
    image = _flatten(ImageOps.exif_transpose(image))
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False)
    png = out.getvalue()
    return NormalizedImage(
        png=png,
        width=image.width,
        height=image.height,
        source_format=detected,
        source_bytes=len(data),
        sha256=hashlib.sha256(png).hexdigest(),
    )


def data_url(png: bytes) -> str:
    """A `data:` URL of PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _derived(source: NormalizedImage, picture: Image.Image) -> NormalizedImage:
    """`picture` as the normalized image it was made from, keeping where that came from."""
    png = _png(picture)
    return NormalizedImage(
        png=png,
        width=picture.width,
        height=picture.height,
        source_format=source.source_format,
        source_bytes=source.source_bytes,
        sha256=hashlib.sha256(png).hexdigest(),
    )


def pad_to_square(image: NormalizedImage, size: int) -> NormalizedImage:
    """The image fitted inside a `size`-pixel square on white, centred (the headshot API: square 640x640, padded
    with white when not square, so nothing of the subject is cropped away)."""
    with Image.open(io.BytesIO(image.png)) as source:
        picture = source.convert("RGB")
    # Longer side to exactly `size` (down or up), the shorter one padded.
    scale = size / max(picture.size)
    picture = picture.resize(
        (max(1, round(picture.width * scale)), max(1, round(picture.height * scale))), Image.Resampling.LANCZOS
    )
    canvas = Image.new("RGB", (size, size), (255, 255, 255))
    canvas.paste(picture, ((size - picture.width) // 2, (size - picture.height) // 2))
    return _derived(image, canvas)


def fit_for_generation(image: NormalizedImage, *, max_side: int, min_side: int, multiple: int) -> NormalizedImage:
    """The image at a size a diffusion model can take: longer side at most `max_side`, both sides a multiple
    of `multiple` (at most `multiple - 1` pixels trimmed by resizing), aspect ratio otherwise kept."""
    scale = min(1.0, max_side / max(image.width, image.height))
    width = int(image.width * scale) // multiple * multiple
    height = int(image.height * scale) // multiple * multiple
    if min(width, height) < min_side:
        raise ImageRejected(
            f"image is {image.width}x{image.height}; fitted to this model it would be {width}x{height}, and each "
            f"side must be at least {min_side} pixels",
            "image_too_small",
        )
    if (width, height) == (image.width, image.height):
        return image
    with Image.open(io.BytesIO(image.png)) as source:
        return _derived(image, source.convert("RGB").resize((width, height), Image.Resampling.LANCZOS))


def binary_mask(mask: NormalizedImage, size: tuple[int, int]) -> bytes:
    """A mask as a black-and-white PNG of `size` (white = repaint: grey 128 and lighter), resized without
    inventing grey; ImageRejected if nothing is white."""
    with Image.open(io.BytesIO(mask.png)) as source:
        binary = source.convert("L").point(lambda v: 255 if v >= 128 else 0)
    if binary.size != size:
        binary = binary.resize(size, Image.Resampling.NEAREST)
    if binary.getextrema()[1] == 0:
        raise ImageRejected("the mask is all black: paint white where the image should change", "empty_mask")
    return _png(binary)


async def normalize_upload(settings: Settings, data: bytes, max_bytes: int) -> NormalizedImage:
    """Validate and normalize uploaded training-image bytes with the configured limits, off the event loop;
    raises ImageRejected with the reason."""
    return await asyncio.to_thread(
        normalize_image,
        data,
        max_bytes=max_bytes,
        max_pixels=settings.max_image_pixels,
        max_side=settings.training_image_max_side,
    )

"""Fetching model weights from S3 into the local model cache: one object, or every object under a prefix.

Base-model files run to gigabytes, so an object is never read into memory: boto3's managed transfer streams it to
disk in parallel ranged parts, into a `.part` file that is renamed only once complete (a crash leaves no file that
looks whole). A sha256, when the operator gave one, is checked by streaming the finished file in chunks.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError

from infra.aws import client_kwargs
from infra.settings import Settings
from workers.job_errors import BaseModelUnavailable

log = logging.getLogger(__name__)

MiB = 1024 * 1024
# Parts of 64 MiB, eight at a time: a multi-gigabyte checkpoint arrives at the link's speed, not one stream's.
DEFAULT_TRANSFER = TransferConfig(multipart_threshold=64 * MiB, multipart_chunksize=64 * MiB, max_concurrency=8)
_HASH_CHUNK = 8 * MiB
# The file a finished prefix download leaves, so a later call knows the folder is whole without listing it again.
COMPLETE_MARKER = ".download-complete"


def split_s3_uri(uri: str) -> tuple[str, str]:
    """The bucket and key (or prefix) of an `s3://bucket/key` address."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise BaseModelUnavailable(f"not an s3:// address: {uri!r}")
    key = parsed.path.lstrip("/")
    # The key becomes a path in the model cache: no segment may climb out of it.
    if any(segment in ("..", ".") for segment in key.split("/")):
        raise BaseModelUnavailable(f"{uri!r} has a '.' or '..' segment; give the object's plain key")
    return parsed.netloc, key


def s3_client(settings: Settings) -> Any:
    """A synchronous S3 client for managed transfers (the workers' async clients cannot drive boto3's transfer)."""
    return boto3.session.Session().client("s3", **client_kwargs(settings, "s3"))


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch_object(
    s3: Any, bucket: str, key: str, destination: Path, sha256: str | None, transfer: TransferConfig
) -> Path:
    destination.parent.mkdir(parents=True, exist_ok=True)
    # A partial file of its own: two workers sharing the cache may fetch the same object at once; the last rename
    # wins and both have a whole, checked file.
    handle, name = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".part")
    os.close(handle)
    partial = Path(name)
    try:
        s3.download_file(bucket, key, str(partial), Config=transfer)
    except (ClientError, BotoCoreError) as exc:
        partial.unlink(missing_ok=True)
        raise BaseModelUnavailable(f"s3://{bucket}/{key} could not be downloaded: {exc}") from exc
    if sha256 is not None:
        got = file_sha256(partial)
        if got != sha256.lower():
            partial.unlink(missing_ok=True)
            raise BaseModelUnavailable(f"s3://{bucket}/{key}: sha256 mismatch, expected {sha256.lower()}, got {got}")
    partial.replace(destination)
    return destination


def download_file(
    settings: Settings,
    uri: str,
    destination: Path,
    sha256: str | None = None,
    transfer: TransferConfig = DEFAULT_TRANSFER,
) -> Path:
    """Download one S3 object to `destination` (streamed, in parallel parts) and return the path. An existing
    file is kept (checked against `sha256` when one is given; a mismatch fetches it again). A sha256 mismatch
    deletes the download and raises `BaseModelUnavailable` with the expected and actual digests."""
    if destination.exists():
        if sha256 is None or file_sha256(destination) == sha256.lower():
            return destination
        log.warning("cached %s does not match its sha256: downloading it again", destination)
        destination.unlink()
    bucket, key = split_s3_uri(uri)
    return _fetch_object(s3_client(settings), bucket, key, destination, sha256, transfer)


def cache_path(cache_dir: Path, uri: str) -> Path:
    """Where an s3:// object or prefix is kept in the model cache: `cache_dir/s3/<bucket>/<key>`."""
    bucket, prefix = split_s3_uri(uri)
    return cache_dir / "s3" / bucket / prefix.rstrip("/")


def download_prefix(settings: Settings, uri: str, cache_dir: Path, transfer: TransferConfig = DEFAULT_TRANSFER) -> Path:
    """Download every object under an s3:// prefix into `cache_dir/s3/<bucket>/<prefix>/` (keys' relative paths
    kept) and return that folder. Done once: a finished folder is marked and reused. No objects there raises
    `BaseModelUnavailable`."""
    bucket, prefix = split_s3_uri(uri)
    prefix = prefix.rstrip("/") + "/"
    target = cache_path(cache_dir, uri)
    # A diffusers folder fetched before the marker existed (its model_index.json came with it) is complete too.
    if (target / COMPLETE_MARKER).exists() or (target / "model_index.json").exists():
        return target
    s3 = s3_client(settings)
    found = 0
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                relative = obj["Key"][len(prefix) :]
                if not relative or relative.endswith("/"):
                    continue  # a folder placeholder
                destination = target / relative
                if not destination.resolve().is_relative_to(target.resolve()):
                    raise BaseModelUnavailable(f"s3://{bucket}/{obj['Key']} would land outside {target}")
                _fetch_object(s3, bucket, obj["Key"], destination, None, transfer)
                found += 1
    except (ClientError, BotoCoreError) as exc:
        raise BaseModelUnavailable(f"{uri} could not be listed: {exc}") from exc
    if not found:
        raise BaseModelUnavailable(f"no objects under {uri}")
    (target / COMPLETE_MARKER).touch()
    return target

"""One loader for every base model source: built-in, a local folder, an s3:// prefix on the moto server."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from PIL import Image

from events.generation import GenerationRequestedData
from infra.base_models import base_model_registry
from workers.base_models.loader import BaseModelUnavailable, load_pipeline
from workers.base_models.tiny_sd import ensure_tiny_sd
from workers.generator.pipelines import PipelineCache, generate


def _pixels(encoded: bytes) -> bytes:
    """An image file's RGB pixels (files of two base models differ in their embedded parameters alone)."""
    with Image.open(io.BytesIO(encoded)) as decoded:
        return decoded.convert("RGB").tobytes()


def _no_adapters(key: str) -> bytes:
    raise AssertionError(f"a base-model request read adapter {key}")


pytestmark = pytest.mark.integration


def _request(base_model: str) -> GenerationRequestedData:
    return GenerationRequestedData(
        jobId="job_loader",
        modelId=base_model,
        baseModel=base_model,
        prompt="a fox",
        width=64,
        height=64,
        guidanceScale=7.5,
        numOutputs=1,
        numInferenceSteps=2,
        seed=9,
    )


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_tiny_sd(tmp_path_factory.mktemp("weights"))


async def test_local_folder_and_s3_prefix_give_the_builtin_models_images(bootstrapped, context, tiny_folder) -> None:
    prefix = "base-models/tiny-copy"
    for path in sorted(tiny_folder.rglob("*")):
        if path.is_file():
            key = f"{prefix}/{path.relative_to(tiny_folder).as_posix()}"
            await context.store.put_bytes(key, path.read_bytes(), "application/octet-stream")
    settings = bootstrapped.model_copy(
        update={
            "base_models": {"local-sd": str(tiny_folder), "remote-sd": f"s3://{bootstrapped.bucket}/{prefix}"},
            "model_cache_dir": tiny_folder.parent / "cache",
        }
    )
    cache = PipelineCache(settings)
    images = {}
    for name in ("tiny-sd", "local-sd", "remote-sd"):
        images[name] = _pixels((await asyncio.to_thread(generate, cache, _request(name), _no_adapters)).images[0])
    # Same weights, same seed, same prompt: the same pixels whichever way they were loaded (the files differ in
    # their embedded parameters alone: each names its base model).
    assert images["tiny-sd"] == images["local-sd"] == images["remote-sd"]
    assert (settings.model_cache_dir / "s3" / bootstrapped.bucket / prefix / "model_index.json").exists()


async def test_missing_weights_are_reported_clearly(bootstrapped, tmp_path: Path) -> None:
    settings = bootstrapped.model_copy(
        update={
            "base_models": {"nowhere": str(tmp_path / "nope"), "empty-s3": f"s3://{bootstrapped.bucket}/none/"},
            "model_cache_dir": tmp_path / "cache",
        }
    )
    registry = base_model_registry(settings)
    with pytest.raises(BaseModelUnavailable, match="no diffusers model"):
        await asyncio.to_thread(load_pipeline, registry["nowhere"], settings)
    with pytest.raises(BaseModelUnavailable, match="no objects under"):
        await asyncio.to_thread(load_pipeline, registry["empty-s3"], settings)


def _counting_client(calls: list[str]):
    """An S3 client that records the Range header of every GetObject it sends."""
    from workers.base_models import download

    def client(settings):
        s3 = real_client(settings)
        s3.meta.events.register(
            "before-call.s3.GetObject", lambda params, **_: calls.append(params["headers"].get("Range", "whole"))
        )
        return s3

    real_client = download.s3_client
    return client


async def test_a_multipart_download_arrives_whole_and_a_wrong_sha256_leaves_nothing(
    bootstrapped, context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib
    import os

    from boto3.s3.transfer import TransferConfig

    from workers.base_models import download

    payload = os.urandom(3 * 1024 * 1024 + 123)
    key = "base-models/one-file/model.safetensors"
    await context.store.put_bytes(key, payload, "application/octet-stream")
    uri = f"s3://{bootstrapped.bucket}/{key}"
    ranges: list[str] = []
    monkeypatch.setattr(download, "s3_client", _counting_client(ranges))
    small_parts = TransferConfig(multipart_threshold=256 * 1024, multipart_chunksize=256 * 1024, max_concurrency=4)

    destination = tmp_path / "models" / "model.safetensors"
    digest = hashlib.sha256(payload).hexdigest()
    got = await asyncio.to_thread(download.download_file, bootstrapped, uri, destination, digest, small_parts)
    assert got == destination and destination.read_bytes() == payload
    assert len(ranges) == 13 and all(r.startswith("bytes=") for r in ranges)  # ceil(3 MiB + 123 / 256 KiB) parts
    assert not list(destination.parent.glob("*.part"))

    wrong = tmp_path / "wrong" / "model.safetensors"
    with pytest.raises(BaseModelUnavailable, match=f"expected {'0' * 64}, got {digest}"):
        await asyncio.to_thread(download.download_file, bootstrapped, uri, wrong, "0" * 64, small_parts)
    assert list(wrong.parent.iterdir()) == []


def _configuration_files(folder: Path) -> dict[str, bytes]:
    """A diffusers folder's configs, tokenizer and scheduler by relative path: everything but the weights."""
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.suffix != ".safetensors"
    }


async def test_a_single_file_and_its_configuration_on_s3_load_as_the_folder_does(
    bootstrapped, context, tiny_folder: Path, tmp_path: Path
) -> None:
    import hashlib

    from diffusers import StableDiffusionPipeline

    from infra.settings import BaseModelSource
    from tests.model.conftest import load_folder
    from tests.single_file_export import save_sd_single_file

    checkpoint = save_sd_single_file(load_folder(StableDiffusionPipeline, tiny_folder), tmp_path / "sd.safetensors")
    await context.store.put_bytes("base-models/civitai/sd.safetensors", checkpoint.read_bytes(), "application/x-binary")
    for relative, data in _configuration_files(tiny_folder).items():
        await context.store.put_bytes(f"base-models/sd-config/{relative}", data, "application/octet-stream")
    bucket = bootstrapped.bucket
    entry = BaseModelSource(
        source=f"s3://{bucket}/base-models/civitai/sd.safetensors",
        family="sd-1_5",
        config=f"s3://{bucket}/base-models/sd-config",
        sha256=hashlib.sha256(checkpoint.read_bytes()).hexdigest(),
    )
    settings = bootstrapped.model_copy(update={"base_models": {"civitai-sd": entry}, "model_cache_dir": tmp_path})
    cache = PipelineCache(settings)
    single, folder = [
        _pixels((await asyncio.to_thread(generate, cache, _request(name), _no_adapters)).images[0])
        for name in ("civitai-sd", "tiny-sd")
    ]
    assert single == folder
    assert (
        tmp_path / "s3" / bucket / "base-models" / "civitai" / "sd.safetensors"
    ).read_bytes() == checkpoint.read_bytes()

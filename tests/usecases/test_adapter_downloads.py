"""A kohya download on the fakes, with the real torch-free conversion: made once beside the stored file, refused
(409, naming the diffusers form) for a stored adapter too big to convert in the API's memory."""

from __future__ import annotations

import pytest

from events.storage_keys import AdapterFormat, adapter_export_key
from events.usecases.adapter_imports import AdapterFile, import_adapter
from functions.adapter_files import LoraFiles
from functions.api.errors import ApiError
from functions.api.services import adapter_downloads as downloads
from infra.base_models import TINY_SD
from infra.lora_files.manifests import manifest_for
from tests.fakes import FakeBackends
from tests.unit.test_lora_files_naming import diffusers_file
from tests.usecases.builders import TENANT, new_model


async def _imported_source(backends: FakeBackends) -> downloads.AdapterSource:
    await new_model(backends)
    data = diffusers_file(manifest_for(TINY_SD), count=2, rank=4)
    model = await import_adapter(backends, LoraFiles(backends.settings), TENANT, "mdl_1", AdapterFile(data))
    return await downloads.model_source(backends, model, None)


async def test_a_kohya_download_is_converted_once_and_stored_beside_the_adapter(backends: FakeBackends) -> None:
    source = await _imported_source(backends)
    export = adapter_export_key(source.key, AdapterFormat.KOHYA)
    first = await downloads.download(backends, source, AdapterFormat.KOHYA)
    assert export in backends.store.objects and first.bytes == len(backends.store.objects[export])
    backends.store.objects[export] = b"kept"  # a second download serves the stored export, converting nothing
    assert (await downloads.download(backends, source, AdapterFormat.KOHYA)).bytes == len(b"kept")


async def test_an_adapter_over_the_conversion_limit_is_409_pointing_at_the_diffusers_file(
    backends: FakeBackends,
) -> None:
    source = await _imported_source(backends)
    stored = len(backends.store.objects[source.key])
    backends.settings.max_adapter_export_convert_bytes = stored - 1
    with pytest.raises(ApiError) as caught:
        await downloads.download(backends, source, AdapterFormat.KOHYA)
    assert caught.value.status == 409 and caught.value.code == "adapter_export_unavailable"
    assert "format=diffusers" in caught.value.message and str(stored) in caught.value.message
    assert adapter_export_key(source.key, AdapterFormat.KOHYA) not in backends.store.objects
    # The stored file itself still downloads, and at the limit the conversion runs.
    assert (await downloads.download(backends, source, AdapterFormat.DIFFUSERS)).bytes == stored
    backends.settings.max_adapter_export_convert_bytes = stored
    assert (await downloads.download(backends, source, AdapterFormat.KOHYA)).bytes > 0

"""Generating with a trained model: seed 002's `modelId` names the model, the worker applies its adapter."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import REGISTRY

from tests.journeys import create_model, download
from tests.support import bearer, wait_for_job

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("worker", "trainer")]


def _adapter_cache_hits() -> float:
    return REGISTRY.get_sample_value("lorafoundry_adapter_cache_total", {"result": "hit"}) or 0.0


async def _generate(client: httpx.AsyncClient, key: str, model_id: str) -> dict:
    response = await client.post(
        "/v1/images/generate",
        json={"modelId": model_id, "prompt": "a photo of lfzq", "width": 64, "height": 64, "seed": 5},
        headers=bearer(key),
    )
    assert response.status_code == 202, response.text
    view = await wait_for_job(client, response.json()["jobId"], bearer(key))
    assert view["status"] == "completed", view
    return view


async def test_a_trained_model_generates_with_its_adapter(client, api_key, trained_pair) -> None:
    untrained_id = (await create_model(client, api_key, name="adapter model"))["id"]
    untrained = await client.post(
        "/v1/images/generate", json={"modelId": untrained_id, "prompt": "p"}, headers=bearer(api_key)
    )
    assert untrained.status_code == 409 and untrained.json()["error"]["code"] == "model_not_trained"

    # The session's model trained on reds (tests/integration/conftest.py): its training costs this test nothing.
    reds, _ = trained_pair
    model_id, training_id = reds.model_id, reds.training_id
    tuned = await _generate(client, api_key, model_id)
    assert tuned["modelId"] == model_id
    assert tuned["adapters"] == [{"modelId": model_id, "trainingId": training_id, "scale": 1.0}]
    assert "adapterLoadMs" in tuned["timings"] and "adapterSwitchMs" in tuned["timings"]
    base = await _generate(client, api_key, "tiny-sd")
    assert base["adapters"] == []
    hits = _adapter_cache_hits()
    again = await _generate(client, api_key, model_id)
    tuned_bytes = await download(tuned["images"][0]["url"])
    assert tuned_bytes == await download(again["images"][0]["url"]), "same inputs must give the same bytes"
    assert tuned_bytes != await download(base["images"][0]["url"]), "the adapter changed nothing"
    # The second request found the adapter loaded: nothing read or injected again (the session's worker runs in this
    # process, so its counters are this registry's; the first request may have found it loaded too, as the session's
    # other tests of this model load it).
    # (Its adapterLoadMs is no proof: when both requests are hits, both are a few hundredths of a millisecond apart.)
    assert _adapter_cache_hits() == hits + 1

    # Seed 003 epoch selection: the model now generates from the first epoch's checkpoint (and, for the session's
    # other tests of this model, from its final adapter again afterwards).
    chosen = await client.put(f"/v1/models/{model_id}", json={"epoch": "000001"}, headers=bearer(api_key))
    assert chosen.status_code == 200, chosen.text
    try:
        early = await _generate(client, api_key, model_id)
        assert early["adapters"][0]["epoch"] == "000001"
        assert await download(early["images"][0]["url"]) != tuned_bytes
    finally:
        reset = await client.put(f"/v1/models/{model_id}", json={"epoch": None}, headers=bearer(api_key))
        assert reset.status_code == 200, reset.text


async def test_another_tenants_model_is_not_found(client, api_key, other_api_key) -> None:
    model_id = (await create_model(client, api_key, name="private"))["id"]
    response = await client.post(
        "/v1/images/generate", json={"modelId": model_id, "prompt": "p"}, headers=bearer(other_api_key)
    )
    assert response.status_code == 404 and response.json()["error"]["field"] == "modelId"

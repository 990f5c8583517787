"""Two real tenants, made through the operator API, on every route of the app: tenant B gets 404 for each of tenant
A's ids, on reads and on every change, and A's resources are untouched afterwards; B's lists name none of A's ids.

The routes are read from the app itself, so a route added later with a path parameter and no case here fails
`test_every_route_with_an_id_has_a_case` by its name: give it a case in MUTATION_BODIES (when it needs a body to
pass validation) or in the parameters A's ids fill (PARAMETER_IDS)."""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from pydantic import SecretStr

from events.records.jobs import PortraitJob
from events.states import PortraitStatus
from functions.api.app import create_app
from infra.settings import Settings
from tests.journeys import png
from tests.support import bearer, eventually, wait_for_job

pytestmark = pytest.mark.integration

TENANT_A = "tenant-a"  # the tenant of the session's trained models (tests/integration/conftest.py::trained_pair)
OPERATOR_TOKEN = f"lfa_test_{secrets.token_hex(16)}"


@dataclass(frozen=True)
class Caller:
    """A tenant's key and secret, from the operator API; its calls use Basic key:secret, which also proves the
    secret where a call asks for it (DELETE /v1/models/{id}), so every refusal below is about ownership."""

    tenant: str
    key: str
    secret: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{self.key}:{self.secret}".encode()).decode()}


@dataclass(frozen=True)
class OwnedIds:
    """One id of A's of each kind the API has ids for."""

    model: str
    training: str
    data: str
    upload: str
    adapter_upload: str
    generation: str
    prediction: str
    portrait: str


# Which of A's ids fills each path parameter of the app's routes.
PARAMETER_IDS: dict[str, Callable[[OwnedIds], str]] = {
    "modelId": lambda ids: ids.model,
    "trainingId": lambda ids: ids.training,
    "dataId": lambda ids: ids.data,
    "key": lambda ids: ids.upload,
    "uploadId": lambda ids: ids.adapter_upload,
    "jobId": lambda ids: ids.generation,
    "predictionId": lambda ids: ids.prediction,
    "portraitId": lambda ids: ids.portrait,
    # No delivery of A's needs to exist: the route looks up the job first, and B must meet A's job as absent.
    "deliveryId": lambda ids: f"{ids.generation}-job-succeeded-1",
}

# What a change sends so that it passes validation and reaches the ownership check (the others send nothing).
MUTATION_BODIES: dict[tuple[str, str], Callable[[], dict[str, Any]]] = {
    ("PUT", "/v1/models/{modelId}"): lambda: {"json": {"name": "taken over"}},
    ("PATCH", "/v1/models/{modelId}"): lambda: {"json": {"updatedDisplayName": "taken over"}},
    ("POST", "/v1/models/{modelId}/train"): lambda: {"files": {"images": ("a.png", png((1, 2, 3)), "image/png")}},
    ("PUT", "/v1/models/{modelId}/adapter"): lambda: {
        "content": b"not a lora file",
        "headers": {"Content-Type": "application/octet-stream"},
    },
    ("POST", "/v1/models/{modelId}/training-data"): lambda: {
        "content": png((1, 2, 3)),
        "headers": {"Content-Type": "application/octet-stream"},
    },
    ("PUT", "/v1/models/{modelId}/training-data/{dataId}"): lambda: {
        "content": png((1, 2, 3)),
        "headers": {"Content-Type": "application/octet-stream"},
    },
    ("PATCH", "/v1/models/{modelId}/training-data/{dataId}"): lambda: {"json": {"description": "taken over"}},
    ("POST", "/v1/models/{modelId}/trainings"): lambda: {"json": {"trainingSpeed": "fast"}},
}

# What a list asks for in its query, where it needs something.
LIST_QUERIES: dict[str, dict[str, str]] = {"/v1/styles": {"gender": "woman"}}


def _api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):  # an included router (FastAPI keeps it whole)
            yield from _api_routes(route.original_router.routes)


def tenant_operations(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every tenant route: under /v1, not the operator's /v1/admin."""
    return sorted(
        (method, route.path)
        for route in _api_routes(app.routes)
        if route.path.startswith("/v1/") and not route.path.startswith("/v1/admin")
        for method in route.methods - {"HEAD", "OPTIONS"}
    )


APP_FOR_ROUTES = create_app(Settings(_env_file=None))  # type: ignore[call-arg]
OPERATIONS = tenant_operations(APP_FOR_ROUTES)
WITH_IDS = [op for op in OPERATIONS if "{" in op[1]]
LISTS = [op for op in OPERATIONS if "{" not in op[1] and op[0] == "GET"]


def _params(path: str) -> list[str]:
    return re.findall(r"{(\w+)}", path)


def _fill(path: str, ids: OwnedIds) -> str:
    return re.sub(r"{(\w+)}", lambda m: PARAMETER_IDS[m.group(1)](ids), path)


def test_every_route_with_an_id_has_a_case() -> None:
    missing = sorted({p for _, path in WITH_IDS for p in _params(path)} - set(PARAMETER_IDS))
    assert not missing, f"path parameters with no id of tenant A's to fill them: {missing}"
    unknown = sorted(set(MUTATION_BODIES) - set(OPERATIONS))
    assert not unknown, f"cases for routes the app no longer has: {unknown}"
    assert len(WITH_IDS) >= 25  # the walk found the app's routes


@pytest.fixture(scope="module")
async def operator(bootstrapped) -> AsyncIterator[httpx.AsyncClient]:
    """The app with an operator token, over ASGI: the operator API's client."""
    app = create_app(bootstrapped.model_copy(update={"admin_token": SecretStr(OPERATOR_TOKEN)}))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://admin.test", headers=bearer(OPERATOR_TOKEN)
    ) as client:
        yield client
    if app.state.context is not None:
        await app.state.context.close()


async def _tenant_with_key(operator: httpx.AsyncClient, tenant: str) -> Caller:
    created = await operator.post("/v1/admin/tenants", json={"tenantId": tenant, "displayName": tenant})
    assert created.status_code in (201, 409), created.text  # tenant-a may have a record from another test
    issued = await operator.post("/v1/admin/keys", json={"tenantId": tenant, "label": "isolation"})
    assert issued.status_code == 201, issued.text
    body = issued.json()
    assert (body["tenantId"], body["tenantCreated"]) == (tenant, False)
    return Caller(tenant, body["apiKey"], body["signingSecret"])


@pytest.fixture(scope="module")
async def tenants(operator) -> tuple[Caller, Caller]:
    return await _tenant_with_key(operator, TENANT_A), await _tenant_with_key(operator, f"iso-{secrets.token_hex(3)}")


@pytest.fixture(scope="module")
async def owned(client, context, tenants, trained_pair, worker) -> OwnedIds:
    """One of A's resources of each kind: the session's trained model and its training, and the cheapest ones
    made here (a one-step tiny-sd generation, a one-step prediction, an upload, a portrait's record)."""
    a = tenants[0]
    model = trained_pair[0]
    data = await client.get(f"/v1/models/{model.model_id}/training-data", headers=a.headers)
    assert data.status_code == 200, data.text
    data_id = data.json()[0]["dataId"]
    upload = await client.post(
        "/v1/uploads", content=png((9, 9, 9)), headers={**a.headers, "Content-Type": "image/png"}
    )
    assert upload.status_code in (200, 201), upload.text
    # A presigned LoRA file upload for the model (never sent: the upload record is what is read).
    adapter_upload = await client.post(f"/v1/models/{model.model_id}/adapter/presigned", headers=a.headers)
    assert adapter_upload.status_code == 201, adapter_upload.text
    generation = await client.post(
        "/v1/images/generate",
        json={"modelId": "tiny-sd", "prompt": "a fox", "width": 64, "height": 64, "numInferenceSteps": 1},
        headers=a.headers,
    )
    assert generation.status_code == 202, generation.text
    prediction = await client.post(
        "/v1/predictions",
        json={
            "scaleConfigs": {"1": {"modelId": model.model_id, "trainingId": model.training_id, "scale": 1.0}},
            "prompt": "a fox",
            "image_size": {"width": 512, "height": 512},
            "num_inference_steps": 1,
        },
        headers=a.headers,
    )
    assert prediction.status_code in (200, 201, 202), prediction.text
    portrait = PortraitJob(
        jobId=f"prt_{secrets.token_hex(8)}",
        tenantId=TENANT_A,
        modelId=model.model_id,
        trainingId=model.training_id,
        gender="woman",
        customizations="",
        styles=[],
        status=PortraitStatus.COMPLETED,
    )
    await context.jobs.create(portrait)
    ids = OwnedIds(
        model=model.model_id,
        training=model.training_id,
        data=data_id,
        upload=upload.json()["key"],
        adapter_upload=adapter_upload.json()["uploadId"],
        generation=generation.json()["jobId"],
        prediction=prediction.json()["predictionId"],
        portrait=portrait.jobId,
    )
    await wait_for_job(client, ids.generation, a.headers)

    async def prediction_status() -> str:
        return (await client.get(f"/v1/predictions/{ids.prediction}", headers=a.headers)).json()["status"]

    await eventually(
        prediction_status, lambda s: s in ("succeeded", "failed", "canceled"), what="A's prediction to finish"
    )
    return ids


async def _reads_as_a(client: httpx.AsyncClient, a: Caller, ids: OwnedIds) -> dict[str, int]:
    """The status A gets on every read of one of its ids."""
    return {
        path: (await client.get(_fill(path, ids), headers=a.headers)).status_code
        for method, path in WITH_IDS
        if method == "GET"
    }


async def test_the_other_tenant_meets_every_id_as_absent_and_changes_nothing(client, tenants, owned) -> None:
    a, b = tenants
    before = await _reads_as_a(client, a, owned)
    assert set(before.values()) == {200}, before  # A sees each of its ids: a 404 below is about B
    answers = {}
    for method, path in WITH_IDS:
        kwargs = MUTATION_BODIES.get((method, path), dict)()
        headers = {**kwargs.pop("headers", {}), **b.headers}
        answers[f"{method} {path}"] = (
            await client.request(method, _fill(path, owned), headers=headers, **kwargs)
        ).status_code
    assert {op: status for op, status in answers.items() if status != 404} == {}
    assert await _reads_as_a(client, a, owned) == before  # nothing of A's was changed or removed by B's calls
    model = (await client.get(f"/v1/models/{owned.model}", headers=a.headers)).text
    assert "taken over" not in model


async def test_the_other_tenants_lists_name_none_of_its_ids(client, tenants, owned) -> None:
    a, b = tenants
    a_ids = [v for v in vars(owned).values()]
    for method, path in LISTS:
        as_b = await client.request(method, path, params=LIST_QUERIES.get(path), headers=b.headers)
        assert as_b.status_code == 200, (path, as_b.text)
        assert [i for i in a_ids if i in as_b.text] == [], path
    # The check could fail: A's own lists do name its ids.
    # (The session's tenant-a has many models: read all of its pages.)
    listed, offset = "", 0
    while owned.model not in listed:
        page = (await client.get("/v1/models", params={"limit": 100, "offset": offset}, headers=a.headers)).json()
        assert page["data"], "A's model is in none of A's pages"
        listed, offset = str(page["data"]), offset + len(page["data"])

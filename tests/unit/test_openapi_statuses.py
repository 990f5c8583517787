"""The served OpenAPI document declares every status each operation can answer (issue 12: a fuzzer met 16
undeclared ones). What a route raises is read from its code: the endpoint, its dependencies and every
function of functions.api and events.usecases they call, down to each `ApiError(status, …)` and each
use-case error raised (a `Conflict(…)` counts as the status the API's one table maps it to)."""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from events.usecases.errors import UseCaseError
from functions.api.app import create_app
from functions.api.errors import ApiError, use_case_status
from infra.settings import Settings

# `ApiError(exc.status, …)` re-raises an ImageRejected: an empty body, too big, not an image, or unusable.
IMAGE_REJECTION_STATUSES = {400, 413, 415, 422}

# Where the walk follows calls: the API's own code and the use cases it runs.
FOLLOWED_MODULES = ("functions.api", "events.usecases")

APP = create_app(Settings(_env_file=None))  # type: ignore[call-arg]
SCHEMA = APP.openapi()


def _api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):  # an included router (FastAPI keeps it whole)
            yield from _api_routes(route.original_router.routes)


ROUTES = [r for r in _api_routes(APP.routes) if r.include_in_schema]


def _target(node: ast.expr, namespace: dict[str, Any]) -> Any:
    """What a call's function expression names, where it is a module-level name or a module's attribute."""
    if isinstance(node, ast.Name):
        return namespace.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _target(node.value, namespace)
        if inspect.ismodule(base) or inspect.isclass(base):
            return getattr(base, node.attr, None)
    return None


def raised_statuses(function: Any, seen: set[Any]) -> set[int]:
    """The statuses `function` and the functions.api and events.usecases functions it calls raise."""
    function = inspect.unwrap(function)
    if not inspect.isfunction(function) or function in seen or not function.__module__.startswith(FOLLOWED_MODULES):
        return set()
    seen.add(function)
    statuses: set[int] = set()
    for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(function)))):
        if not isinstance(node, ast.Call):
            continue
        target = _target(node.func, function.__globals__)
        if target is ApiError:
            first = node.args[0] if node.args else None
            statuses |= {first.value} if isinstance(first, ast.Constant) else IMAGE_REJECTION_STATUSES
        elif inspect.isclass(target) and issubclass(target, UseCaseError):
            statuses.add(use_case_status(target))
        elif target is RequestValidationError:
            statuses.add(422)
        else:
            statuses |= raised_statuses(target, seen)
    return statuses


def _calls(dependant: Any) -> Iterator[Any]:
    yield dependant.call
    for sub in dependant.dependencies:
        yield from _calls(sub)


def route_statuses(route: APIRoute) -> set[int]:
    """Every status the route's endpoint and dependencies raise."""
    seen: set[Any] = set()
    return {status for call in _calls(route.dependant) for status in raised_statuses(call, seen)}


def operations() -> Iterator[tuple[APIRoute, str, dict[str, Any]]]:
    for route in ROUTES:
        for method in route.methods:
            yield route, method.lower(), SCHEMA["paths"][route.path_format][method.lower()]


@pytest.mark.parametrize("operation", list(operations()), ids=lambda o: f"{o[1].upper()} {o[0].path}")
def test_every_status_an_operation_can_answer_is_declared(operation) -> None:
    route, method, spec = operation
    declared = {int(status) for status in spec["responses"] if status.isdigit()}
    raised = route_statuses(route)
    assert raised - declared == set(), f"raised by the code, not declared: {sorted(raised - declared)}"
    if route.path.startswith("/v1/"):
        assert {401, 503} <= declared, "every /v1 call checks the API key and reaches the backing services"
    if spec.get("parameters") or spec.get("requestBody"):
        assert 422 in declared
    if "{" in route.path:
        assert 404 in declared
    if method == "post":
        assert {400, 409, 413, 422} <= declared, "the body limit and the Idempotency-Key checks"
    for status in declared - {200, 201, 202, 204}:
        schema = spec["responses"][str(status)]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, status


def test_the_walk_finds_what_routes_raise() -> None:
    # Guards the test itself: known raises deep in the services are found.
    by_name = {(next(iter(r.methods)), r.path): r for r in ROUTES}
    assert {409, 422, 503} <= route_statuses(by_name[("POST", "/v1/models/{modelId}/trainings")])
    assert {404, 413, 415} <= route_statuses(by_name[("POST", "/v1/models/{modelId}/training-data")])
    assert {401, 403} <= route_statuses(by_name[("DELETE", "/v1/models/{modelId}")])
    assert {409, 422, 503} <= route_statuses(by_name[("POST", "/v1/models/{modelId}/train")])
    assert {409} <= route_statuses(by_name[("POST", "/v1/models/{modelId}/trainings/{trainingId}/cancel")])
    assert {409} <= route_statuses(by_name[("POST", "/v1/images/jobs/{jobId}/cancel")])
    assert {400} <= route_statuses(by_name[("GET", "/v1/jobs")])
    # The quota and rate-limit refusals, raised deep in the services.
    assert {429} <= route_statuses(by_name[("POST", "/v1/images/generate")])


def test_the_error_shape_is_a_component() -> None:
    schemas = SCHEMA["components"]["schemas"]
    assert set(schemas["ErrorResponse"]["properties"]) == {"error"}
    assert set(schemas["ErrorDetail"]["properties"]) == {"code", "message", "field"}
    assert "HTTPValidationError" not in schemas, "FastAPI's default 422 body is not what this API sends"

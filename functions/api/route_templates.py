"""Which route a request is: the path template (`/v1/images/jobs/{jobId}`), what metrics and spans are named by.

Never the raw path: raw paths carry ids, and a metric label's values (or a span name's) must stay few.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.routing import Match
from starlette.types import Scope

UNMATCHED = "unmatched"


def matched_template(scope: Scope) -> str | None:
    """The path template of the route the router chose for this request (it leaves it in the scope), or None
    before routing or when none matched."""
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(path) if path else None


def first_matching_template(scope: Scope, routes: Iterable[Any]) -> str:
    """The path template of the first route matching the request (method aside: a 405 names its route too), or
    `unmatched`."""
    partial: str | None = None
    for route in routes:
        match, _ = route.matches(scope)
        path = getattr(route, "path", None)
        if match is Match.FULL and path:
            return str(path)
        if match is Match.PARTIAL and path and partial is None:
            partial = str(path)
    return partial or UNMATCHED


def route_template(scope: Scope) -> str:
    """The request's route template: the one the router chose, or, for a request the inner layers answered
    themselves (an oversized body, an idempotent replay) before it reached the router, the app's first route
    that matches; `unmatched` for none."""
    chosen = matched_template(scope)
    if chosen:
        return chosen
    router = getattr(scope.get("app"), "router", None)
    return first_matching_template(scope, getattr(router, "routes", ()))

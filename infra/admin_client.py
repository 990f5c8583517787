"""The operator commands' client of the operator API (`/v1/admin/…`): `lorafoundry keys|tenants|status`.

Where it points: `--api URL` with the token in LF_ADMIN_TOKEN; otherwise the running embedded stack, found the way
`lorafoundry demo` finds it (its state file holds the API's address and the operator token).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from infra.local.stack import DEFAULT_STATE_FILE, StackInfo


class AdminClientError(Exception):
    """The operator API cannot be reached, or it refused the call; the message says why, for a person."""


@dataclass(frozen=True)
class AdminTarget:
    """An operator API and the token that opens it."""

    api_url: str
    token: str


def add_target_options(parser: argparse.ArgumentParser) -> None:
    """`--api URL` (and the hidden `--state-file`) on a command that talks to the operator API."""
    parser.add_argument(
        "--api", default=None, help="the API's base URL (default: the running embedded stack); token in LF_ADMIN_TOKEN"
    )
    parser.add_argument("--state-file", default=str(DEFAULT_STATE_FILE), help=argparse.SUPPRESS)


def target_of(args: argparse.Namespace) -> AdminTarget:
    """Where the command's calls go: `--api` with LF_ADMIN_TOKEN, else the running embedded stack."""
    if args.api:
        token = os.environ.get("LF_ADMIN_TOKEN", "")
        if not token:
            raise AdminClientError("--api needs the operator token in LF_ADMIN_TOKEN")
        return AdminTarget(args.api.rstrip("/"), token)
    info = StackInfo.load(Path(args.state_file))
    if info is None or not info.admin_token:
        raise AdminClientError(
            "no running embedded stack found (start one with `lorafoundry up`), and no --api URL was given"
        )
    return AdminTarget(info.api_url, info.admin_token)


class AdminClient:
    """Synchronous calls to the operator API; errors become AdminClientError with the API's own message."""

    def __init__(self, target: AdminTarget, transport: httpx.BaseTransport | None = None) -> None:
        self.target = target
        self._client = httpx.Client(
            base_url=target.api_url,
            headers={"Authorization": f"Bearer {target.token}"},
            timeout=30.0,
            transport=transport,
        )

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *_: object) -> None:
        self._client.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One call; the decoded JSON body (None for 204)."""
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise AdminClientError(f"cannot reach the API at {self.target.api_url}: {exc}") from exc
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:200]
            raise AdminClientError(f"{method} {path}: {response.status_code} {message}")
        return None if response.status_code == 204 or not response.content else response.json()

"""`lorafoundry keys …`, `tenants …` and `base-models …`: an operator's commands, calls to the operator API
(`/v1/admin/…`) of the running embedded stack, or of the API `--api URL` names with the token in LF_ADMIN_TOKEN.

The lines `Key id: …`, `API key: …`, `Signing secret: …` are what scripts read; keep them. A key and its secret are
printed only by the two commands that issue one (create, rotate), and never by a listing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from infra.admin_client import AdminClient, AdminClientError, add_target_options, target_of

# The quota names `--quota name=value` takes, and how each value is read (TenantQuotas' members).
QUOTA_TYPES: dict[str, Callable[[str], float | int]] = {
    "activeGenerations": int,
    "activeTrainings": int,
    "requestsPerSecond": float,
    "trainingImagesPerModel": int,
    "storageBytes": int,
}


def parse_quotas(pairs: Sequence[str]) -> dict[str, float | int]:
    """`["activeGenerations=5", …]` as the quotas' JSON; ValueError naming the bad pair."""
    quotas: dict[str, float | int] = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or name not in QUOTA_TYPES:
            raise ValueError(f"--quota {pair!r}: expected NAME=VALUE, NAME one of {', '.join(QUOTA_TYPES)}")
        try:
            quotas[name] = QUOTA_TYPES[name](value)
        except ValueError:
            raise ValueError(f"--quota {pair!r}: {value!r} is not a number of the right kind") from None
    return quotas


def format_table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    """Left-aligned columns as wide as their widest cell."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def _when(epoch: float | None) -> str:
    return "-" if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _issued_lines(key: dict[str, Any]) -> str:
    return f"Key id: {key['keyId']}\nAPI key: {key['apiKey']}\nSigning secret: {key['signingSecret']}"


def _store_warning() -> None:
    print("Store the key and the secret now: neither is shown again.", file=sys.stderr)


def _run(args: argparse.Namespace, work: Callable[[AdminClient], None]) -> int:
    """Run one command's calls; an error is one line on stderr and exit status 1."""
    try:
        with AdminClient(target_of(args)) as client:
            work(client)
    except AdminClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    """Issue a key (creating the tenant if it is new) and print it, and its secret, once."""

    def work(client: AdminClient) -> None:
        body: dict[str, Any] = {"tenantId": args.tenant}
        if args.label:
            body["label"] = args.label
        key = client.call("POST", "/v1/admin/keys", json=body)
        print(_issued_lines(key))
        if key.get("tenantCreated"):
            print(f"Created tenant {key['tenantId']} (default quotas).", file=sys.stderr)
        _store_warning()

    return _run(args, work)


def key_rows(keys: Sequence[dict[str, Any]]) -> list[list[str]]:
    """A listing's rows: never a key's value or secret (the API does not return them)."""
    return [
        [
            k["keyId"],
            k["tenantId"],
            k["status"],
            k["label"],
            k["createdAt"],
            _when(k.get("expiresAt")),
            k.get("rotatedTo") or "-",
        ]
        for k in keys
    ]


KEY_HEADERS = ("KEY ID", "TENANT", "STATUS", "LABEL", "CREATED", "EXPIRES", "ROTATED TO")


def cmd_keys_list(args: argparse.Namespace) -> int:
    """A table of keys, all or one tenant's."""

    def work(client: AdminClient) -> None:
        keys = client.call("GET", "/v1/admin/keys", params={"tenant": args.tenant} if args.tenant else None)
        print(format_table(key_rows(keys), KEY_HEADERS) if keys else "No keys.")

    return _run(args, work)


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    """Revoke a key by its id."""

    def work(client: AdminClient) -> None:
        client.call("POST", f"/v1/admin/keys/{args.key_id}/revoke")
        print(f"Revoked: {args.key_id}")

    return _run(args, work)


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    """Issue a key replacing KEY_ID and print it once, and when the old one stops working."""

    def work(client: AdminClient) -> None:
        key = client.call("POST", f"/v1/admin/keys/{args.key_id}/rotate", json={"graceSeconds": args.grace})
        print(_issued_lines(key))
        stops = "now" if args.grace == 0 else f"at {_when(key['previousExpiresAt'])}"
        print(f"Old key {key['previousKeyId']} stops working {stops}.")
        _store_warning()

    return _run(args, work)


TENANT_HEADERS = ("TENANT", "STATUS", "DISPLAY NAME", "STORED BYTES", "CREATED")


def cmd_tenants_create(args: argparse.Namespace) -> int:
    """Create a tenant, optionally with its own quotas."""
    try:
        quotas = parse_quotas(args.quota or [])
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    def work(client: AdminClient) -> None:
        body: dict[str, Any] = {"tenantId": args.name}
        if args.display_name:
            body["displayName"] = args.display_name
        if quotas:
            body["quotas"] = quotas
        tenant = client.call("POST", "/v1/admin/tenants", json=body)
        print(f"Created tenant {tenant['tenantId']}")

    return _run(args, work)


def cmd_tenants_list(args: argparse.Namespace) -> int:
    """A table of tenants."""

    def work(client: AdminClient) -> None:
        tenants = client.call("GET", "/v1/admin/tenants")
        rows = [
            [t["tenantId"], t["status"], t.get("displayName") or "-", str(t["storageBytes"]), t["createdAt"]]
            for t in tenants
        ]
        print(format_table(rows, TENANT_HEADERS) if rows else "No tenants.")

    return _run(args, work)


def tenant_report(tenant: dict[str, Any]) -> str:
    """`tenants show`: the tenant, its limits (own overrides marked), its usage and its keys."""
    own = tenant.get("quotas") or {}
    lines = [
        f"Tenant: {tenant['tenantId']}",
        f"Status: {tenant['status']}",
        f"Display name: {tenant.get('displayName') or '-'}",
        f"Created: {tenant['createdAt']}",
        "Quotas (0 = no limit; * = this tenant's own):",
    ]
    for name, value in tenant["effectiveQuotas"].items():
        lines.append(f"  {name}: {value}{' *' if name in own else ''}")
    lines.append(f"Stored bytes: {tenant['usage']['storageBytes']}")
    keys = tenant.get("keys") or []
    lines.append(f"Keys: {len(keys)}")
    if keys:
        lines.append(format_table(key_rows(keys), KEY_HEADERS))
    return "\n".join(lines)


def cmd_tenants_show(args: argparse.Namespace) -> int:
    """One tenant in full."""

    def work(client: AdminClient) -> None:
        print(tenant_report(client.call("GET", f"/v1/admin/tenants/{args.name}")))

    return _run(args, work)


# --- issue 16: run-time base models ---
BASE_MODEL_HEADERS = ("NAME", "FAMILY", "SOURCE", "CONFIG", "SHA256", "UPDATED")


def cmd_base_models_add(args: argparse.Namespace) -> int:
    """Register a base model (or replace its entry): offered by every API process and worker within seconds."""

    def work(client: AdminClient) -> None:
        body: dict[str, Any] = {"source": args.source}
        for member, value in (("family", args.family), ("config", args.config), ("sha256", args.sha256)):
            if value is not None:
                body[member] = value
        entry = client.call("PUT", f"/v1/admin/base-models/{args.name}", json=body)
        print(f"Registered base model {entry['name']} ({entry['family']}): {entry['source']}")

    return _run(args, work)


def cmd_base_models_list(args: argparse.Namespace) -> int:
    """A table of the base models registered at run time."""

    def work(client: AdminClient) -> None:
        entries = client.call("GET", "/v1/admin/base-models")
        rows = [
            [e["name"], e["family"], e["source"], e.get("config") or "-", (e.get("sha256") or "-")[:12], e["updatedAt"]]
            for e in entries
        ]
        print(format_table(rows, BASE_MODEL_HEADERS) if rows else "No base models registered.")

    return _run(args, work)


def cmd_base_models_remove(args: argparse.Namespace) -> int:
    """Unregister a base model."""

    def work(client: AdminClient) -> None:
        client.call("DELETE", f"/v1/admin/base-models/{args.name}")
        print(f"Removed base model {args.name}")

    return _run(args, work)


def register_base_models(sub: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    """Add the `base-models` command group; returns its commands' parsers."""
    group = sub.add_parser("base-models", help="register, list or remove base models at run time (the operator API)")
    group_sub = group.add_subparsers(dest="base_models_command", required=True)

    add = group_sub.add_parser("add", help="register a base model (or replace its entry) without a redeploy")
    add.add_argument("name", help="the name requests use (not a built-in's or a configured one's)")
    add.add_argument(
        "--source", required=True, help="an absolute path or s3:// URI: a diffusers folder or one .safetensors file"
    )
    add.add_argument("--family", choices=("sd-1_5", "sd-xl", "flux.1"), default=None, help="default: from the name")
    add.add_argument("--config", default=None, help="a single file's configuration folder (path or s3://)")
    add.add_argument("--sha256", default=None, help="a single file's SHA-256, checked when it is downloaded")
    add.set_defaults(func=cmd_base_models_add)

    listing = group_sub.add_parser("list", help="list the base models registered at run time")
    listing.set_defaults(func=cmd_base_models_list)

    remove = group_sub.add_parser("remove", help="unregister a base model")
    remove.add_argument("name", help="the registered name")
    remove.set_defaults(func=cmd_base_models_remove)
    return [add, listing, remove]


# --- end issue 16: run-time base models ---


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `keys`, `tenants` and `base-models` command groups."""
    keys = sub.add_parser("keys", help="issue, list, revoke or rotate tenants' API keys (the operator API)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)

    create = keys_sub.add_parser("create", help="issue a key for a tenant and print it, and its secret, once")
    create.add_argument("--tenant", required=True, help="the tenant the key acts for (created if new)")
    create.add_argument("--label", default=None, help="what the key is for")
    create.set_defaults(func=cmd_keys_create)

    listing = keys_sub.add_parser("list", help="list keys (never their values or secrets)")
    listing.add_argument("--tenant", default=None, help="only this tenant's keys")
    listing.set_defaults(func=cmd_keys_list)

    revoke = keys_sub.add_parser("revoke", help="revoke a key by its id (refused everywhere within seconds)")
    revoke.add_argument("key_id", help="the key's id, key_…")
    revoke.set_defaults(func=cmd_keys_revoke)

    rotate = keys_sub.add_parser("rotate", help="issue a key replacing KEY_ID; the old one works for a grace period")
    rotate.add_argument("key_id", help="the key's id, key_…")
    rotate.add_argument("--grace", type=int, default=3600, help="seconds the old key keeps working (0: none)")
    rotate.set_defaults(func=cmd_keys_rotate)

    tenants = sub.add_parser("tenants", help="create, list or show tenants (the operator API)")
    tenants_sub = tenants.add_subparsers(dest="tenants_command", required=True)

    t_create = tenants_sub.add_parser("create", help="create a tenant")
    t_create.add_argument("name", help="the tenant's id: letters, digits, _ . -")
    t_create.add_argument("--display-name", default=None, help="a name for people")
    t_create.add_argument(
        "--quota", action="append", metavar="NAME=VALUE", help=f"a quota of its own ({', '.join(QUOTA_TYPES)})"
    )
    t_create.set_defaults(func=cmd_tenants_create)

    t_list = tenants_sub.add_parser("list", help="list tenants")
    t_list.set_defaults(func=cmd_tenants_list)

    t_show = tenants_sub.add_parser("show", help="a tenant's quotas, usage and keys")
    t_show.add_argument("name", help="the tenant's id")
    t_show.set_defaults(func=cmd_tenants_show)

    for parser in (create, listing, revoke, rotate, t_create, t_list, t_show, *register_base_models(sub)):
        add_target_options(parser)

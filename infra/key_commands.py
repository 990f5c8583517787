"""`lorafoundry keys create|revoke`: an operator issues or revokes a tenant's API key straight in the API-keys
table, with the operator's own AWS credentials (DynamoDB is reachable from outside the VPC, the brokers are not),
against any deployment the LF_ settings name: AWS (`LF_RESOURCE_PREFIX`, `LF_AWS_REGION`), LocalStack or moto."""

from __future__ import annotations

import argparse
import asyncio
import secrets

from infra.aws import AwsClients
from infra.repositories.api_keys import ApiKeyRepository, generate_api_key
from infra.settings import Settings, get_settings


async def create_key(settings: Settings, tenant_id: str, name: str, signed: bool) -> tuple[str, str, str | None]:
    """Issue a key (and, for signed calls, its signing secret); returns (key id, key, secret)."""
    raw_key = generate_api_key()
    signing_secret = secrets.token_urlsafe(32) if signed else None
    async with AwsClients(settings) as clients:
        key_id = await ApiKeyRepository(clients.dynamodb, settings.api_keys_table).put(
            raw_key,
            tenant_id=tenant_id,
            name=name,
            signing_secret=signing_secret,
            require_signed_deletes=signed,
        )
    return key_id, raw_key, signing_secret


async def revoke_key(settings: Settings, raw_key: str) -> None:
    """Mark a key revoked (every API process refuses it within LF_API_KEY_CACHE_SECONDS)."""
    async with AwsClients(settings) as clients:
        await ApiKeyRepository(clients.dynamodb, settings.api_keys_table).revoke(raw_key)


def cmd_create(args: argparse.Namespace) -> int:
    """Print the new key once: it is stored only as a hash."""
    key_id, raw_key, signing_secret = asyncio.run(
        create_key(get_settings(), args.tenant, args.name or f"key for {args.tenant}", args.signed)
    )
    print(f"key id:  {key_id}\napi key: {raw_key}")
    if signing_secret:
        print(f"signing secret: {signing_secret}")
    print("Store them now: neither is shown again.")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    """Revoke the key given on standard input's first line, or as --key."""
    raw_key = args.key or input().strip()
    asyncio.run(revoke_key(get_settings(), raw_key))
    print("revoked")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `keys` command group."""
    keys = sub.add_parser("keys", help="issue or revoke a tenant's API key (any deployment the LF_ settings name)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="issue a key for a tenant and print it once")
    create.add_argument("--tenant", required=True, help="the tenant the key acts for")
    create.add_argument("--name", default=None, help="what the key is for (shown in listings)")
    create.add_argument(
        "--signed", action="store_true", help="also issue a signing secret; deleting a model then needs a signature"
    )
    create.set_defaults(func=cmd_create)
    revoke = keys_sub.add_parser("revoke", help="revoke a key (read from standard input unless --key)")
    revoke.add_argument("--key", default=None, help=argparse.SUPPRESS)  # on a command line it lands in shell history
    revoke.set_defaults(func=cmd_revoke)

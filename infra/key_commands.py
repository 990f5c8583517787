"""`lorafoundry keys create|revoke`: an operator issues or revokes a tenant's API key straight in the API-keys
table, with the operator's own AWS credentials (DynamoDB is reachable from outside the VPC, the brokers are not),
against any deployment the LF_ settings name: AWS (`LF_RESOURCE_PREFIX`, `LF_AWS_REGION`), LocalStack or moto.

The output lines (`Key id: …`, `API key: …`, `Signing secret: …`) are what scripts read; keep them."""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys

from botocore.exceptions import ClientError

from infra.aws import AwsClients
from infra.repositories.api_keys import ApiKeyRepository, generate_api_key
from infra.settings import Settings, get_settings


async def create_key(settings: Settings, tenant_id: str, label: str) -> tuple[str, str, str]:
    """Issue a key and its signing secret (for signed calls); returns (key id, key, secret)."""
    raw_key = generate_api_key()
    signing_secret = secrets.token_urlsafe(32)
    async with AwsClients(settings) as clients:
        key_id = await ApiKeyRepository(clients.dynamodb, settings.api_keys_table).put(
            raw_key, tenant_id=tenant_id, name=label, signing_secret=signing_secret
        )
    return key_id, raw_key, signing_secret


async def revoke_key(settings: Settings, key_id: str) -> bool:
    """Mark the key with this id revoked (every API process refuses it within LF_API_KEY_CACHE_SECONDS);
    False if no key has this id."""
    async with AwsClients(settings) as clients:
        repository = ApiKeyRepository(clients.dynamodb, settings.api_keys_table)
        key_hash = await repository.hash_for_id(key_id)
        if key_hash is None:
            return False
        try:
            await repository.revoke_hash(key_hash)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return False  # deleted between the lookup and the revocation
        return True


def cmd_create(args: argparse.Namespace) -> int:
    """Print the new key and secret once: the key is stored only as a hash."""
    key_id, raw_key, signing_secret = asyncio.run(
        create_key(get_settings(), args.tenant, args.label or f"key for {args.tenant}")
    )
    print(f"Key id: {key_id}\nAPI key: {raw_key}\nSigning secret: {signing_secret}")
    print("Store the key and the secret now: neither is shown again.", file=sys.stderr)
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    """Revoke a key by its id."""
    if not asyncio.run(revoke_key(get_settings(), args.key_id)):
        print(f"no key has the id {args.key_id}", file=sys.stderr)
        return 1
    print(f"Revoked: {args.key_id}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `keys` command group."""
    keys = sub.add_parser("keys", help="issue or revoke a tenant's API key (any deployment the LF_ settings name)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="issue a key for a tenant and print it, and its secret, once")
    create.add_argument("--tenant", required=True, help="the tenant the key acts for")
    create.add_argument("--label", default=None, help="what the key is for")
    create.set_defaults(func=cmd_create)
    revoke = keys_sub.add_parser("revoke", help="revoke a key by its id (the `Key id` create printed)")
    revoke.add_argument("key_id", help="the key's id, key_…")
    revoke.set_defaults(func=cmd_revoke)

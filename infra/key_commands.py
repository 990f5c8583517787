"""Moved to `infra.admin_commands` (the `keys` and `tenants` groups, over the operator API). This name stays only
until `infra/local/cli.py` registers `infra.admin_commands.register`; then delete this file."""

from infra.admin_commands import register

__all__ = ["register"]

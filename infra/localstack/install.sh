#!/usr/bin/env bash
# The LocalStack lane's venv: LocalStack at its pins on Python 3.13, plus the lane's two plugins (DynamoDB served
# by moto; a Lambda executor that creates functions without Docker).
# Cached: does nothing while the venv's marker is newer than the pins and the plugin's files.
#
#   bash infra/localstack/install.sh [VENV]      (default: .localstack-venv at the repository root)
#
# LF_LOCALSTACK_PYTHON names the interpreter (default: pyenv's 3.13.0, else python3.13 on PATH).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${1:-$root/.localstack-venv}"
marker="$venv/.installed"
plugins=(moto_dynamodb no_lambda_runtime)
inputs=("$here/install.sh" "$here/requirements.txt")
for plugin in "${plugins[@]}"; do
  inputs+=("$here/$plugin"/pyproject.toml "$here/$plugin"/*.py)
done

up_to_date() {
  [ -f "$marker" ] || return 1
  for input in "${inputs[@]}"; do
    [ "$marker" -nt "$input" ] || return 1
  done
}

if up_to_date; then
  echo "LocalStack lane: $venv is up to date"
  exit 0
fi

python="${LF_LOCALSTACK_PYTHON:-$HOME/.pyenv/versions/3.13.0/bin/python}"
if [ ! -x "$python" ]; then
  python="$(command -v python3.13 || true)"
fi
if [ -z "$python" ]; then
  echo "LocalStack lane: no Python 3.13 (set LF_LOCALSTACK_PYTHON); LocalStack finds no plugins on 3.12" >&2
  exit 1
fi

started=$SECONDS
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q -r "$here/requirements.txt"
# Built from a copy: an in-tree build would leave build/ and *.egg-info/ in the repository.
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
for plugin in "${plugins[@]}"; do
  cp -r "$here/$plugin" "$build/"
  "$venv/bin/python" -m pip install -q --no-deps "$build/$plugin"
done
# The plugins must be visible to LocalStack's plugin loader, not just importable.
"$venv/bin/python" - <<'PY'
from importlib.metadata import entry_points

for group, name in (("localstack.aws.provider", "dynamodb:moto"), ("localstack.lambda.runtime_executor", "none")):
    assert name in {ep.name for ep in entry_points(group=group)}, f"plugin {name} is not registered in {group}"
PY
touch "$marker"
echo "LocalStack lane: installed into $venv in $((SECONDS - started)) s"

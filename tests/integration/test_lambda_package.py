"""The Lambda package, built for real (pip for python3.12 x86_64 from PyPI, at the lock's versions and hashes)
once for this module, then unzipped and run under python3.12 with nothing but the package on its path: every
handler the catalog names imports, the API answers a request in API Gateway's HTTP API shape, and nothing else
on the machine (this venv, a site-packages) is what made it work.

Takes about 30 s on an idle 2-core machine (pip from its cache about 10 s, bytecode about 6 s, the zip about
4 s, unzipping and the python3.12 run the rest), a minute when the machine is busy; skipped, with the reason,
when PyPI is not there (the python3.12 parts alone when no python3.12 is).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from infra.deploy.catalog import API, FUNCTIONS
from infra.deploy.lambda_package import (
    FORBIDDEN,
    UNZIPPED_LIMIT_BYTES,
    PackageBuildError,
    PackageReport,
    build_lambda_package,
    lambda_packages,
    lambda_python,
    write_deterministic_zip,
)
from infra.deploy.lock import normalize, read_lock

pytestmark = pytest.mark.integration

# A GET of the unauthenticated liveness route, as API Gateway's HTTP API (payload format 2.0) sends it.
HEALTH_EVENT = {
    "version": "2.0",
    "routeKey": "$default",
    "rawPath": "/healthz",
    "rawQueryString": "",
    "headers": {"host": "abc123.execute-api.us-east-1.amazonaws.com", "accept": "application/json"},
    "requestContext": {
        "accountId": "123456789012",
        "apiId": "abc123",
        "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
        "domainPrefix": "abc123",
        "http": {
            "method": "GET",
            "path": "/healthz",
            "protocol": "HTTP/1.1",
            "sourceIp": "203.0.113.7",
            "userAgent": "pytest",
        },
        "requestId": "request-1",
        "routeKey": "$default",
        "stage": "$default",
        "time": "01/Dec/2026:00:00:00 +0000",
        "timeEpoch": 1796083200000,
    },
    "isBase64Encoded": False,
}

# Run as `python3.12 -I -S -B probe.py PACKAGE_DIR HANDLERS_JSON EVENT_JSON API_HANDLER`: -I ignores PYTHON*
# variables and the user's site, -S skips site-packages altogether, so only the standard library and the package
# can be imported; -B writes no bytecode, as on Lambda's read-only /var/task.
PROBE = r"""
import importlib, json, marshal, pathlib, sys, sysconfig, traceback
package, handlers, event, api = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
sys.path.insert(0, package)
result = {"python": sys.version.split()[0], "handlers": {}, "outside": [], "api": None, "pyc_filename": None}
pyc = pathlib.Path(package, "functions", "api", "__pycache__", "handler.cpython-312.pyc")
if pyc.is_file():
    result["pyc_filename"] = marshal.loads(pyc.read_bytes()[16:]).co_filename
for spec in handlers:
    module, attribute = spec.rsplit(".", 1)
    try:
        handler = getattr(importlib.import_module(module), attribute)
        result["handlers"][spec] = "ok" if callable(handler) else f"not callable: {type(handler).__name__}"
    except BaseException:
        result["handlers"][spec] = traceback.format_exc(limit=-3)
stdlib = sysconfig.get_paths()["stdlib"]
for name, module in sorted(sys.modules.items()):
    where = getattr(module, "__file__", None)
    # This script itself is __main__ (and __mp_main__ once multiprocessing is imported).
    if module is not sys.modules["__main__"] and where and not where.startswith((package, stdlib)):
        result["outside"].append(f"{name}: {where}")
module, attribute = api.rsplit(".", 1)
try:
    result["api"] = getattr(importlib.import_module(module), attribute)(event, None)
except BaseException:
    result["api"] = {"error": traceback.format_exc(limit=-3)}
print(json.dumps(result))
"""


def pypi_reachable() -> bool:
    """Whether pip could download what its cache lacks."""
    try:
        with socket.create_connection(("pypi.org", 443), timeout=5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> PackageReport:
    """The package, built once for this module."""
    out = tmp_path_factory.mktemp("lambda-package")
    started = time.monotonic()
    try:
        report = build_lambda_package(out)
    except PackageBuildError:
        if not pypi_reachable():
            pytest.skip("PyPI (pypi.org:443) is unreachable and pip's cache cannot build the Lambda package alone")
        raise
    print(f"\nLambda package built in {time.monotonic() - started:.1f} s\n{report.summary()}")
    return report


@pytest.fixture(scope="module")
def unzipped(package: PackageReport, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The zip's contents, as Lambda extracts them into /var/task."""
    target = tmp_path_factory.mktemp("var-task")
    with zipfile.ZipFile(package.zip_path) as archive:
        archive.extractall(target)
    return target


@pytest.fixture(scope="module")
def probe(unzipped: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every catalog handler imported, and the API called, under python3.12 from the package only."""
    interpreter = lambda_python()
    if interpreter is None:
        pytest.skip("no CPython 3.12 here (~/.pyenv/versions/3.12*/bin/python or python3.12 on PATH)")
    home = tmp_path_factory.mktemp("home")
    script = home / "probe.py"
    script.write_text(PROBE)
    handlers = json.dumps([spec.handler for spec in FUNCTIONS])
    # What a Lambda's environment holds before the template's variables: no LF_ setting, so every default.
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "AWS_REGION": "us-east-1"}
    result = subprocess.run(
        [interpreter, "-I", "-S", "-B", str(script), str(unzipped), handlers, json.dumps(HEALTH_EVENT), API.handler],
        capture_output=True,
        text=True,
        env=env,
        cwd=home,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_package_is_within_lambdas_limits(package: PackageReport) -> None:
    assert package.unzipped_bytes < UNZIPPED_LIMIT_BYTES, package.summary()
    # The zip may pass the 50 MiB of a direct upload (numpy, for the torch-free LoRA file checks, put it there):
    # the template reads it from S3, whose only limit is the unzipped size. The summary says which applies.
    assert package.zip_path.name == f"lorafoundry-lambda-{package.sha256[:12]}.zip"


def test_the_package_carries_exactly_the_locked_closure_and_nothing_forbidden(
    package: PackageReport, unzipped: Path
) -> None:
    installed = {}
    for dist_info in unzipped.glob("*.dist-info"):
        name, version = dist_info.name.removesuffix(".dist-info").split("-", 1)
        installed[normalize(name)] = version
    lock = read_lock()
    assert installed == {name: lock[name].version for name in lambda_packages(lock)}
    assert not FORBIDDEN & installed.keys()
    # The embedded stack, the LocalStack plugin and the deployment tooling stay out; the handlers' code is in.
    for left_out in ("local", "localstack", "deploy", "docker"):
        assert not (unzipped / "infra" / left_out).exists(), left_out
    assert (unzipped / "functions" / "api" / "handler.py").is_file()
    assert (unzipped / "events" / "schemas").is_dir()
    assert [p.name for p in unzipped.rglob("*.pyc") if ".cpython-312." not in p.name] == []


def test_the_wheels_are_the_lambda_runtimes(unzipped: Path) -> None:
    """Compiled extensions built for CPython 3.12 on x86_64 Linux, whatever Python built the package."""
    extensions = [path.name for path in unzipped.rglob("*.so") if ".cpython-" in path.name]
    assert extensions, "no compiled extension found: pydantic-core at least has one"
    assert all(".cpython-312-x86_64-linux-gnu.so" in name for name in extensions), extensions


def test_the_bytecode_names_lambdas_paths_not_the_builds(package: PackageReport, probe: dict) -> None:
    """The build's temporary folder in the bytecode would make every build's bytes, and so its name, differ."""
    if package.bytecode is None:
        pytest.skip("no python3.12 here, so the package was built without bytecode")
    assert probe["pyc_filename"] == "/var/task/functions/api/handler.py"


def test_every_module_has_the_runtimes_bytecode(package: PackageReport, unzipped: Path) -> None:
    """Without it a cold start compiles all it imports (/var/task is read-only): seconds, measured."""
    if package.bytecode is None:
        pytest.skip("no python3.12 here, so the package was built without bytecode")
    assert package.bytecode.startswith("3.12.")
    missing = [
        str(path.relative_to(unzipped))
        for path in unzipped.rglob("*.py")
        if not (path.parent / "__pycache__" / f"{path.stem}.cpython-312.pyc").is_file()
    ]
    assert missing == []


@pytest.mark.parametrize("spec", FUNCTIONS, ids=[spec.name for spec in FUNCTIONS])
def test_every_handler_imports_under_python312_from_the_package_alone(probe: dict, spec) -> None:
    assert probe["python"].startswith("3.12.")
    assert probe["handlers"][spec.handler] == "ok"


def test_nothing_outside_the_package_and_the_standard_library_was_imported(probe: dict) -> None:
    assert probe["outside"] == []


def test_the_api_handler_answers_an_http_api_request(probe: dict) -> None:
    response = probe["api"]
    assert response.get("statusCode") == 200, response
    assert json.loads(response["body"]) == {"status": "ok"}


def test_the_same_files_zip_to_the_same_bytes(tmp_path: Path) -> None:
    """What makes the content-addressed name stable: order, timestamps and modes come from the zip writer."""
    tree = tmp_path / "tree"
    for relative, text in (("b/z.py", "z = 1\n"), ("a.py", "a = 1\n"), ("b/a.json", "{}\n")):
        (tree / relative).parent.mkdir(parents=True, exist_ok=True)
        (tree / relative).write_text(text)
    write_deterministic_zip(tree, tmp_path / "first.zip")
    os.utime(tree / "a.py", (0, 1_000_000_000))
    (tree / "b" / "z.py").chmod(0o755)
    write_deterministic_zip(tree, tmp_path / "second.zip")
    assert (tmp_path / "first.zip").read_bytes() == (tmp_path / "second.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "first.zip") as archive:
        assert archive.namelist() == ["a.py", "b/a.json", "b/z.py"]

"""The one zip every Lambda function runs from: the project's code the handlers need and the third-party
packages those need, at the lock's versions and hashes, built for the Lambda runtime (python3.12 on x86_64,
Amazon Linux 2023) whatever machine builds it, and named by its content so a CodeKey never points at two
different artifacts.

`lorafoundry package lambda --out DIR` calls `build_lambda_package(DIR)`.
"""

from __future__ import annotations

import ast
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from infra.deploy.lock import LOCK_PATH, LockedPackage, closure, normalize, read_lock

ROOT = LOCK_PATH.parent

# What the handlers' code imports (mapped to distributions), plus what a library imports on our behalf:
# python-multipart is imported by FastAPI only when a route takes a form (the uploads). `build_lambda_package`
# checks the packaged code's imports against what was installed, so a new import cannot be forgotten here.
LAMBDA_REQUIREMENTS: tuple[str, ...] = (
    "aiobotocore",
    "aiokafka",
    "aws-lambda-powertools",
    "aws-msk-iam-sasl-signer-python",
    "boto3",
    "fastapi",
    "httpx",
    "mangum",
    "numpy",
    "opentelemetry-api",
    "opentelemetry-exporter-otlp-proto-http",
    "opentelemetry-sdk",
    "pillow",
    "prometheus-client",
    "pydantic",
    "pydantic-settings",
    "python-json-logger",
    "python-multipart",
    "standardwebhooks",
)
# Never in the package: the model stack runs on the GPU workers only, and the rest is the local stack.
FORBIDDEN: frozenset[str] = frozenset(
    {
        "torch",
        "diffusers",
        "peft",
        "transformers",
        "accelerate",
        "huggingface-hub",
        "safetensors",
        "tokenizers",
        "moto",
        "uvicorn",
    }
)
# The project's code: every package but what never runs in a function: the embedded local stack (it imports moto
# and starts servers), the LocalStack lane's plugin (it imports localstack), and the deployment's own tooling
# (synth, this packager, the Dockerfiles), which runs on the operator's machine. The build checks that nothing
# packaged imports from these.
SOURCE_PACKAGES: tuple[str, ...] = ("events", "functions", "infra")
EXCLUDED_SOURCE: tuple[str, ...] = (
    "infra/local",
    "infra/localstack",
    "infra/deploy",
    "infra/docker",
    # The operator's commands: they run on the operator's machine, against the API.
    "infra/admin_client.py",
    "infra/admin_commands.py",
    "infra/status_command.py",
)

# The Lambda runtime the wheels are chosen for: python3.12 runs on Amazon Linux 2023, whose glibc is 2.34, so no
# wheel newer than manylinux_2_34 can load there.
PYTHON_VERSION = "3.12"
PLATFORMS: tuple[str, ...] = ("manylinux_2_34_x86_64", "manylinux_2_28_x86_64", "manylinux2014_x86_64")

# Bytecode for the runtime's interpreter: /var/task is read-only, so without it every cold start compiles every
# module it imports (measured here: importing the API handler took 4.7 s without, 2.0 s with). Compiled with
# `unchecked-hash` invalidation, the files depend on the source only, not on mtimes, so the zip stays deterministic.
# Where Lambda extracts the zip (LAMBDA_TASK_ROOT).
LAMBDA_TASK_ROOT = "/var/task"
_PYC_TAG = f"cpython-{PYTHON_VERSION.replace('.', '')}"

# Lambda's quotas: the unzipped code of a function with all its layers, and a zip uploaded directly (through S3
# the zipped size is bounded only by the unzipped one). The exact byte counts its API enforces.
UNZIPPED_LIMIT_BYTES = 262_144_000
ZIPPED_DIRECT_UPLOAD_LIMIT_BYTES = 50 * 1024 * 1024

# Fixed metadata in every zip entry: the same files give the same bytes, whoever builds them and when.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_ZIP_MODE = 0o100644 << 16
_PRUNED_DIRS = frozenset({"__pycache__", "tests", "test"})
_PRUNED_SUFFIXES = (".pyc", ".pyo")
_PROJECT_LABEL = "(project code)"


class PackageBuildError(RuntimeError):
    """The package could not be built (pip failed, an import is not covered, a forbidden package came in)."""


@dataclass(frozen=True)
class PackageSize:
    """What one distribution (or the project's code) adds to the unzipped package."""

    name: str
    version: str
    unzipped_bytes: int


@dataclass(frozen=True)
class PackageReport:
    """The built zip and what is in it."""

    zip_path: Path
    zipped_bytes: int
    unzipped_bytes: int
    packages: tuple[PackageSize, ...]  # largest first, the project's code included
    sha256: str
    bytecode: str | None = None  # the interpreter that compiled it ("3.12.1"), None when none was found
    unzipped_limit_bytes: int = UNZIPPED_LIMIT_BYTES
    zipped_direct_upload_limit_bytes: int = ZIPPED_DIRECT_UPLOAD_LIMIT_BYTES
    files: int = 0

    @property
    def third_party(self) -> tuple[PackageSize, ...]:
        """The distributions only, without the project's code."""
        return tuple(p for p in self.packages if p.name != _PROJECT_LABEL)

    def summary(self, largest: int = 8) -> str:
        """What `lorafoundry package lambda` prints."""
        mb = 1024 * 1024
        upload = "fits" if self.zipped_bytes <= self.zipped_direct_upload_limit_bytes else "over: upload via S3"
        lines = [
            f"{self.zip_path}",
            f"  zipped:   {self.zipped_bytes / mb:7.1f} MiB  (direct upload limit "
            f"{self.zipped_direct_upload_limit_bytes / mb:.0f} MiB: {upload}; the template reads it from S3)",
            f"  unzipped: {self.unzipped_bytes / mb:7.1f} MiB  (limit {self.unzipped_limit_bytes / mb:.1f} MiB, "
            f"{100 * self.unzipped_bytes / self.unzipped_limit_bytes:.0f}% used), {self.files} files",
            f"  packages: {len(self.third_party)} at the versions in requirements.lock, for python{PYTHON_VERSION} "
            "x86_64; largest:",
        ]
        if self.bytecode is None:
            missing = f"  bytecode: NONE (no python{PYTHON_VERSION} here): each cold start compiles what it imports"
            lines.insert(3, missing)
        else:
            lines.insert(3, f"  bytecode: compiled by python {self.bytecode} ({_PYC_TAG})")
        for package in self.packages[:largest]:
            lines.append(f"    {package.unzipped_bytes / mb:7.1f} MiB  {package.name} {package.version}".rstrip())
        return "\n".join(lines)


def lambda_packages(lock: dict[str, LockedPackage] | None = None) -> dict[str, LockedPackage]:
    """The locked distributions the package carries: the closure of LAMBDA_REQUIREMENTS over the lock."""
    packages = closure(LAMBDA_REQUIREMENTS, read_lock() if lock is None else lock)
    forbidden = sorted(FORBIDDEN & packages.keys())
    if forbidden:
        raise PackageBuildError(f"the Lambda package would carry {forbidden}: a requirement pulls them in")
    return packages


def build_lambda_package(out: Path) -> PackageReport:
    """Build `out/lorafoundry-lambda-<sha256[:12]>.zip` and report its sizes against Lambda's limits."""
    out.mkdir(parents=True, exist_ok=True)
    packages = lambda_packages()
    with tempfile.TemporaryDirectory(prefix="lambda-package-") as tmp:
        staging = Path(tmp) / "package"
        _install(packages, staging, Path(tmp) / "requirements.txt")
        _prune(staging)
        _copy_source(staging)
        _check_imports_are_packaged(staging)
        _check_nothing_forbidden(staging)
        bytecode = _compile(staging)
        sizes = _sizes(staging, packages)
        unsigned = Path(tmp) / "package.zip"
        files, unzipped = write_deterministic_zip(staging, unsigned)
        digest = hashlib.sha256(unsigned.read_bytes()).hexdigest()
        zip_path = out / f"lorafoundry-lambda-{digest[:12]}.zip"
        shutil.move(unsigned, zip_path)
    report = PackageReport(
        zip_path=zip_path,
        zipped_bytes=zip_path.stat().st_size,
        unzipped_bytes=unzipped,
        packages=sizes,
        sha256=digest,
        bytecode=bytecode,
        files=files,
    )
    if report.unzipped_bytes > UNZIPPED_LIMIT_BYTES:
        raise PackageBuildError(f"over Lambda's unzipped limit:\n{report.summary()}")
    return report


def _install(packages: dict[str, LockedPackage], target: Path, requirements: Path) -> None:
    """pip, for the Lambda's interpreter and platform rather than this one's: binary wheels only, each
    checked against its locked hashes, no resolution (the closure is already the locked set)."""
    requirements.write_text("".join(p.requirement_lines() for p in packages.values()))
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target)]
    command += ["--only-binary=:all:", "--python-version", PYTHON_VERSION, "--implementation", "cp"]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    command += ["--no-deps", "--no-compile", "--require-hashes", "-r", str(requirements)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PackageBuildError(f"pip failed ({result.returncode}):\n{(result.stderr or result.stdout)[-4000:]}")
    # Console scripts: nothing in Lambda runs them.
    shutil.rmtree(target / "bin", ignore_errors=True)


def _prune(staging: Path) -> None:
    """Bytecode (this interpreter's would not be the runtime's) and test suites shipped inside wheels."""
    for path in sorted(staging.rglob("*"), reverse=True):
        if path.is_dir() and path.name in _PRUNED_DIRS and not path.parent.name.endswith(".dist-info"):
            shutil.rmtree(path)
        elif path.is_file() and path.name.endswith(_PRUNED_SUFFIXES):
            path.unlink()


def lambda_python() -> str | None:
    """A CPython of the Lambda runtime's version on this machine: pyenv's, else `python3.12` on PATH."""
    pyenv = sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{PYTHON_VERSION}.*/bin/python")), reverse=True)
    return pyenv[0] if pyenv else shutil.which(f"python{PYTHON_VERSION}")


def _compile(staging: Path) -> str | None:
    """Bytecode for every module, by the runtime's Python version; returns that version, or None (and no
    bytecode) where this machine has no such interpreter."""
    interpreter = lambda_python()
    if interpreter is None:
        return None
    # -I -S: nothing of this machine's environment or site-packages takes part.
    version = subprocess.run(
        [interpreter, "-I", "-S", "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # -d: the file names in the bytecode are where Lambda puts the code (tracebacks name /var/task/...), not
    # this build's temporary folder, which would make every build's bytes differ.
    command = [interpreter, "-I", "-S", "-m", "compileall", "-q", "-j", "0", "-d", LAMBDA_TASK_ROOT]
    command += ["--invalidation-mode", "unchecked-hash", str(staging)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PackageBuildError(f"compileall failed:\n{(result.stdout + result.stderr)[-4000:]}")
    return version


def _source_files() -> list[Path]:
    """The project's files the package carries, relative to the repository root (package data included)."""
    files = []
    for package in SOURCE_PACKAGES:
        for path in (ROOT / package).rglob("*"):
            relative = path.relative_to(ROOT)
            if not path.is_file() or any(part in _PRUNED_DIRS for part in relative.parts):
                continue
            if path.name.endswith(_PRUNED_SUFFIXES) or any(relative.is_relative_to(x) for x in EXCLUDED_SOURCE):
                continue
            files.append(relative)
    return sorted(files)


def _copy_source(staging: Path) -> None:
    for relative in _source_files():
        destination = staging / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / relative, destination)


def imported_modules(files: list[Path]) -> dict[str, str]:
    """Modules the given Python files import anywhere (lazily too, and `importlib.import_module("...")` with a
    literal name), each with one file that imports it; the standard library left out."""
    found: dict[str, str] = {}
    for path in files:
        if path.suffix != ".py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Call) and _is_import_call(node):
                names = [node.args[0].value]  # type: ignore[attr-defined]
            for name in names:
                top = name.split(".", 1)[0]
                if top not in sys.stdlib_module_names and top != "__future__":
                    found.setdefault(name, str(path))
    return found


def _is_import_call(node: ast.Call) -> bool:
    function = node.func
    name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", None)
    literal = bool(node.args) and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
    return name in {"import_module", "__import__"} and literal


def _check_imports_are_packaged(staging: Path) -> None:
    """Every module the packaged code imports is in the package: a new import fails the build here, not a
    cold start in production. Third-party ones by their top-level name; the project's own by the module itself,
    so code that imports from an excluded folder is caught too."""
    first_party = {*SOURCE_PACKAGES, "workers"}
    missing = {}
    for module, importer in imported_modules([staging / relative for relative in _source_files()]).items():
        parts = module.split(".")
        if parts[0] in first_party:
            path = staging.joinpath(*parts)
            present = path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()
        else:
            present = (staging / parts[0]).is_dir() or any(staging.glob(f"{parts[0]}.*"))
        if not present:
            missing[module] = importer.removeprefix(str(staging) + os.sep)
    if missing:
        listed = ", ".join(f"{module} (imported by {importer})" for module, importer in missing.items())
        raise PackageBuildError(
            f"imported but not in the package: {listed}. A third-party module: add its distribution to "
            "LAMBDA_REQUIREMENTS; one of the project's: it is left out by EXCLUDED_SOURCE (or does not exist)"
        )


def _check_nothing_forbidden(staging: Path) -> None:
    installed = {normalize(p.name.split("-", 1)[0]) for p in staging.glob("*.dist-info")}
    if forbidden := sorted(FORBIDDEN & installed):
        raise PackageBuildError(f"the Lambda package carries {forbidden}")


def _with_bytecode(path: Path) -> int:
    """A file's bytes and those of its compiled module, if any."""
    size = path.stat().st_size if path.is_file() else 0
    pyc = path.parent / "__pycache__" / f"{path.stem}.{_PYC_TAG}.pyc"
    return size + (pyc.stat().st_size if path.suffix == ".py" and pyc.is_file() else 0)


def _sizes(staging: Path, packages: dict[str, LockedPackage]) -> tuple[PackageSize, ...]:
    """Unzipped bytes per distribution, from each one's RECORD (what it installed) and their bytecode, and the
    project's code."""
    sizes = []
    for record in staging.glob("*.dist-info/RECORD"):
        name = normalize(record.parent.name.split("-", 1)[0])
        total = sum(_with_bytecode(staging / line.rsplit(",", 2)[0]) for line in record.read_text().splitlines())
        sizes.append(PackageSize(name, packages[name].version if name in packages else "?", total))
    project = sum(_with_bytecode(staging / relative) for relative in _source_files())
    sizes.append(PackageSize(_PROJECT_LABEL, "", project))
    return tuple(sorted(sizes, key=lambda s: (-s.unzipped_bytes, s.name)))


def write_deterministic_zip(tree: Path, zip_path: Path) -> tuple[int, int]:
    """Zip `tree`'s files with sorted names, one timestamp and one mode, so equal trees give equal bytes.
    Returns (files, unzipped bytes)."""
    files = sorted((p for p in tree.rglob("*") if p.is_file()), key=lambda p: p.relative_to(tree).as_posix())
    unzipped = 0
    # zlib's default level: 9 takes about six times as long here for 0.4% fewer bytes.
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(tree).as_posix(), date_time=_ZIP_DATE)
            info.external_attr = _ZIP_MODE
            info.create_system = 3  # Unix, so the mode above is read as one
            data = path.read_bytes()
            unzipped += len(data)
            archive.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=6)
    return len(files), unzipped

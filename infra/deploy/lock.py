"""requirements.lock read as data: each pin's version, its hashes and the packages that need it (uv's `# via`
annotations), so a deployment artifact takes exactly the locked versions and can follow the dependency graph
without resolving anything again."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

LOCK_PATH = Path(__file__).resolve().parents[2] / "requirements.lock"
# The project itself, as uv names it in `# via lorafoundry (pyproject.toml)`.
PROJECT = "lorafoundry"

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
_HASH = re.compile(r"--hash=(sha256:[0-9a-f]{64})")
_VIA_INLINE = re.compile(r"^#\s+via\s+(\S.*)$")
_VIA_CONTINUED = re.compile(r"^#\s{2,}(\S.*)$")


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them: 'Pydantic_Settings' -> 'pydantic-settings'."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class LockedPackage:
    """One pin of the lock."""

    name: str  # normalized
    version: str  # as written, local label included ('2.13.0+cpu')
    hashes: tuple[str, ...]
    needed_by: frozenset[str]  # normalized names; PROJECT for a direct dependency

    @property
    def public_version(self) -> str:
        """The version without its local label: '2.13.0+cpu' -> '2.13.0' (the same release on another index)."""
        return self.version.split("+", 1)[0]

    def requirement_lines(self) -> str:
        """`name==version` with its hashes, in pip's requirements-file syntax."""
        return " \\\n".join([f"{self.name}=={self.version}", *(f"    --hash={h}" for h in self.hashes)]) + "\n"


def read_lock(text: str | None = None) -> dict[str, LockedPackage]:
    """Every pin of the lock (the file at the repository root unless `text` is given), by normalized name."""
    if text is None:
        text = LOCK_PATH.read_text()
    packages: dict[str, LockedPackage] = {}
    current: tuple[str, str] | None = None
    hashes: list[str] = []
    needed_by: set[str] = set()

    def flush() -> None:
        if current is not None:
            packages[current[0]] = LockedPackage(current[0], current[1], tuple(hashes), frozenset(needed_by))

    for raw in text.splitlines():
        line = raw.strip()
        if pin := _PIN.match(raw):
            flush()
            current, hashes, needed_by = (normalize(pin.group(1)), pin.group(2)), [], set()
        if current is None:
            continue
        hashes.extend(_HASH.findall(line))
        via = _VIA_INLINE.match(line) or (_VIA_CONTINUED.match(line) if raw.startswith("    #") else None)
        if via:
            # 'lorafoundry (pyproject.toml)' -> 'lorafoundry'; an empty inline 'via' opens a continued list.
            needed_by.add(normalize(via.group(1).split()[0]))
    flush()
    return packages


def closure(roots: list[str] | tuple[str, ...], lock: dict[str, LockedPackage]) -> dict[str, LockedPackage]:
    """The locked packages `roots` need, themselves included: every pin needed by one already taken, followed
    to a fixed point. The lock is resolved for the project's platform, so a pin it holds only for another
    Python (a backport) may come along; that is harmless, and a missing one fails the import check."""
    missing = [name for name in roots if normalize(name) not in lock]
    if missing:
        raise KeyError(f"requirements.lock pins none of {missing}")
    taken = {normalize(name) for name in roots}
    changed = True
    while changed:
        changed = False
        for package in lock.values():
            if package.name not in taken and package.needed_by & taken:
                taken.add(package.name)
                changed = True
    return {name: lock[name] for name in sorted(taken)}

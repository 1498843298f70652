"""requirements.lock and requirements-dev.lock (written by `make lock`) hold what pyproject.toml pins, with hashes.

`make`, CI and the Dockerfile install from the locks with pip's --require-hashes, then the project with --no-deps:
a pin changed in pyproject.toml but not locked would never be installed, so this test fails until `make lock` ran.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
ENTRY = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)(?: ; (?P<marker>[^\\]+?))?\s*\\$")


def _locked(name: str) -> dict[str, list[tuple[str, list[str]]]]:
    """package -> [(version, hashes)] (more than one only where markers split by Python version)."""
    entries: dict[str, list[tuple[str, list[str]]]] = {}
    current: list[str] | None = None
    for line in (ROOT / name).read_text().splitlines():
        match = ENTRY.match(line)
        if match:
            current = []
            entries.setdefault(canonicalize_name(match["name"]), []).append((match["version"], current))
        elif line.strip().startswith("--hash=sha256:") and current is not None:
            current.append(line.strip().split(":", 1)[1].rstrip(" \\"))
        elif line.strip() and not line.startswith(" ") and not line.startswith("#"):
            raise AssertionError(f"{name}: a line that is not a pinned entry: {line!r}")
    return entries


def _pins(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for text in requirements:
        requirement = Requirement(text)
        [spec] = requirement.specifier
        assert spec.operator == "==", f"{text}: pyproject.toml pins exact versions"
        pins[canonicalize_name(requirement.name)] = spec.version
    return pins


RUNTIME = _pins(PROJECT["dependencies"])
DEV = _pins(PROJECT["optional-dependencies"]["dev"])


def test_every_locked_package_has_hashes():
    for name in ("requirements.lock", "requirements-dev.lock"):
        for package, versions in _locked(name).items():
            for version, hashes in versions:
                assert hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), (name, package, version)


def test_the_runtime_lock_pins_pyprojects_dependencies_and_no_dev_tool():
    locked = _locked("requirements.lock")
    for package, version in RUNTIME.items():
        assert [v for v, _ in locked.get(package, [])] == [version], f"{package}=={version}: run `make lock`"
    assert not set(DEV) & set(locked), "a dev tool in the runtime lock"


def test_the_dev_lock_is_the_runtime_lock_plus_the_dev_tools():
    runtime, dev = _locked("requirements.lock"), _locked("requirements-dev.lock")
    for package, version in DEV.items():
        assert [v for v, _ in dev.get(package, [])] == [version], f"{package}=={version}: run `make lock`"
    # Tests run on exactly what ships: every runtime package at the same version, with the same hashes.
    for package, versions in runtime.items():
        assert dev.get(package) == versions, f"{package}: the two locks disagree; run `make lock`"


def test_make_the_ci_and_the_image_install_from_the_locks():
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet --require-hashes -r requirements.lock" in makefile
    assert "pip install --quiet --require-hashes -r requirements-dev.lock" in makefile
    assert makefile.count("pip install --quiet --no-deps -e .") == 2
    assert re.search(r"^run: \$\(RUNTIME_STAMP\)$", makefile, re.M), "make run installs the runtime lock only"
    assert "--upgrade pip" not in makefile
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--require-hashes --no-deps -r requirements.lock" in dockerfile

"""The image built and started for real, without a daemon (podman), on request: ONECREW_TEST_IMAGE=1.

Opt-in because it needs podman (Debian's `podman`) and the base image from a container registry; the structure
of the Dockerfile is checked on every run by tests/unit/test_container_files.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TAG = "localhost/onecrew-chat:test"
BUILD_S = 1800

pytestmark = pytest.mark.skipif(
    os.environ.get("ONECREW_TEST_IMAGE") != "1" or shutil.which("podman") is None,
    reason="opt-in: ONECREW_TEST_IMAGE=1 with podman installed (and the base image reachable)",
)


def _podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def image() -> str:
    built = _podman("build", "--tag", TAG, str(ROOT), timeout=BUILD_S)
    assert built.returncode == 0, built.stderr[-3000:]
    return TAG


def test_the_image_runs_as_its_version_without_an_installer_and_refuses_to_guess(image):
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    shown = _podman("run", "--rm", image, "--version")
    assert shown.returncode == 0 and shown.stdout.strip() == f"onecrew-chat {version}", shown.stderr
    uid = _podman("run", "--rm", "--entrypoint", "id", image, "-u")
    assert uid.stdout.strip() == "10001"
    no_pip = _podman("run", "--rm", "--entrypoint", "python", image, "-c", "import pip")
    assert no_pip.returncode != 0 and "No module named 'pip'" in no_pip.stderr
    refused = _podman("run", "--rm", image)  # no settings: production refuses, no demo on 0.0.0.0
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "production settings are incomplete" in refused.stderr and "eyJ" not in refused.stdout + refused.stderr

"""Dockerfile and compose.yaml hold together (no image can be built here, so their structure is checked)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import yaml

from onecrew_chat.config import setting_names

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ("stream", "migrate", "api", "worker", "webhook")


def _instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def _env_pairs(argument: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in shlex.split(argument))


def test_dockerfile_is_multi_stage_non_root_and_serves_by_default():
    steps = _instructions()
    stages = [argument for name, argument in steps if name == "FROM"]
    assert len(stages) >= 2 and all(" AS " in stage.upper() for stage in stages), stages
    last_from = max(i for i, (name, _) in enumerate(steps) if name == "FROM")
    runtime = steps[last_from:]
    assert any(name == "COPY" and argument.startswith("--from=build") for name, argument in runtime)
    [user] = [argument for name, argument in runtime if name == "USER"]
    assert user.split(":")[0] not in ("root", "0")
    env = {}
    for name, argument in runtime:
        if name == "ENV":
            env.update(_env_pairs(argument))
    assert env["HOST"] == "0.0.0.0" and env["PORT"] == "8000"
    assert set(env) - {"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"} <= set(setting_names().values())
    [expose] = [argument for name, argument in runtime if name == "EXPOSE"]
    assert expose == env["PORT"]
    [healthcheck] = [argument for name, argument in runtime if name == "HEALTHCHECK"]
    assert "/healthz" in healthcheck and "PORT" in healthcheck
    [entrypoint] = [argument for name, argument in runtime if name == "ENTRYPOINT"]
    [command] = [argument for name, argument in runtime if name == "CMD"]
    assert json.loads(entrypoint) == ["onecrew-chat"] and json.loads(command) == ["serve"]
    for name, argument in steps:  # every file the build copies from the context exists
        if name == "COPY" and not argument.startswith("--from"):
            for source in argument.split()[:-1]:
                assert (ROOT / source).exists(), source


def test_dockerignore_keeps_local_state_out_of_the_image():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "var", ".git"} <= set(ignored)


def test_compose_runs_postgres_emulator_migrations_api_and_worker():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", *APP_SERVICES}
    assert services["postgres"]["image"].startswith("postgres:")
    for name in APP_SERVICES:
        assert services[name]["build"] == "." and services[name]["image"] == "onecrew-chat:local"
    assert services["api"]["command"] == ["serve"] and services["worker"]["command"] == ["worker"]
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["stream"]["command"][0] == "stream-emulator"
    known = set(setting_names().values())
    for name in ("migrate", "api", "worker", "webhook"):
        environment = services[name]["environment"]
        assert set(environment) <= known, set(environment) - known
        url = environment["DATABASE_URL"]
        assert re.match(r"postgresql://onecrew:.*@postgres:5432/onecrew_chat", url)
        assert environment["STREAM_BASE_URL"].endswith("http://stream:8900}")
        assert environment["ONECREW_RUN_WORKER"] == "false"
    api = services["api"]
    assert api["environment"]["PORT"] == "8000" and api["environment"]["HOST"] == "0.0.0.0"
    assert any(port.endswith(":8000") and port.startswith("127.0.0.1:") for port in api["ports"])
    for name in ("api", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["stream"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["webhook"]["depends_on"]["api"]["condition"] == "service_healthy"
    worker = services["worker"]
    check = " ".join(worker["healthcheck"]["test"])
    port = worker["environment"]["ONECREW_WORKER_METRICS_PORT"]
    assert f"http://127.0.0.1:{port}/readyz" in check, "the worker is health-checked by its own /readyz"
    assert worker["environment"]["ONECREW_WORKER_METRICS_HOST"] == "0.0.0.0"  # Prometheus scrapes it
    assert "disable" not in worker["healthcheck"]
    stream_flags = " ".join(services["stream"]["command"])
    assert (
        "--host=0.0.0.0" in stream_flags and "--port=8900" in stream_flags and "--state-file=/app/var" in stream_flags
    )
    assert set(compose["volumes"]) == {"pgdata", "emulator"}


def test_the_image_runs_in_production_mode_and_compose_settings_can_work(monkeypatch):
    """The image never falls back to development; compose's local defaults pass every start-up rule (issue 14)."""
    import os

    from onecrew_chat.config import Mode, Settings

    env = {}
    for name, argument in _instructions():
        if name == "ENV":
            env.update(_env_pairs(argument))
    assert env["ONECREW_MODE"] == "production"
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    for name in ("migrate", "api", "worker", "webhook"):
        for variable in list(os.environ):
            if variable.startswith(("ONECREW_", "STREAM_", "DATABASE_URL")):
                monkeypatch.delenv(variable)
        for variable, value in {**services[name]["environment"], "ONECREW_MODE": env["ONECREW_MODE"]}.items():
            monkeypatch.setenv(variable, re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value)))
        assert Settings().mode is Mode.PRODUCTION, name

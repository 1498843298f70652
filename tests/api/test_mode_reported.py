"""/readyz and /metrics say which mode the process runs in and which Stream it talks to, never with a secret."""

from __future__ import annotations

import re

from tests.api.test_health import assert_no_secrets, client_for
from tests.conftest import make_settings
from tests.support import STREAM_KEY, STREAM_SECRET


def _config_info(metrics: str) -> list[tuple[str, str]]:
    return re.findall(r'^onecrew_config_info\{mode="(\w+)",stream="([^"]*)"\} 1\.0$', metrics, re.MULTILINE)


async def test_production_says_production_and_the_stream_base_url(sqlite_only_url, emulator, emulator_server):
    # Credentials in the base URL (some proxies take them there) are never shown.
    base_url = emulator_server.base_url.replace("http://", "http://proxyuser:proxypass@")
    async with client_for(make_settings(sqlite_only_url, base_url)) as client:
        ready = await client.get("/readyz")
        metrics = (await client.get("/metrics")).text
    assert ready.status_code == 200, ready.text
    data = ready.json()["data"]
    assert data["mode"] == "production"
    assert data["stream"]["target"] == emulator_server.base_url.rstrip("/")
    assert _config_info(metrics) == [("production", emulator_server.base_url.rstrip("/"))]
    assert_no_secrets(ready)
    assert "proxypass" not in ready.text + metrics and STREAM_SECRET not in metrics


async def test_development_with_the_embedded_emulator_says_so(sqlite_only_url, emulator, emulator_server):
    settings = make_settings(sqlite_only_url, emulator_server.base_url, mode="development")
    settings = settings.with_embedded_stream(STREAM_KEY, STREAM_SECRET, emulator_server.base_url)
    async with client_for(settings) as client:
        ready = await client.get("/readyz")
        metrics = (await client.get("/metrics")).text
    assert ready.status_code == 200, ready.text
    data = ready.json()["data"]
    assert (data["mode"], data["stream"]["target"]) == ("development", "embedded emulator")
    assert _config_info(metrics) == [("development", "embedded emulator")]

"""The README's settings table and docs/operations.md list exactly the settings the code reads, and other doc facts."""

from __future__ import annotations

import re
from pathlib import Path

import jwt

from onecrew_chat.config import Settings, setting_names
from onecrew_chat.schema_status import shipped_migrations
from onecrew_chat.stream.client import StreamGateway

ROOT = Path(__file__).resolve().parents[2]


def _section(path: Path, heading: str) -> str:
    text = path.read_text()
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _table_variables(section: str) -> set[str]:
    """The backticked UPPER_CASE names in the first column of the section's table rows."""
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    return names


def test_readme_settings_table_lists_exactly_the_settings_read():
    documented = _table_variables(_section(ROOT / "README.md", "Settings"))
    assert documented == set(setting_names().values())


def test_operations_doc_lists_exactly_the_settings_read():
    documented = _table_variables(_section(ROOT / "docs" / "operations.md", "Settings"))
    assert documented == set(setting_names().values())


def test_readme_names_every_shipped_migration():
    layout = _section(ROOT / "README.md", "Layout")
    for migration in shipped_migrations():
        assert re.search(rf"\b{migration.revision}\b", layout), f"README's layout omits migration {migration.revision}"


async def test_stream_token_lifetime_is_ttl_plus_the_sdk_five_seconds():
    # docs/app-endpoints.md: iat = now - 5 s, exp = now + TTL, so exp - iat = TTL + 5.
    gateway = StreamGateway.from_settings(Settings(mode="development", stream_api_key="k", stream_api_secret="s" * 32))
    try:
        token = gateway.create_user_token("onecrew_user_x", 3600)
    finally:
        await gateway.close()
    claims = jwt.decode(token, "s" * 32, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 3605
    assert "`exp − iat` is the TTL + 5 s" in (ROOT / "docs" / "app-endpoints.md").read_text()

"""`make run`'s in-process Stream emulator serves the client SDKs' /connect WebSocket too, so the
app can connect users against a local instance (websockets is a runtime dependency)."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import jwt
from websockets.sync.client import connect

from onecrew_chat.config import Settings


def test_the_embedded_emulator_accepts_a_client_connection(tmp_path):
    from onecrew_chat.cli import embedded

    stream = embedded.start_emulator(Settings(data_dir=tmp_path / "var", _env_file=None))
    try:
        settings = stream.settings
        user_token = jwt.encode({"user_id": "ann"}, settings.stream_api_secret.get_secret_value(), algorithm="HS256")
        query = urlencode(
            {
                "json": json.dumps({"user_id": "ann", "user_details": {"id": "ann"}}),
                "api_key": settings.stream_api_key,
                "authorization": user_token,
                "stream-auth-type": "jwt",
            }
        )
        with connect(stream.base_url.replace("http://", "ws://") + "/connect?" + query) as ws:
            first = json.loads(ws.recv(timeout=10))
        assert first["type"] == "health.check" and first["me"]["id"] == "ann" and first["connection_id"]
    finally:
        stream.stop()

"""RS256 and ES256 JWTs verified with ONECREW_JWT_PUBLIC_KEY, configured from the environment as operators write it."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from onecrew_chat.config import Settings
from tests.conftest import make_settings
from tests.factories import add_user
from tests.support import in_stream


def _keypair(algorithm: str):
    private = rsa.generate_private_key(65537, 2048) if algorithm == "RS256" else ec.generate_private_key(ec.SECP256R1())
    pem = private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, pem.decode()


def _token(private, algorithm: str, sub: str) -> str:
    now = int(time.time())
    return jwt.encode({"sub": sub, "iat": now, "exp": now + 600}, private, algorithm=algorithm)


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
async def test_asymmetric_tokens_from_env_settings(monkeypatch, sqlite_only_url, emulator, emulator_server, algorithm):
    from onecrew_chat.api.app import create_app

    private, public_pem = _keypair(algorithm)
    other_private, _ = _keypair(algorithm)
    monkeypatch.setenv("ONECREW_MODE", "development")  # the two JWT settings alone (production needs every one)
    monkeypatch.setenv("ONECREW_JWT_ALGORITHMS", f"HS256,{algorithm}")  # the documented comma form
    monkeypatch.setenv("ONECREW_JWT_PUBLIC_KEY", public_pem.replace("\n", "\\n"))  # a one-line env file
    from_env = Settings()
    assert from_env.jwt_algorithms == ["HS256", algorithm]
    settings = make_settings(
        sqlite_only_url,
        emulator_server.base_url,
        jwt_algorithms=from_env.jwt_algorithms,
        jwt_public_key=from_env.jwt_public_key,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
            async with app.state.runtime.sessionmaker() as session:
                me = await add_user(session, "Key Holder")

            def bearer(token: str) -> dict[str, str]:
                return {"Authorization": f"Bearer {token}"}

            good = await client.post("/api/chat/token", headers=bearer(_token(private, algorithm, me)))
            assert good.status_code == 200, good.text
            assert good.json()["data"]["user_id"] == f"onecrew_user_{me}"
            await in_stream(emulator, f"onecrew_user_{me}", name="Key Holder")

            forged = await client.post("/api/chat/token", headers=bearer(_token(other_private, algorithm, me)))
            assert forged.status_code == 401 and forged.json()["code"] == "invalid_token"
            # An HS256 token signed with the public key as its secret (the classic confusion) is refused.
            confused = jwt.encode({"sub": me, "exp": int(time.time()) + 60}, "x" * 32, algorithm="HS256")
            assert (await client.post("/api/chat/token", headers=bearer(confused))).status_code == 401

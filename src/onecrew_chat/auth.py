"""Verifying OneCrew backend JWTs and the service token; nothing here touches the database."""

from __future__ import annotations

import hmac
import time
from collections import OrderedDict
from collections.abc import Callable

import jwt

from onecrew_chat.config import Settings
from onecrew_chat.errors import Unauthorized
from onecrew_chat.identity import normalize_uuid

# Tokens verified recently, by their exact text: the app sends the same JWT with every request of a session.
VERIFIED_CACHE_SIZE = 4096


class TokenVerifier:
    """Checks `Authorization: Bearer <JWT>` from the OneCrew backend and returns the user uuid (`sub`).

    A token that verified is remembered (the last VERIFIED_CACHE_SIZE, by their exact text) with its `sub` and
    `exp`, so the app's next requests with it skip the decoding and the signature check; a remembered token still
    stops working the second its `exp` passes. A token that failed is never remembered.
    """

    def __init__(
        self, settings: Settings, *, jwt_secret: str | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self._algorithms = [alg for alg in settings.jwt_algorithms if alg.lower() != "none"]
        secret = jwt_secret or (settings.jwt_secret.get_secret_value() if settings.jwt_secret else None)
        self._hmac_key = secret
        self._public_key = settings.jwt_public_key
        self._clock = clock
        self._verified: OrderedDict[str, tuple[str, float | None]] = OrderedDict()

    def _key_for(self, algorithm: str) -> str:
        if algorithm.startswith("HS") and self._hmac_key:
            return self._hmac_key
        if (algorithm.startswith("RS") or algorithm.startswith("ES")) and self._public_key:
            return self._public_key
        raise Unauthorized()

    def user_id(self, authorization: str | None) -> str:
        """The `sub` of a valid token; 401 `Invalid or expired token` for anything else."""
        if not authorization:
            raise Unauthorized()
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized()
        token = token.strip()
        remembered = self._verified.get(token)
        if remembered is not None:
            sub, expires_at = remembered
            if expires_at is None or self._clock() < expires_at:  # PyJWT's rule: expired once now >= exp
                self._verified.move_to_end(token)
                return sub
            self._verified.pop(token, None)
            raise Unauthorized()
        try:
            header = jwt.get_unverified_header(token)
            algorithm = header.get("alg", "")
            if algorithm not in self._algorithms:
                raise Unauthorized()
            claims = jwt.decode(
                token,
                self._key_for(algorithm),
                algorithms=[algorithm],
                options={"require": ["sub"], "verify_aud": False},
            )
            sub = normalize_uuid(claims["sub"])
            expires_at = float(claims["exp"]) if claims.get("exp") is not None else None
        except Unauthorized:
            raise
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
            raise Unauthorized() from exc
        self._verified[token] = (sub, expires_at)
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return sub


def check_service_token(settings: Settings, authorization: str | None, *, service_token: str | None = None) -> None:
    """Allow the main OneCrew backend's internal calls; 401 for a missing or wrong service token."""
    expected = service_token or (settings.service_token.get_secret_value() if settings.service_token else None)
    scheme, _, presented = (authorization or "").strip().partition(" ")
    if not expected or scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip(), expected):
        raise Unauthorized("Invalid service token", code="invalid_service_token")

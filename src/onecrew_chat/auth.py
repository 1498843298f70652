"""Verifying OneCrew backend JWTs and the service token; nothing here touches the database."""

from __future__ import annotations

import hmac
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import jwt

from onecrew_chat.config import Settings
from onecrew_chat.config_checks import prepared_key
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

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self._algorithms = [alg for alg in settings.jwt_algorithms if alg.lower() != "none"]
        # Each algorithm's keys, current first: the previous secret or public key is accepted too during a rotation.
        self._keys: dict[str, list[Any]] = {}
        for algorithm in self._algorithms:
            candidates = settings.jwt_hmac_secrets if algorithm.startswith("HS") else settings.jwt_public_keys
            self._keys[algorithm] = [prepared for key in candidates if (prepared := prepared_key(algorithm, key))]
        self._clock = clock
        self._verified: OrderedDict[str, tuple[str, float | None]] = OrderedDict()

    def _decode(self, token: str, algorithm: str) -> dict[str, Any]:
        """The claims, verified with the first of the algorithm's keys whose signature matches."""
        keys = self._keys.get(algorithm) or []
        for key in keys[:-1]:
            try:
                return _decode(token, key, algorithm)
            except jwt.InvalidSignatureError:
                continue  # signed with another of the accepted keys (a rotation), or forged: try the next
        if not keys:
            raise Unauthorized()
        return _decode(token, keys[-1], algorithm)

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
            claims = self._decode(token, algorithm)
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


def _suits(algorithm: str, key: str) -> bool:
    """True when `key` can verify `algorithm` (the settings refused a key that suits no listed algorithm)."""
    try:
        jwt.get_algorithm_by_name(algorithm).prepare_key(key)
    except (jwt.InvalidKeyError, ValueError, TypeError, NotImplementedError):
        return False
    return True


def _decode(token: str, key: Any, algorithm: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(
        token, key, algorithms=[algorithm], options={"require": ["sub"], "verify_aud": False}
    )
    return claims


def check_service_token(settings: Settings, authorization: str | None) -> None:
    """Allow the main OneCrew backend's internal calls (the current token or, during a rotation, the previous one);
    401 for a missing or wrong service token."""
    scheme, _, presented = (authorization or "").strip().partition(" ")
    presented_bytes = presented.strip().encode()
    # Compare with every accepted token (no early exit), so the time taken says nothing about which one matched.
    matches = [hmac.compare_digest(presented_bytes, token.encode()) for token in settings.service_tokens]
    if scheme.lower() != "bearer" or not any(matches):
        raise Unauthorized("Invalid service token", code="invalid_service_token")

"""Stream's server-side authentication: api_key, `stream-auth-type: jwt`, an HS256 token
(docs/reference/stream-api.md#authentication)."""

from __future__ import annotations

import time
import warnings

import jwt

from .errors import ACCESS_KEY, AUTHENTICATION, TOKEN_EXPIRED, TOKEN_NOT_VALID_YET, TOKEN_SIGNATURE, StreamError

_CACHE_LIMIT = 1024


class Caller:
    """Who made a request: the server (no user_id claim) or one user."""

    __slots__ = ("user_id", "exp", "nbf")

    def __init__(self, user_id: str | None, exp: float | None, nbf: float | None) -> None:
        self.user_id = user_id
        self.exp = exp
        self.nbf = nbf

    @property
    def is_server(self) -> bool:
        """True for a server token."""
        return self.user_id is None


class Authenticator:
    """Checks the three things every request carries; remembers tokens it has verified."""

    def __init__(self, api_key: str, api_secret: str) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        # Verifying a signature costs more than the rest of a request; SDKs reuse one token.
        self._verified: dict[str, Caller] = {}

    def authenticate(self, api_key: str | None, auth_type: str | None, token: str | None) -> Caller:
        """The caller, or the StreamError Stream answers with."""
        if not api_key:
            raise StreamError(ACCESS_KEY, "api_key not provided")
        if api_key != self.api_key:
            raise StreamError(ACCESS_KEY, "api_key is invalid")
        if auth_type != "jwt":
            raise StreamError(AUTHENTICATION, "stream-auth-type missing or invalid")
        if not token:
            raise StreamError(AUTHENTICATION, "JWTAuth error: token is missing")
        caller = self._verified.get(token)
        if caller is None:
            caller = self._verify(token)
            if len(self._verified) >= _CACHE_LIMIT:
                self._verified.clear()
            self._verified[token] = caller
        now = time.time()
        if caller.exp is not None and now >= caller.exp:
            raise StreamError(TOKEN_EXPIRED, "JWTAuth error: token is expired")
        if caller.nbf is not None and now < caller.nbf:
            raise StreamError(TOKEN_NOT_VALID_YET, "JWTAuth error: token is not valid yet")
        return caller

    def _verify(self, token: str) -> Caller:
        if token.count(".") != 2:
            raise StreamError(AUTHENTICATION, "JWTAuth error: token contains an invalid number of segments")
        try:
            with warnings.catch_warnings():
                # Local secrets are short; Stream's own check is the signature, not key length.
                warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
                claims = jwt.decode(
                    token,
                    self.api_secret,
                    algorithms=["HS256"],
                    options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
                )
        except jwt.InvalidSignatureError:
            raise StreamError(
                TOKEN_SIGNATURE,
                "JWTAuth error: signature is not valid. Make sure the token is created using "
                f'the secret for API key "{self.api_key}"',
            ) from None
        except jwt.InvalidTokenError as exc:
            raise StreamError(AUTHENTICATION, f"JWTAuth error: {exc}") from None
        user_id = claims.get("user_id")
        if user_id is not None and not isinstance(user_id, str):
            raise StreamError(
                AUTHENTICATION,
                "JWTAuth error: json: cannot unmarshal number into Go struct field "
                "StreamJWTClaims.user_id of type string",
            )
        return Caller(user_id, _number(claims.get("exp")), _number(claims.get("nbf")))


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

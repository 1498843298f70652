"""The rules that make a set of settings one that can work, each broken rule one line that names the setting.

- The mode. Development (the embedded fallbacks: a SQLite file, the in-process Stream emulator, demo data, a
  generated JWT secret) runs only when no production setting is given at all, or when ONECREW_MODE=development
  says so. Given any production setting (or ONECREW_MODE=production), every one is needed: one missing is
  refused, never filled in by a fallback.
- JWT verification: every algorithm listed has a key it can verify with, every key given is used by a listed
  algorithm, and an HMAC secret is at least as long as its hash (RFC 7518 section 3.2: 32 bytes for HS256,
  48 for HS384, 64 for HS512).
- In production the service token is at least 32 characters: it is the one secret that lets a caller write the
  directory and act as anyone (/api/internal/*), and it is compared as given, so its length is its strength.
  Development's persisted generated token and the tests' are not held to it.
- URLs are http(s) URLs with a host; a `..._PREVIOUS` value (rotation) only beside its current value.
- ONECREW_* names in the environment that are not settings are reported (a warning: a misspelling is the
  usual cause), with the closest known name. So are STREAM_* names close to one of ours (STREAM_API_SECERT):
  that prefix is shared with other tools (Stream's SDKs, the contract tests' STREAM_CONTRACT_*), so a STREAM_*
  name like none of ours is left alone.

Nothing here imports the settings class (config imports this module): the checks take plain values.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key


class Mode(StrEnum):
    """ONECREW_MODE: which the service runs as; unset, it is decided by whether any production setting is given."""

    DEVELOPMENT = "development"
    PRODUCTION = "production"


MODE_SETTING = "ONECREW_MODE"
# Settings a production deployment gives; a name in parentheses is an alternative to the one before it.
REQUIRED_IN_PRODUCTION: tuple[tuple[str, ...], ...] = (
    ("DATABASE_URL",),
    ("STREAM_API_KEY",),
    ("STREAM_API_SECRET",),
    ("ONECREW_JWT_SECRET", "ONECREW_JWT_PUBLIC_KEY"),
    ("ONECREW_SERVICE_TOKEN",),
)
# Any of these given means "this is meant as production" unless ONECREW_MODE=development says otherwise.
PRODUCTION_SETTINGS = (
    "DATABASE_URL",
    "STREAM_API_KEY",
    "STREAM_API_SECRET",
    "STREAM_BASE_URL",
    "ONECREW_JWT_SECRET",
    "ONECREW_JWT_SECRET_PREVIOUS",
    "ONECREW_JWT_PUBLIC_KEY",
    "ONECREW_JWT_PUBLIC_KEY_PREVIOUS",
    "ONECREW_SERVICE_TOKEN",
    "ONECREW_SERVICE_TOKEN_PREVIOUS",
)
# Names under these prefixes belong to the test suite (e.g. ONECREW_TEST_POSTGRES_URL), not to the service.
TEST_PREFIXES = ("ONECREW_TEST_", "STREAM_CONTRACT_")
# Our own prefix: every name under it should be a setting. Stream's: only a name close to one of ours is suspect.
OWN_PREFIX, STREAM_PREFIX = "ONECREW_", "STREAM_"
# RFC 7518 section 3.2: an HMAC key at least as long as the hash output.
HMAC_MIN_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
SERVICE_TOKEN_MIN_CHARS = 32


def resolve_mode(requested: Mode | None, given: Iterable[str]) -> Mode:
    """The mode named, else production when any production setting is given, else development."""
    if requested is not None:
        return requested
    return Mode.PRODUCTION if any(name in PRODUCTION_SETTINGS for name in given) else Mode.DEVELOPMENT


def missing_in_production(requested: Mode | None, given: Iterable[str]) -> str | None:
    """The one line saying which production settings are missing, or None when none is."""
    present = set(given)
    missing = [
        " (or ".join(group) + ")" * (len(group) - 1)
        for group in REQUIRED_IN_PRODUCTION
        if not any(name in present for name in group)
    ]
    if not missing:
        return None
    if requested is Mode.PRODUCTION:
        why = f"{MODE_SETTING}=production"
    else:
        why = "given: " + ", ".join(name for name in PRODUCTION_SETTINGS if name in present)
    return (
        f"production settings are incomplete: missing {', '.join(missing)} ({why}); set them, or set "
        f"{MODE_SETTING}=development to run with the development fallbacks (SQLite file, Stream emulator, demo data)"
    )


def http_url_problem(value: str) -> str | None:
    """Why `value` is not an http(s) URL with a host (never echoing a password), or None."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - reading it checks the port
    except ValueError as exc:
        return f"is not a URL ({exc})"
    if parts.scheme.lower() not in ("http", "https"):
        return f"must be an http:// or https:// URL, got {value.split(':', 1)[0][:20]!r}"
    if not parts.hostname:
        return "must name a host, e.g. https://chat.stream-io-api.com"
    return None


def shown_url(value: str) -> str:
    """A URL without user, password, query or fragment: safe to print, log or label a metric with."""
    parts = urlsplit(value)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path.rstrip('/')}"


@dataclass(frozen=True)
class JwtKeys:
    """What JWT verification is given: the algorithms, the HMAC secrets and the PEM public keys (each by name)."""

    algorithms: Sequence[str]
    secrets: Mapping[str, str]  # setting name -> secret (current first)
    public_keys: Mapping[str, str]  # setting name -> PEM (current first)
    secret_may_be_generated: bool  # development: a missing HMAC secret is generated
    absence_reported: bool = False  # production with neither a secret nor a key: missing_in_production said it


def jwt_problems(keys: JwtKeys) -> list[str]:
    """One line per way these JWT settings cannot work."""
    problems: list[str] = []
    hmac_algs = [alg for alg in keys.algorithms if alg in HMAC_MIN_BYTES]
    key_algs = [alg for alg in keys.algorithms if alg not in HMAC_MIN_BYTES]
    listed = ",".join(keys.algorithms)
    if hmac_algs:
        need = max(HMAC_MIN_BYTES[alg] for alg in hmac_algs)
        strongest = max(hmac_algs, key=HMAC_MIN_BYTES.__getitem__)
        for name, secret in keys.secrets.items():
            size = len(secret.encode("utf-8"))
            if size < need:
                problems.append(
                    f"{name}: is {size} bytes; {strongest} needs at least {need} (RFC 7518 section 3.2), "
                    "e.g. `openssl rand -base64 48`"
                )
        if not keys.secrets and not (keys.secret_may_be_generated or keys.absence_reported):
            problems.append(
                f"ONECREW_JWT_ALGORITHMS: names {', '.join(hmac_algs)} but ONECREW_JWT_SECRET is not set "
                "(set it, or list only the algorithms of ONECREW_JWT_PUBLIC_KEY)"
            )
    elif keys.secrets:
        problems.append(
            f"{next(iter(keys.secrets))}: is set but ONECREW_JWT_ALGORITHMS ({listed}) names no HMAC algorithm "
            "(HS256, HS384, HS512) to use it with"
        )
    usable: dict[str, list[str]] = {alg: [] for alg in key_algs}
    for name, pem in keys.public_keys.items():
        kind = _key_kind(pem)
        if kind is None:
            problems.append(f"{name}: is not a readable PEM public key")
            continue
        suits = [alg for alg in key_algs if _suits(alg, pem)]
        for alg in suits:
            usable[alg].append(name)
        if not suits:
            problems.append(
                f"{name}: is {kind}, which none of ONECREW_JWT_ALGORITHMS ({listed}) verifies "
                f"({_algorithms_for(kind)} would)"
            )
    for alg, names in usable.items():
        if (
            not names
            and not keys.absence_reported
            and not any(p.startswith("ONECREW_JWT_PUBLIC_KEY") for p in problems)
        ):
            given = "is not set" if not keys.public_keys else "does not suit it"
            problems.append(f"ONECREW_JWT_ALGORITHMS: names {alg} but ONECREW_JWT_PUBLIC_KEY {given}")
    return problems


def _key_kind(pem: str) -> str | None:
    try:
        key = load_pem_public_key(pem.encode("ascii"))
    except (ValueError, TypeError, UnicodeEncodeError):
        return None
    if isinstance(key, rsa.RSAPublicKey):
        return f"an RSA key ({key.key_size} bits)"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"an EC key on {key.curve.name}"
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return "an EdDSA key"
    return f"a {type(key).__name__}"


def _algorithms_for(kind: str) -> str:
    if kind.startswith("an RSA"):
        return "RS256 or PS256"
    if "secp256r1" in kind:
        return "ES256"
    if "secp384r1" in kind:
        return "ES384"
    if "secp521r1" in kind:
        return "ES512"
    if "secp256k1" in kind:
        return "ES256K"
    return "EdDSA" if "EdDSA" in kind else "no algorithm PyJWT knows"


def prepared_key(algorithm: str, key: str) -> Any:
    """`key` as PyJWT verifies `algorithm` with it (bytes or a public key object), or None when it cannot."""
    try:
        return jwt.get_algorithm_by_name(algorithm).prepare_key(key)
    except (jwt.InvalidKeyError, ValueError, TypeError, NotImplementedError):
        return None


def _suits(algorithm: str, pem: str) -> bool:
    return prepared_key(algorithm, pem) is not None


def service_token_problem(token: str | None) -> str | None:
    """Why a production service token is too short to be one (never echoing it), or None.

    Only the current token: the previous one is accepted beside it while the main backend switches over, so
    refusing a short previous one would block the very rotation that replaces it.
    """
    if token is None or len(token) >= SERVICE_TOKEN_MIN_CHARS:
        return None
    return (
        f"ONECREW_SERVICE_TOKEN: is {len(token)} characters; production needs at least {SERVICE_TOKEN_MIN_CHARS} "
        "(it lets a caller act as anyone through /api/internal), e.g. `openssl rand -base64 48`"
    )


def rotation_problems(pairs: Mapping[str, tuple[bool, bool]]) -> list[str]:
    """`NAME_PREVIOUS` set without NAME: `pairs` maps NAME to (current given, previous given)."""
    return [
        f"{name}_PREVIOUS: is set but {name} is not; the previous value is accepted beside the current one, "
        "not instead of it"
        for name, (current, previous) in pairs.items()
        if previous and not current
    ]


def unknown_setting_warnings(environ: Mapping[str, str], known: Iterable[str]) -> list[str]:
    """One line per ONECREW_* variable that is not a setting, with the closest known name when there is one, and
    per STREAM_* variable that is not a setting but close to one (a likely misspelling, named)."""
    names = sorted(set(known))
    lines = []
    for variable in sorted(environ):
        upper = variable.upper()
        if upper in names or upper.startswith(TEST_PREFIXES) or not upper.startswith((OWN_PREFIX, STREAM_PREFIX)):
            continue
        close = difflib.get_close_matches(upper, names, n=1, cutoff=0.75)
        if close:
            hint = f"did you mean {close[0]}?"
        elif upper.startswith(OWN_PREFIX):
            hint = "see docs/operations.md for the settings"
        else:
            continue
        lines.append(f"{variable} is not a onecrew-chat setting and is ignored; {hint}")
    return lines

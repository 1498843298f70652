"""DATABASE_URL as operators write it (libpq's URL and parameters), turned into the async drivers' terms.

Managed PostgreSQL hands out URLs such as `postgres://u:p@host:5432/db?sslmode=require&sslrootcert=ca.pem`.
asyncpg takes none of those query parameters as keyword arguments, so they are sorted here:

- TLS and session parameters asyncpg reads from a DSN itself (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`,
  `sslcrl`, `sslpassword`, `ssl_min_protocol_version`, `ssl_max_protocol_version`, `sslnegotiation`,
  `target_session_attrs`, `krbsrvname`, `gsslib`, `passfile`) are passed on in a host-less DSN, so asyncpg
  applies libpq's rules to them;
- `connect_timeout` becomes asyncpg's connect `timeout` (seconds; 0 means asyncpg's default of 60);
- `application_name` and `options` (e.g. `-c search_path=app`) are sent as start-up parameters (server_settings);
- anything else is refused, naming the parameter, rather than failing at the first connection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.engine import URL, make_url

_SCHEMES = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "postgresql+psycopg": "postgresql+asyncpg",
}
DSN_PARAMETERS = (
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslcrl",
    "sslpassword",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "sslnegotiation",
    "target_session_attrs",
    "krbsrvname",
    "gsslib",
    "passfile",
)
SERVER_PARAMETERS = ("application_name", "options")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
KNOWN_PARAMETERS = (*DSN_PARAMETERS, "connect_timeout", *SERVER_PARAMETERS)


@dataclass(frozen=True)
class DriverTarget:
    """The SQLAlchemy async URL (no libpq query left in it) and the driver's connect arguments."""

    url: URL
    connect_args: dict[str, Any] = field(default_factory=dict)

    @property
    def is_sqlite(self) -> bool:
        """True for the aiosqlite driver."""
        return self.url.drivername.startswith("sqlite")


def scheme_of(url: str) -> str:
    """The part before `://` (what an operator typed), lowercased."""
    return url.split("://", 1)[0].lower() if "://" in url else ""


def check_database_url(url: str) -> str:
    """`url` if it is a sqlite:// or postgres(ql):// URL whose parameters are understood; ValueError saying why not."""
    scheme = scheme_of(url)
    if scheme not in _SCHEMES:
        shown = scheme or url.split(":", 1)[0][:20]
        raise ValueError(f"must be a postgresql://, postgres:// or sqlite:/// URL, got scheme {shown!r}")
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy's ArgumentError, a bad port, ...: say it without echoing the password
        raise ValueError(f"is not a valid URL ({type(exc).__name__})") from None
    if scheme.startswith("postgres"):
        _postgres_parameters(dict(parsed.query))
    return url


def _postgres_parameters(query: dict[str, Any]) -> tuple[dict[str, str], float | None, dict[str, str]]:
    """(DSN parameters, connect timeout, server settings) from the URL's query; ValueError on anything unknown."""
    dsn: dict[str, str] = {}
    server: dict[str, str] = {}
    timeout: float | None = None
    for name, value in query.items():
        if isinstance(value, tuple):  # ?a=1&a=2
            raise ValueError(f"parameter {name!r} is given more than once")
        if name in DSN_PARAMETERS:
            if name == "sslmode" and value not in SSL_MODES:
                raise ValueError(f"sslmode must be one of {', '.join(SSL_MODES)}, got {value!r}")
            dsn[name] = value
        elif name == "connect_timeout":
            try:
                seconds = int(value)
            except ValueError:
                raise ValueError(f"connect_timeout must be whole seconds, got {value!r}") from None
            if seconds < 0:
                raise ValueError(f"connect_timeout must not be negative, got {seconds}")
            timeout = float(seconds) if seconds else None
        elif name in SERVER_PARAMETERS:
            server[name] = value
        else:
            raise ValueError(f"unknown parameter {name!r} (understood: {', '.join(KNOWN_PARAMETERS)})")
    return dsn, timeout, server


def to_async_url(url: str) -> str:
    """Map `sqlite:///x` and `postgres(ql)://...` to the aiosqlite and asyncpg dialects (the query is kept)."""
    check_database_url(url)
    scheme, rest = url.split("://", 1)
    return f"{_SCHEMES[scheme.lower()]}://{rest}"


def driver_target(url: str, *, server_settings: dict[str, str] | None = None) -> DriverTarget:
    """The URL SQLAlchemy gets and the asyncpg arguments the libpq parameters (and `server_settings`) become."""
    parsed = make_url(to_async_url(url))
    if parsed.drivername.startswith("sqlite"):
        return DriverTarget(parsed)
    dsn, timeout, server = _postgres_parameters(dict(parsed.query))
    connect_args: dict[str, Any] = {}
    if dsn:
        # asyncpg merges a DSN with its keyword arguments: host, user and the rest come from the URL as usual.
        connect_args["dsn"] = "postgresql://?" + urlencode(dsn)
    if timeout is not None:
        connect_args["timeout"] = timeout
    settings = {**server, **(server_settings or {})}
    if settings:
        connect_args["server_settings"] = settings
    return DriverTarget(parsed.set(query={}), connect_args)

"""onecrew-chat: OneCrew's chat backend that mirrors identities into Stream Chat and serves /api/chat/*.

`version()` is the version of this installation, from one source: pyproject.toml's `version`, read from the
installed metadata. `onecrew-chat --version`, /healthz (API and worker), `status`, the first log line of serve and
worker, the `onecrew_build_info` metric and the OpenAPI document all show it; nothing else spells the version.
It is read on first use (importlib.metadata costs every process that imports the package, `--help` included).
"""

import functools

DISTRIBUTION = "onecrew-chat"
# Shown when the code runs from a source tree that was never installed (no metadata to read).
UNKNOWN_VERSION = "0+unknown"


@functools.cache
def version() -> str:
    """The installed distribution's version, e.g. "0.2.0"."""
    from importlib import metadata

    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return UNKNOWN_VERSION


def __getattr__(name: str) -> str:
    if name == "__version__":
        return version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

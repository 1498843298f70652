"""onecrew-chat: OneCrew's chat backend that mirrors identities into Stream Chat and serves /api/chat/*.

`version()` is the version of this installation, from one source: pyproject.toml's `version`, read from the
installed metadata. `onecrew-chat --version`, /healthz (API and worker), `status`, the first log line of serve and
worker, the `onecrew_build_info` metric and the OpenAPI document all show it; nothing else spells the version.
"""

import functools
from importlib import metadata

DISTRIBUTION = "onecrew-chat"
# Shown when the code runs from a source tree that was never installed (no metadata to read).
UNKNOWN_VERSION = "0+unknown"


@functools.cache
def version() -> str:
    """The installed distribution's version, e.g. "0.2.0"."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return UNKNOWN_VERSION


__version__ = version()

"""The version of this installation, from one source: pyproject.toml's `version`, read from the installed metadata.

`onecrew-chat --version`, /healthz (API and worker), `status`, the first log line of serve and worker, the
`onecrew_build_info` metric and the OpenAPI document all show this value; nothing else spells the version.
"""

from __future__ import annotations

import functools
from importlib import metadata

DISTRIBUTION = "onecrew-chat"
# Shown when the code runs from a source tree that was never installed (no metadata to read).
UNKNOWN = "0+unknown"


@functools.cache
def version() -> str:
    """The installed distribution's version, e.g. "0.2.0"."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return UNKNOWN

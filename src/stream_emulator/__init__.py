"""A local, wire-compatible Stream Chat for tests, benchmarks and offline development.

It serves both of Stream's wire dialects over one state, checks auth like Stream, answers with
Stream's error envelopes, and takes injected faults. It imports nothing from onecrew_chat.

The names below load on first use (PEP 562 `__getattr__`): `onecrew-chat` mounts `stream_emulator.cli` at every
start, and importing this package must not bring the emulator's server, state and FastAPI app with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import operations
    from .app import EmulatorApp, create_app
    from .emulator import Emulator
    from .faults import Faults
    from .requestlog import RequestRecord
    from .server import EmulatorServer
    from .webhooks import WebhookDelivery, sign

# Each exported name -> the module that defines it ("operations" is that module itself).
_HOMES = {
    "Emulator": ".emulator",
    "EmulatorApp": ".app",
    "EmulatorServer": ".server",
    "Faults": ".faults",
    "RequestRecord": ".requestlog",
    "WebhookDelivery": ".webhooks",
    "create_app": ".app",
    "operations": ".operations",
    "sign": ".webhooks",
}

__all__ = [
    "Emulator",
    "EmulatorApp",
    "EmulatorServer",
    "Faults",
    "RequestRecord",
    "WebhookDelivery",
    "create_app",
    "operations",
    "sign",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(home, __name__)
    value = module if name == "operations" else getattr(module, name)
    globals()[name] = value  # looked up once
    return value

"""A local, wire-compatible Stream Chat for tests, benchmarks and offline development.

It serves both of Stream's wire dialects over one state, checks auth like Stream, answers with
Stream's error envelopes, and takes injected faults. It imports nothing from onecrew_chat.
"""

from . import operations
from .app import EmulatorApp, create_app
from .emulator import Emulator
from .faults import Faults
from .requestlog import RequestRecord
from .server import EmulatorServer
from .webhooks import WebhookDelivery, sign

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

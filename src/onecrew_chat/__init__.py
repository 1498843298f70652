"""onecrew-chat: OneCrew's chat backend that mirrors identities into Stream Chat and serves /api/chat/*."""

__version__ = "0.1.0"

"""onecrew-chat: OneCrew's chat backend that mirrors identities into Stream Chat and serves /api/chat/*."""

from onecrew_chat.version import version

__version__ = version()

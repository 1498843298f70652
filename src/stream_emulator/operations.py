"""Stream's own operation names, as they appear in its error messages, with their rate limits."""

UPDATE_USERS = "UpdateUsers"
UPDATE_USERS_PARTIAL = "UpdateUsersPartial"
QUERY_USERS = "QueryUsers"
DEACTIVATE_USER = "DeactivateUser"
DEACTIVATE_USERS = "DeactivateUsers"
REACTIVATE_USER = "ReactivateUser"
REACTIVATE_USERS = "ReactivateUsers"
DELETE_USER = "DeleteUser"
DELETE_USERS = "DeleteUsers"
RESTORE_USERS = "RestoreUsers"
GET_TASK = "GetTask"
GET_OR_CREATE_CHANNEL = "GetOrCreateChannel"
UPDATE_CHANNEL = "UpdateChannel"
UPDATE_CHANNEL_PARTIAL = "UpdateChannelPartial"
DELETE_CHANNEL = "DeleteChannel"
DELETE_CHANNELS = "DeleteChannels"
QUERY_CHANNELS = "QueryChannels"
QUERY_MEMBERS = "QueryMembers"
SEND_MESSAGE = "SendMessage"
SEND_REACTION = "SendReaction"
MARK_READ = "MarkRead"
UNREAD_COUNTS = "UnreadCounts"
UNREAD_COUNTS_BATCH = "UnreadCountsBatch"
GET_REPLIES = "GetReplies"
GET_APP = "GetApp"
UPDATE_APP = "UpdateApp"
GET_PUSH_TEMPLATES = "GetPushTemplates"
UPSERT_PUSH_TEMPLATE = "UpsertPushTemplate"
GET_MESSAGE = "GetMessage"
UPDATE_MESSAGE = "UpdateMessage"
UPDATE_MESSAGE_PARTIAL = "UpdateMessagePartial"
DELETE_MESSAGE = "DeleteMessage"
DELETE_REACTION = "DeleteReaction"
SEND_EVENT = "SendEvent"
MARK_UNREAD = "MarkUnread"
STOP_WATCHING_CHANNEL = "StopWatchingChannel"
CREATE_DEVICE = "CreateDevice"
LIST_DEVICES = "ListDevices"
DELETE_DEVICE = "DeleteDevice"
UPLOAD_IMAGE = "UploadImage"
UPLOAD_FILE = "UploadFile"
DELETE_IMAGE = "DeleteImage"
DELETE_FILE = "DeleteFile"
MARK_DELIVERED = "MarkDelivered"
# Not an operation of Stream's: what the request log calls a path the emulator does not serve.
UNKNOWN = "Unknown"

ALL = (
    UPDATE_USERS,
    UPDATE_USERS_PARTIAL,
    QUERY_USERS,
    DEACTIVATE_USER,
    DEACTIVATE_USERS,
    REACTIVATE_USER,
    REACTIVATE_USERS,
    DELETE_USER,
    DELETE_USERS,
    RESTORE_USERS,
    GET_TASK,
    GET_OR_CREATE_CHANNEL,
    UPDATE_CHANNEL,
    UPDATE_CHANNEL_PARTIAL,
    DELETE_CHANNEL,
    DELETE_CHANNELS,
    QUERY_CHANNELS,
    QUERY_MEMBERS,
    SEND_MESSAGE,
    SEND_REACTION,
    MARK_READ,
    UNREAD_COUNTS,
    UNREAD_COUNTS_BATCH,
    GET_REPLIES,
    GET_APP,
    UPDATE_APP,
    GET_PUSH_TEMPLATES,
    UPSERT_PUSH_TEMPLATE,
    GET_MESSAGE,
    UPDATE_MESSAGE,
    UPDATE_MESSAGE_PARTIAL,
    DELETE_MESSAGE,
    DELETE_REACTION,
    SEND_EVENT,
    MARK_UNREAD,
    STOP_WATCHING_CHANNEL,
    CREATE_DEVICE,
    LIST_DEVICES,
    DELETE_DEVICE,
    UPLOAD_IMAGE,
    UPLOAD_FILE,
    DELETE_IMAGE,
    DELETE_FILE,
    MARK_DELIVERED,
)

# Operations that change state: the state file is rewritten after each successful one.
MUTATING = frozenset(
    {
        UPDATE_USERS,
        UPDATE_USERS_PARTIAL,
        DEACTIVATE_USER,
        DEACTIVATE_USERS,
        REACTIVATE_USER,
        REACTIVATE_USERS,
        DELETE_USER,
        DELETE_USERS,
        RESTORE_USERS,
        GET_OR_CREATE_CHANNEL,
        UPDATE_CHANNEL,
        UPDATE_CHANNEL_PARTIAL,
        DELETE_CHANNEL,
        DELETE_CHANNELS,
        SEND_MESSAGE,
        SEND_REACTION,
        MARK_READ,
        UPDATE_APP,
        UPSERT_PUSH_TEMPLATE,
        UPDATE_MESSAGE,
        UPDATE_MESSAGE_PARTIAL,
        DELETE_MESSAGE,
        DELETE_REACTION,
        MARK_UNREAD,
        CREATE_DEVICE,
        DELETE_DEVICE,
    }
)

# A user token may call these; everything else needs the server token
# (docs/reference/stream-api.md#authentication).
CLIENT_ALLOWED = frozenset(
    {
        QUERY_USERS,
        UPDATE_USERS_PARTIAL,
        GET_OR_CREATE_CHANNEL,
        UPDATE_CHANNEL,
        UPDATE_CHANNEL_PARTIAL,
        QUERY_CHANNELS,
        QUERY_MEMBERS,
        SEND_MESSAGE,
        SEND_REACTION,
        MARK_READ,
        UNREAD_COUNTS,
        GET_REPLIES,
        GET_APP,
        DELETE_CHANNEL,
        GET_MESSAGE,
        UPDATE_MESSAGE,
        UPDATE_MESSAGE_PARTIAL,
        DELETE_MESSAGE,
        DELETE_REACTION,
        SEND_EVENT,
        MARK_UNREAD,
        STOP_WATCHING_CHANNEL,
        CREATE_DEVICE,
        LIST_DEVICES,
        DELETE_DEVICE,
        UPLOAD_IMAGE,
        UPLOAD_FILE,
        DELETE_IMAGE,
        DELETE_FILE,
        MARK_DELIVERED,
    }
)

# Per-minute limits: Stream's documented defaults ("Rate Limits by Endpoint", per minute and per
# platform). Operations the table does not list get DEFAULT_RATE_LIMIT.
RATE_LIMITS = {
    GET_OR_CREATE_CHANNEL: 10000,
    QUERY_CHANNELS: 10000,
    GET_APP: 10000,
    MARK_READ: 10000,
    QUERY_USERS: 1000,
    SEND_MESSAGE: 1000,
    GET_REPLIES: 1000,
    UPDATE_USERS: 300,
    UPDATE_USERS_PARTIAL: 300,
    UPDATE_CHANNEL: 300,
    UPDATE_CHANNEL_PARTIAL: 300,
    QUERY_MEMBERS: 300,
    DEACTIVATE_USER: 60,
    DEACTIVATE_USERS: 60,
    REACTIVATE_USER: 60,
    REACTIVATE_USERS: 60,
    DELETE_USER: 60,
    DELETE_USERS: 60,
    DELETE_CHANNEL: 60,
    DELETE_CHANNELS: 60,
    UPDATE_APP: 60,
}
DEFAULT_RATE_LIMIT = 1000

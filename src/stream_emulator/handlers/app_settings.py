"""App settings: get and update, including the webhook URL and the event hooks.

`event_hooks` (Stream's multi-event hooks): several targets, each with its own `event_types` (empty: every event).
An UpdateApp that names `event_hooks` replaces the whole list as Stream documents it: a hook whose id is known is
updated, one without an id (or with a new one) is created under that id or a new uuid, and a hook left out is
deleted. Stream rolls multi-event hooks out app by app; an app not migrated yet has only the single `webhook_url`.
The emulator plays such an app when its app settings hold `MULTI_EVENT_HOOKS: False` (set from Python, or with
`stream-emulator --no-event-hooks`): GET /app then shows an empty `event_hooks` (getstream's AppResponseFields
requires the field) and an UpdateApp naming them is refused (code 4; the wording is the emulator's: what Stream
answers there is not documented, so clients should read the settings back rather than rely on an error).
"""

from __future__ import annotations

import uuid

from .. import events
from ..call import Call, drop_nulls
from ..channel_types import BUILT_IN
from ..clock import now_ns
from ..errors import input_error

# Every field getstream's AppResponseFields requires, with the values of a fresh app.
_DEFAULTS = {
    "id": 1,
    "name": "stream-emulator",
    "organization": "stream-emulator",
    "placement": "",
    "allow_multi_user_devices": True,
    "async_url_enrich_enabled": False,
    "auto_translation_enabled": False,
    "campaign_enabled": False,
    "cdn_expiration_seconds": 0,
    "custom_action_handler_url": "",
    "disable_auth_checks": False,
    "disable_permissions_checks": False,
    "enforce_unique_usernames": "no",
    "feed_audit_logs_enabled": False,
    "guest_user_creation_disabled": False,
    "image_moderation_enabled": False,
    "max_aggregated_activities_length": 0,
    "member_custom_on_mentioned_users_enabled": False,
    "member_custom_on_messages_enabled": False,
    "member_custom_on_typing_events_enabled": False,
    "moderation_audio_call_moderation_enabled": False,
    "moderation_enabled": False,
    "moderation_keyframe_video_enabled": False,
    "moderation_llm_configurability_enabled": False,
    "moderation_multitenant_blocklist_enabled": False,
    "moderation_video_call_moderation_enabled": False,
    "moderation_webhook_url": "",
    "multi_tenant_enabled": False,
    "permission_version": "v2",
    "reminders_interval": 0,
    "sns_key": "",
    "sns_secret": "",
    "sns_topic_arn": "",
    "sqs_key": "",
    "sqs_secret": "",
    "sqs_url": "",
    "suspended": False,
    "suspended_explanation": "",
    "use_hook_v2": False,
    "user_response_time_enabled": False,
    "webhook_url": "",
    "event_hooks": [],
    "user_search_disallowed_roles": [],
    "webhook_events": [],
    "call_types": {},
    "grants": {},
    "policies": {},
    "file_upload_config": {"size_limit": 0},
    "image_upload_config": {"size_limit": 0},
    "push_notifications": {
        "offline_only": False,
        "version": "v2",
        "apn": {"development": False, "enabled": False},
        "firebase": {"enabled": False},
        "huawei": {"enabled": False},
        "xiaomi": {"enabled": False},
    },
}


MULTI_EVENT_HOOKS = "_multi_event_hooks"  # an emulator switch kept with the app settings, never shown
HOOK_TYPES = ("webhook", "sqs", "sns", "pending_message")


def event_hooks_available(app: dict) -> bool:
    """Whether the app has Stream's multi-event hooks (the default here)."""
    return app.get(MULTI_EVENT_HOOKS, True) is not False


def get_app(call: Call) -> dict:
    """GET /app."""
    app = dict(_DEFAULTS)
    app.update({k: v for k, v in call.state.app.items() if not k.startswith("_")})
    if not event_hooks_available(call.state.app):
        app["event_hooks"] = []  # getstream's AppResponseFields requires the field
    else:
        app["event_hooks"] = [
            dict(h, created_at=call.dialect.time(h["created_at"]), updated_at=call.dialect.time(h["updated_at"]))
            for h in app.get("event_hooks") or []
        ]
    app["channel_configs"] = {t: call.dialect.config(t) for t in sorted(BUILT_IN)}
    return {"app": app}


def update_app(call: Call) -> dict:
    """PATCH /app: store the given settings; webhook_url must be http(s) or empty."""
    settings = drop_nulls(call.body)
    url = settings.get("webhook_url")
    if url is not None and url != "" and not str(url).startswith(("http://", "https://")):
        raise input_error("webhook_url must be a valid http or https URL", webhook_url="invalid")
    wanted = settings.get("webhook_events")
    if wanted is not None and not isinstance(wanted, list):
        raise input_error("webhook_events must be a list", webhook_events="invalid")
    unknown = [e for e in wanted or [] if e not in events.EVENT_TYPES]
    if unknown:
        raise input_error(
            f"webhook_events has unknown event types: {', '.join(map(str, unknown))}; "
            "use the event types Stream sends (message.new, message.read, ...)",
            webhook_events="unknown event type",
        )
    if "event_hooks" in settings:
        settings["event_hooks"] = _event_hooks(call, settings["event_hooks"])
    call.state.app.update({k: v for k, v in settings.items() if not k.startswith("_")})
    return {}


def _event_hooks(call: Call, hooks: object) -> list[dict]:
    """The new list of hooks: validated, known ids updated (created_at kept), new ones created."""
    if not event_hooks_available(call.state.app):
        raise input_error(
            "event_hooks are not enabled for this app: it still has a single webhook_url", event_hooks="unavailable"
        )
    if not isinstance(hooks, list):
        raise input_error("event_hooks must be a list", event_hooks="invalid")
    known = {h["id"]: h for h in call.state.app.get("event_hooks") or []}
    now, result = now_ns(), []
    for index, raw in enumerate(hooks):
        hook = drop_nulls(raw) if isinstance(raw, dict) else None
        if hook is None:
            raise input_error(f"event_hooks[{index}] must be an object", event_hooks="invalid")
        if hook.get("hook_type") not in HOOK_TYPES:
            raise input_error(
                f"event_hooks[{index}].hook_type must be one of {', '.join(HOOK_TYPES)}", event_hooks="invalid"
            )
        url = hook.get("webhook_url")
        if hook["hook_type"] in ("webhook", "pending_message") and not str(url or "").startswith(
            ("http://", "https://")
        ):
            raise input_error(
                f"event_hooks[{index}].webhook_url must be a valid http or https URL", event_hooks="invalid"
            )
        types = hook.get("event_types", [])
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            raise input_error(f"event_hooks[{index}].event_types must be a list of strings", event_hooks="invalid")
        hook_id = str(hook.get("id") or uuid.uuid4())
        old = known.get(hook_id)
        hook.update(
            id=hook_id,
            enabled=bool(hook.get("enabled", True)),
            event_types=list(types),
            created_at=old["created_at"] if old else now,  # nanoseconds; GET /app writes them in its dialect
            updated_at=now,
        )
        result.append(hook)
    return result


PUSH_PROVIDER_TYPES = ("apn", "firebase", "huawei", "xiaomi")


def get_push_templates(call: Call) -> dict:
    """GET /chat/push_templates?push_provider_type=&push_provider_name=: the stored templates of that provider."""
    provider_type = call.query.get("push_provider_type")
    if provider_type not in PUSH_PROVIDER_TYPES:
        raise input_error("push_provider_type is a required field", push_provider_type="required")
    name = call.query.get("push_provider_name") or ""
    stored = call.state.app.get("push_templates") or []
    return {
        "templates": [
            t
            for t in stored
            if t["push_provider_type"] == provider_type and (not name or t.get("push_provider_name", "") == name)
        ]
    }


def upsert_push_template(call: Call) -> dict:
    """POST /chat/push_templates: enable (and template) push for one event type and provider (push v3)."""
    body = drop_nulls(call.body)
    event_type, provider_type = body.get("event_type"), body.get("push_provider_type")
    if event_type not in ("message.new", "message.updated", "reaction.new", "notification.reminder_due"):
        raise input_error(
            "event_type must be one of message.new, message.updated, reaction.new, notification.reminder_due",
            event_type="invalid",
        )
    if provider_type not in PUSH_PROVIDER_TYPES:
        raise input_error("push_provider_type is a required field", push_provider_type="required")
    template = {
        "event_type": event_type,
        "push_provider_type": provider_type,
        "push_provider_name": body.get("push_provider_name", ""),
        "enable_push": bool(body.get("enable_push", False)),
        "template": body.get("template", ""),
    }
    key = (event_type, provider_type, template["push_provider_name"])
    stored = [
        t
        for t in call.state.app.get("push_templates") or []
        if (t["event_type"], t["push_provider_type"], t["push_provider_name"]) != key
    ]
    call.state.app["push_templates"] = [*stored, template]
    return {"template": template}

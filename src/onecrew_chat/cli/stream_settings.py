"""`onecrew-chat stream configure`: the Stream app settings this service needs, shown as a difference, then applied.

- Webhooks. Stream's multi-event hooks (`event_hooks`: several targets, each with its own event types) let this
  service add a webhook target of its own, with only the events it applies, while every other target (the old
  backend's, with `reaction.new` among its events) stays exactly as it is. UpdateApp replaces the whole hook list,
  so the command sends back every other hook as Stream showed it, plus ours (a fixed id, so it is found again
  whatever its URL). `--roll-back` sends the list without ours. Stream moves apps to multi-event hooks app by app:
  on an app not moved yet there is one `webhook_url`; the command takes it only when it is free (or already
  ours), and otherwise leaves it, says so, and changes it only when told (`--take-webhook-url`). Whether the app
  has event hooks is known only by trying: the settings are read back after the update.
- Reaction push (`reaction.new` to the message's author): Stream's own push does it when the app is on push v3 and
  push is enabled for `reaction.new` per push provider (the Upsert Push Template endpoint). On push v2 it cannot,
  and the command says so (docs/cutover.md says what then remains for the main backend).
Idempotent: a setting already as wanted is not sent again, so a second run changes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from onecrew_chat.api.routes.webhooks import WEBHOOK_PATH
from onecrew_chat.config import Settings
from onecrew_chat.runtime import build_runtime
from onecrew_chat.stream.client import StreamGateway
from onecrew_chat.stream.errors import StreamRequestError
from onecrew_chat.webhooks.apply import HANDLED

REACTION_EVENT = "reaction.new"
PUSH_TYPES = ("apn", "firebase", "huawei", "xiaomi")
OUR_HOOK_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "onecrew-chat:stream-webhook"))  # the same on every run and app
HOOK_LABEL = "event hook (this service)"
PUSH_V2_NOTE = "Reaction push: the app is on push "
_READ_ONLY_HOOK_FIELDS = ("created_at", "updated_at")


@dataclass
class Change:
    """One setting: what Stream has, what the service wants, and whether it differs."""

    setting: str
    now: str
    wanted: str
    apply: dict[str, Any] = field(default_factory=dict)  # app fields to PATCH, or a push template to upsert
    # app | event_hooks | push_template | kept (another target's, shown, never changed) | taken (--take-webhook-url)
    kind: str = "app"

    @property
    def differs(self) -> bool:
        return self.kind not in ("kept", "taken") and self.now != self.wanted


@dataclass
class ConfigurePlan:
    """Every setting compared, plus what Stream cannot do."""

    changes: list[Change]
    notes: list[str]
    applied: bool = False
    webhook_url: str = ""
    legacy_url: str = ""  # the app's single webhook_url as Stream showed it
    take_webhook_url: bool = False
    roll_back: bool = False
    sent: int = 0  # changes actually sent

    @property
    def pending(self) -> list[Change]:
        return [c for c in self.changes if c.differs]


def parse_providers(values: list[str]) -> list[tuple[str, str]]:
    """`type` or `type:name` (e.g. firebase, apn:onesteps-ios) as (type, name); ValueError for an unknown type."""
    providers = []
    for value in values:
        kind, _, name = value.partition(":")
        if kind not in PUSH_TYPES:
            raise ValueError(f"push provider type must be one of {', '.join(PUSH_TYPES)}, got {kind!r}")
        providers.append((kind, name))
    return providers


def is_ours(hook: dict[str, Any], webhook_url: str) -> bool:
    """Our hook: the fixed id, or a webhook hook to this service's URL."""
    return hook.get("id") == OUR_HOOK_ID or (
        hook.get("hook_type") == "webhook" and hook.get("webhook_url") == webhook_url
    )


def describe_hook(hook: dict[str, Any] | None) -> str:
    """One hook as the difference table shows it: its target and its events."""
    if not hook:
        return "(none)"
    target = hook.get("webhook_url") or hook.get("sqs_queue_url") or hook.get("sns_topic_arn") or "?"
    events = ", ".join(sorted(hook.get("event_types") or [])) or "all events"
    off = "" if hook.get("enabled", True) else " (disabled)"
    return f"{hook.get('hook_type') or 'webhook'} {target}: {events}{off}"


def as_sent(hook: dict[str, Any]) -> dict[str, Any]:
    """Another target's hook as it goes back to Stream: unchanged but for the fields Stream sets itself."""
    return {k: v for k, v in hook.items() if k not in _READ_ONLY_HOOK_FIELDS}


def hook_as_wanted(hook: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether Stream's hook is ours as wanted (id, URL, enabled, the same events in any order)."""
    return (
        hook.get("id") == wanted["id"]
        and hook.get("hook_type") == wanted["hook_type"]
        and hook.get("webhook_url") == wanted["webhook_url"]
        and hook.get("enabled", True) is True
        and sorted(hook.get("event_types") or []) == wanted["event_types"]
    )


def wanted_hook(webhook_url: str) -> dict[str, Any]:
    """This service's hook: its URL and the events it applies."""
    return {
        "id": OUR_HOOK_ID,
        "enabled": True,
        "hook_type": "webhook",
        "webhook_url": webhook_url,
        "event_types": sorted(HANDLED),
    }


def _kept_rows(app: dict[str, Any], webhook_url: str, hooks: list[dict[str, Any]]) -> list[Change]:
    """Every other webhook target, shown as kept."""
    rows = [Change("event hook (kept)", describe_hook(h), describe_hook(h), kind="kept") for h in hooks]
    legacy = app.get("webhook_url") or ""
    if legacy and legacy != webhook_url:
        events = ", ".join(sorted(app.get("webhook_events") or [])) or "all events"
        rows.append(Change("webhook_url (kept)", f"{legacy}: {events}", f"{legacy}: {events}", kind="kept"))
    return rows


async def plan_configuration(
    stream: StreamGateway,
    webhook_url: str,
    providers: list[tuple[str, str]] | None,
    *,
    take_webhook_url: bool = False,
) -> ConfigurePlan:
    """Read the app's settings and compare them with what the service needs."""
    app = await stream.get_app_settings()
    hooks = list(app.get("event_hooks") or [])
    ours = [h for h in hooks if is_ours(h, webhook_url)]
    others = [h for h in hooks if not is_ours(h, webhook_url)]
    wanted = wanted_hook(webhook_url)
    now = describe_hook(ours[0]) if len(ours) == 1 else describe_hook(None) if not ours else f"{len(ours)} hooks"
    same = len(ours) == 1 and hook_as_wanted(ours[0], wanted)
    changes = [
        Change(
            HOOK_LABEL,
            now,
            now if same else describe_hook(wanted),
            {"event_hooks": [*(as_sent(h) for h in others), wanted]},
            kind="event_hooks",
        )
    ]
    legacy = app.get("webhook_url") or ""
    if legacy == webhook_url:  # left by an earlier version of this command: ours moves into the hook
        changes.append(Change("webhook_url", legacy, "(none)", {"webhook_url": ""}))
    changes.extend(_kept_rows(app, webhook_url, others))
    notes: list[str] = []
    if not hooks and not same:
        notes.append(
            "Event hooks: Stream shows none. On an app Stream has not moved to multi-event hooks yet the hook cannot "
            "be added; applying finds out (it reads the settings back) and then says what it did instead."
        )
    push = app.get("push_notifications") or {}
    if providers is None:
        providers = [(kind, "") for kind in PUSH_TYPES if (push.get(kind) or {}).get("enabled")]
    if push.get("version") != "v3":
        notes.append(
            f"{PUSH_V2_NOTE}{push.get('version') or 'v2'}; Stream pushes reaction.new only on push v3 "
            "(switch in the dashboard, then run this again). Until then the main backend keeps sending it: its "
            "webhook keeps every event it has."
        )
    elif not providers:
        notes.append("Reaction push: no push provider is enabled in this Stream app; nothing to enable.")
    else:
        for kind, name in providers:
            existing = [
                t
                for t in await stream.get_push_templates(kind, name or None)
                if t.get("event_type") == REACTION_EVENT and (t.get("push_provider_name") or "") == name
            ]
            enabled = bool(existing and existing[0].get("enable_push"))
            template = {"event_type": REACTION_EVENT, "push_provider_type": kind, "enable_push": True}
            if name:
                template["push_provider_name"] = name
            label = f"push {REACTION_EVENT} ({kind}{':' + name if name else ''})"
            changes.append(Change(label, "on" if enabled else "off", "on", template, kind="push_template"))
    return ConfigurePlan(changes, notes, webhook_url=webhook_url, legacy_url=legacy, take_webhook_url=take_webhook_url)


async def plan_roll_back(stream: StreamGateway, webhook_url: str) -> ConfigurePlan:
    """What `--roll-back` changes: our hook out of the list (every other kept as it is), our webhook_url cleared."""
    app = await stream.get_app_settings()
    hooks = list(app.get("event_hooks") or [])
    ours = [h for h in hooks if is_ours(h, webhook_url)]
    others = [h for h in hooks if not is_ours(h, webhook_url)]
    changes = [
        Change(
            HOOK_LABEL,
            ", ".join(describe_hook(h) for h in ours) or "(none)",
            "(none)",
            {"event_hooks": [as_sent(h) for h in others]},
            kind="event_hooks",
        )
    ]
    legacy = app.get("webhook_url") or ""
    if legacy == webhook_url:
        changes.append(Change("webhook_url", legacy, "(none)", {"webhook_url": ""}))
    changes.extend(_kept_rows(app, webhook_url, others))
    notes = ["Reaction push templates are left as they are (turn reaction push off in the dashboard if wanted)."]
    return ConfigurePlan(changes, notes, webhook_url=webhook_url, legacy_url=legacy, roll_back=True)


async def apply_plan(stream: StreamGateway, plan: ConfigurePlan) -> None:
    """Send only what differs: the hook list first (read back), then app fields, one UpsertPushTemplate per provider.

    When the app turns out to have no event hooks, the app fields that depend on them (clearing our old
    webhook_url) are not sent and the single webhook_url is handled instead (`_without_event_hooks`).
    """
    hooks_ok = True
    for change in plan.pending:
        if change.kind == "event_hooks":
            hooks_ok = await _set_hooks(stream, plan, change)
    app_fields: dict[str, Any] = {}
    for change in plan.pending:
        if change.kind == "app" and hooks_ok:
            app_fields.update(change.apply)
            plan.sent += 1
        elif change.kind == "push_template":
            await stream.upsert_push_template(change.apply)
            plan.sent += 1
    if app_fields:
        await stream.patch_app_settings(app_fields)
    plan.applied = True


async def _set_hooks(stream: StreamGateway, plan: ConfigurePlan, change: Change) -> bool:
    """Send the hook list and read it back; False when the app has no event hooks (then the fallback is applied)."""
    wanted = [h.get("id") for h in change.apply["event_hooks"]]
    try:
        await stream.patch_app_settings(change.apply)
        seen = [h.get("id") for h in (await stream.get_app_settings()).get("event_hooks") or []]
    except StreamRequestError as exc:
        if exc.status is None or exc.status >= 500:
            raise
        why = f"Stream refused them: {exc.message}"
    else:
        if (OUR_HOOK_ID in wanted) == (OUR_HOOK_ID in seen):
            plan.sent += 1
            return True
        why = "Stream did not keep the hook list it was sent"
    await _without_event_hooks(stream, plan, why)
    return False


async def _without_event_hooks(stream: StreamGateway, plan: ConfigurePlan, why: str) -> None:
    """An app with one webhook_url: take it only when it is free or ours, or when told to."""
    head = f"Event hooks: not available on this app ({why}); it has one webhook_url"
    if plan.roll_back:
        plan.notes.append(f"{head}: nothing of ours is in a hook list to remove.")
        return
    url, legacy = plan.webhook_url, plan.legacy_url
    if legacy and legacy != url and not plan.take_webhook_url:
        plan.notes.append(
            f"{head}, held by {legacy}. Not taken: that target keeps every event it has (reaction.new included). "
            "Until Stream moves the app to multi-event hooks, have that backend forward this service's events "
            "(docs/cutover.md), or run again with --take-webhook-url once it needs no events."
        )
        return
    app = await stream.get_app_settings()
    fields = {"webhook_url": url, "webhook_events": sorted(HANDLED)}
    if app.get("webhook_url") == url and sorted(app.get("webhook_events") or []) == fields["webhook_events"]:
        plan.notes.append(f"{head}: already this service's, with the events it applies.")
        return
    await stream.patch_app_settings(fields)
    plan.sent += 1
    if legacy and legacy != url:
        for change in plan.changes:
            if change.setting == "webhook_url (kept)":
                change.setting, change.kind = "webhook_url (taken)", "taken"
                change.wanted = f"{url}: {', '.join(fields['webhook_events'])}"
        plan.notes[:] = [n.split(" Until then")[0] if n.startswith(PUSH_V2_NOTE) else n for n in plan.notes]
        plan.notes.append(
            f"{head}: taken from {legacy} (--take-webhook-url), with the events this service applies. That target "
            "receives no events any more (no reaction.new: nobody pushes reactions on push v2); to give it back, "
            "set its URL and the events it needs in the Stream dashboard."
        )
    else:
        plan.notes.append(f"{head}: set to this service, with the events it applies.")


def webhook_url_from(settings: Settings, given: str | None) -> str:
    """The URL given, or ONECREW_PUBLIC_BASE_URL + the webhook path; ValueError when neither is set or it is not http(s)."""
    url = given or (settings.public_base_url.rstrip("/") + WEBHOOK_PATH if settings.public_base_url else None)
    if not url:
        raise ValueError("give --webhook-url, or set ONECREW_PUBLIC_BASE_URL to derive it")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"the webhook URL must start with http:// or https://, got {url!r}")
    return url


async def configure(
    settings: Settings,
    *,
    webhook_url: str,
    providers: list[tuple[str, str]] | None,
    dry_run: bool,
    roll_back: bool = False,
    take_webhook_url: bool = False,
) -> ConfigurePlan:
    """Compare, and unless a dry run, apply what differs (or, rolling back, remove only what is ours)."""
    runtime = build_runtime(settings)
    try:
        if roll_back:
            plan = await plan_roll_back(runtime.stream, webhook_url)
        else:
            plan = await plan_configuration(runtime.stream, webhook_url, providers, take_webhook_url=take_webhook_url)
        if not dry_run and plan.pending:
            await apply_plan(runtime.stream, plan)
        return plan
    finally:
        await runtime.close()


def lines(plan: ConfigurePlan, *, dry_run: bool) -> list[str]:
    """The difference, one line per setting, then what was done."""
    width = max(len(c.setting) for c in plan.changes)
    out = [f"{'setting'.ljust(width)}  now -> wanted"]
    for change in plan.changes:
        mark = "change" if change.differs else change.kind if change.kind in ("kept", "taken") else "same"
        out.append(f"{change.setting.ljust(width)}  {change.now} -> {change.wanted}  [{mark}]")
    out.extend(plan.notes)
    if not plan.pending:
        out.append(
            "Nothing to roll back: Stream holds no webhook target of this service."
            if plan.roll_back
            else "No change: Stream already has every setting this service needs."
        )
    elif dry_run:
        out.append(f"Dry run: {len(plan.pending)} setting(s) would change; nothing was sent.")
    elif plan.sent:
        out.append(f"Applied {plan.sent} change(s).")
    else:
        out.append("Nothing sent: see the note above.")
    return out

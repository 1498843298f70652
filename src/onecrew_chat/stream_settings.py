"""`onecrew-chat stream configure`: the Stream app settings this service needs, shown as a difference, then applied.

- `webhook_url`: this service's webhook endpoint; `webhook_events`: the events it applies.
- Reaction push (`reaction.new` to the message's author): Stream's own push does it when the app is on push v3 and
  push is enabled for `reaction.new` per push provider (the Upsert Push Template endpoint). On push v2 it cannot,
  and the command says so (docs/cutover.md says what then remains for the main backend).
Idempotent: a setting already as wanted is not sent again, so a second run changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from onecrew_chat.config import Settings
from onecrew_chat.embedded import WEBHOOK_PATH
from onecrew_chat.runtime import build_runtime
from onecrew_chat.stream.client import StreamGateway
from onecrew_chat.webhooks.apply import HANDLED

REACTION_EVENT = "reaction.new"
PUSH_TYPES = ("apn", "firebase", "huawei", "xiaomi")


@dataclass
class Change:
    """One setting: what Stream has, what the service wants, and whether it differs."""

    setting: str
    now: str
    wanted: str
    apply: dict[str, Any] = field(default_factory=dict)  # app fields to PATCH, or a push template to upsert
    kind: str = "app"  # app | push_template

    @property
    def differs(self) -> bool:
        return self.now != self.wanted


@dataclass
class ConfigurePlan:
    """Every setting compared, plus what Stream cannot do."""

    changes: list[Change]
    notes: list[str]
    applied: bool = False

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


async def plan_configuration(
    stream: StreamGateway, webhook_url: str, providers: list[tuple[str, str]] | None
) -> ConfigurePlan:
    """Read the app's settings and compare them with what the service needs."""
    app = await stream.get_app_settings()
    wanted_events = sorted(HANDLED)
    changes = [
        Change("webhook_url", app.get("webhook_url") or "(none)", webhook_url, {"webhook_url": webhook_url}),
        Change(
            "webhook_events",
            ", ".join(sorted(app.get("webhook_events") or [])) or "(all events)",
            ", ".join(wanted_events),
            {"webhook_events": wanted_events},
        ),
    ]
    notes: list[str] = []
    push = app.get("push_notifications") or {}
    if providers is None:
        providers = [(kind, "") for kind in PUSH_TYPES if (push.get(kind) or {}).get("enabled")]
    if push.get("version") != "v3":
        notes.append(
            f"Reaction push: the app is on push {push.get('version') or 'v2'}; Stream pushes reaction.new only on push v3 "
            "(switch in the dashboard, then run this again). Until then the main backend keeps sending it."
        )
    elif not providers:
        notes.append("Reaction push: no push provider is enabled in this Stream app; nothing to enable.")
    else:
        for kind, name in providers:
            current = [
                t
                for t in await stream.get_push_templates(kind, name or None)
                if t.get("event_type") == REACTION_EVENT and (t.get("push_provider_name") or "") == name
            ]
            enabled = bool(current and current[0].get("enable_push"))
            template = {"event_type": REACTION_EVENT, "push_provider_type": kind, "enable_push": True}
            if name:
                template["push_provider_name"] = name
            label = f"push {REACTION_EVENT} ({kind}{':' + name if name else ''})"
            changes.append(Change(label, "on" if enabled else "off", "on", template, kind="push_template"))
    return ConfigurePlan(changes, notes)


async def apply_plan(stream: StreamGateway, plan: ConfigurePlan) -> None:
    """Send only what differs: one UpdateApp for the app fields, one UpsertPushTemplate per provider."""
    app_fields: dict[str, Any] = {}
    for change in plan.pending:
        if change.kind == "app":
            app_fields.update(change.apply)
        else:
            await stream.upsert_push_template(change.apply)
    if app_fields:
        await stream.patch_app_settings(app_fields)
    plan.applied = True


def webhook_url_from(settings: Settings, given: str | None) -> str:
    """The URL given, or ONECREW_PUBLIC_BASE_URL + the webhook path; ValueError when neither is set or it is not http(s)."""
    url = given or (settings.public_base_url.rstrip("/") + WEBHOOK_PATH if settings.public_base_url else None)
    if not url:
        raise ValueError("give --webhook-url, or set ONECREW_PUBLIC_BASE_URL to derive it")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"the webhook URL must start with http:// or https://, got {url!r}")
    return url


async def configure(
    settings: Settings, *, webhook_url: str, providers: list[tuple[str, str]] | None, dry_run: bool
) -> ConfigurePlan:
    """Compare, and unless a dry run, apply what differs."""
    runtime = build_runtime(settings)
    try:
        plan = await plan_configuration(runtime.stream, webhook_url, providers)
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
        mark = "change" if change.differs else "same"
        out.append(f"{change.setting.ljust(width)}  {change.now} -> {change.wanted}  [{mark}]")
    out.extend(plan.notes)
    if not plan.pending:
        out.append("No change: Stream already has every setting this service needs.")
    elif dry_run:
        out.append(f"Dry run: {len(plan.pending)} setting(s) would change; nothing was sent.")
    else:
        out.append(f"Applied {len(plan.pending)} change(s).")
    return out

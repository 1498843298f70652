"""Push devices: register, list, remove (stored; the emulator delivers no push)."""

from __future__ import annotations

from ..call import Call, check_user_id, drop_nulls
from ..clock import now_ns
from ..emulator import Emulator
from ..errors import input_error, not_found

PUSH_PROVIDERS = ("firebase", "apn", "huawei", "xiaomi")


def _user_id(call: Call, given: object) -> str:
    if call.caller.is_server:
        if not given:
            raise input_error("user_id is required for server side requests", user_id="required")
        return check_user_id(given, "user_id")
    if given and given != call.caller.user_id:
        raise input_error("a user can only manage their own devices with a user token", user_id="not yours")
    return call.caller.user_id  # type: ignore[return-value]


def add(call: Call) -> dict:
    """POST /devices {id, push_provider, push_provider_name?, user_id?}."""
    body = drop_nulls(call.body)
    device_id = body.get("id")
    if not isinstance(device_id, str) or not device_id:
        raise input_error("id is a required field", id="required")
    provider = body.get("push_provider")
    if provider not in PUSH_PROVIDERS:
        raise input_error(f"push_provider must be one of {', '.join(PUSH_PROVIDERS)}", push_provider="invalid")
    user_id = call.require_user(_user_id(call, body.get("user_id"))).id
    devices = call.state.devices.setdefault(user_id, [])
    devices[:] = [d for d in devices if d["id"] != device_id]
    device = {"id": device_id, "push_provider": provider, "user_id": user_id, "created_at": now_ns()}
    if body.get("push_provider_name"):
        device["push_provider_name"] = body["push_provider_name"]
    devices.append(device)
    return {}


def render(call: Call, device: dict) -> dict:
    """One device as Stream returns it."""
    return dict(device, created_at=call.dialect.time(device["created_at"]), disabled=False)


def render_v1(emulator: Emulator, device: dict) -> dict:
    """One device in the v1 dialect (the `me` of a client connection)."""
    return dict(device, created_at=emulator.v1.time(device["created_at"]), disabled=False)


def list_devices(call: Call) -> dict:
    """GET /devices?user_id=."""
    user_id = call.require_user(_user_id(call, call.query.get("user_id"))).id
    return {"devices": [render(call, d) for d in call.state.devices.get(user_id, [])]}


def remove(call: Call) -> dict:
    """DELETE /devices?id=&user_id=."""
    device_id = call.query.get("id")
    if not device_id:
        raise input_error("id is a required field", id="required")
    user_id = _user_id(call, call.query.get("user_id"))
    devices = call.state.devices.get(user_id, [])
    if not any(d["id"] == device_id for d in devices):
        raise not_found(f"device {device_id} of user {user_id} does not exist")
    devices[:] = [d for d in devices if d["id"] != device_id]
    return {}

"""Fuzzing every operation of the served OpenAPI document (schemathesis): never a 5xx, always the JSON envelope.

Each operation gets valid and invalid data (schemathesis' positive and negative modes, and the document's examples),
sent with a valid JWT of a user the directory knows (so the handlers are reached), with no Authorization, and
with garbage in it. Webhook bodies are signed for the valid-credential cases, so the event code is reached too.
Runs on SQLite against the emulator, derandomized with a fixed seed so CI sees the same cases every run.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from onecrew_chat.webhooks.body import sign
from tests.conftest import make_settings
from tests.support import SERVICE_TOKEN, STREAM_SECRET, make_jwt, new_id

MAX_EXAMPLES = 50
SEED = 20261123
WEBHOOK_PATH = "/api/chat/webhooks/stream"
NOT_JSON = {"/metrics"}
PUBLIC = {"/healthz", "/readyz", "/metrics"}  # Prometheus reads its own text format
# A valid credential most of the time, so handlers are reached ("known" also swaps generated ids for ones the
# directory holds, so lookups succeed and the deeper code runs); the other variants check the 401 path.
VARIANTS = st.sampled_from(["valid", "valid", "known", "known", "missing", "garbage"])
AUTHENTICATED = ("valid", "known")
# One request per operation that should succeed once "known" ids are swapped in: run first, whatever the seed,
# so every handler is reached and every documented 200 shape is checked.
HAPPY: dict[tuple[str, str], dict] = {
    ("POST", "/api/chat/token"): {"body": {"profile_type": "company", "company_id": "?"}},
    ("GET", "/api/chat/conversations"): {"query": {"profile_type": "company", "company_id": "?"}},
    ("POST", "/api/chat/conversations"): {"body": {"conversation_type": "user_company", "participant_ids": ["?"]}},
    ("GET", "/api/chat/conversations/unread-count"): {"query": {"profile_type": "user"}},
    ("POST", "/api/chat/webhooks/stream"): {"body": {"type": "message.new", "message": {"text": "hi"}}},
    ("PUT", "/api/internal/users/{user_id}"): {"body": {"name": "Fuzz Renamed"}},
    ("PUT", "/api/internal/companies/{company_id}"): {"body": {"name": "Fuzz Co Renamed"}},
    ("PUT", "/api/internal/companies/{company_id}/members/{user_id}"): {
        "body": {"role": "admin", "invitation_status": "accepted"}
    },
    ("POST", "/api/internal/conversations"): {
        "body": {"conversation_type": "user_company", "participant_ids": ["?"], "acting": {"type": "user", "id": "?"}}
    },
    ("POST", "/api/internal/conversations/{conversation_id}/messages"): {
        "body": {"id": "fuzz-message-1", "sender": {"type": "user", "id": "?"}, "text": "hi"}
    },
}
# Who a "known" create names, per conversation type (company_company writes as `company`).
PARTIES = {"user_company": ("company",), "company_company": ("company2",), "group": ("other", "company")}


def _operations() -> list[tuple[str, str]]:
    """(method, path) of every operation, read from a document built without any I/O (for parametrize)."""
    from onecrew_chat.api.app import create_app

    document = create_app(make_settings("sqlite:///unused.sqlite3", "http://127.0.0.1:9")).openapi()
    return [(method.upper(), path) for path, operations in document["paths"].items() for method in operations]


OPERATIONS = _operations()


def _seed(app, known: dict) -> str:
    """A directory where `me` owns `company` and shares a conversation with `other` (its channel id returned)."""
    service = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
    me = known["me"]
    with asgi.get_client(app) as http:
        for user, name in ((me, "Fuzz Caller"), (known["other"], "Fuzz Other")):
            assert http.put(f"/api/internal/users/{user}", json={"name": name}, headers=service).status_code == 200
        for company, name in ((known["company"], "Fuzz Co"), (known["company2"], "Other Co")):
            assert http.put(f"/api/internal/companies/{company}", json={"name": name}, headers=service).ok
        member = {"role": "owner", "invitation_status": "accepted"}
        assert http.put(f"/api/internal/companies/{known['company']}/members/{me}", json=member, headers=service).ok
        body = {"conversation_type": "user_user", "participant_ids": [known["other"]]}
        created = http.post("/api/chat/conversations", json=body, headers={"Authorization": f"Bearer {make_jwt(me)}"})
        assert created.status_code == 200, created.text
        return created.json()["data"]["id"]


@pytest.fixture
def api_schema(sqlite_only_url, emulator, emulator_server):
    """The app's own /openapi.json, loaded over ASGI with its lifespan running; the caller is `me`."""
    from onecrew_chat.api.app import create_app

    app = create_app(make_settings(sqlite_only_url, emulator_server.base_url))
    config = schemathesis.Config.from_dict({"seed": SEED, "generation": {"deterministic": True}})
    loaded = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    known = {"me": new_id(), "other": new_id(), "company": new_id(), "company2": new_id()}
    known["conversation"] = _seed(app, known)
    app.state.fuzz_known = known
    try:
        yield loaded
    finally:
        asgi.shutdown_lifespans()


def _use_known_ids(case, known: dict) -> None:
    """Replace generated ids with ones the directory holds, wherever the case has such a field."""
    by_name = {"conversation_id": known["conversation"], "user_id": known["other"], "company_id": known["company"]}
    if case.path_parameters:
        case.path_parameters = {k: by_name.get(k, v) for k, v in case.path_parameters.items()}
    if case.query and "company_id" in case.query:
        case.query = {**case.query, "company_id": known["company"]}
    if isinstance(case.body, dict):
        body = dict(case.body)
        if "participant_ids" in body:  # a create: parties that exist, of the kinds the type names
            body.pop("company_id", None)
            kind = body.get("conversation_type")
            body["participant_ids"] = [known[name] for name in PARTIES.get(kind, ("other",))]
            if kind == "company_company":
                body["company_id"] = known["company"]
        elif "company_id" in body:
            body["company_id"] = known["company"]
        for field in ("acting", "sender"):  # internal calls on behalf of (or as) the caller
            if isinstance(body.get(field), dict):
                body[field] = {"type": "user", "id": known["me"]}
        if "type" in body:  # a webhook event: about the known conversation, from the caller
            body = {k: v for k, v in body.items() if k not in ("channel_id", "channel_type")}
            body["cid"] = f"messaging:{known['conversation']}"
            if isinstance(body.get("message"), dict):
                body["message"] = {**body["message"], "user": {"id": f"onecrew_user_{known['me']}"}}
        case.body = body


def _credentials(case, variant: str, me: str) -> dict:
    """The case's headers with the Authorization (and, for webhooks, X-Signature) of this variant."""
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() not in ("authorization", "x-signature")}
    internal = case.path.startswith("/api/internal/")
    if variant in AUTHENTICATED:
        headers["Authorization"] = f"Bearer {SERVICE_TOKEN if internal else make_jwt(me)}"
    elif variant == "garbage":
        headers["Authorization"] = "Bearer not.a.jwt"
        headers["X-Signature"] = "0" * 64
    return headers


def _webhook_body(case, variant: str, headers: dict) -> dict:
    """Signed raw bytes for webhook cases with valid credentials (the signature covers the exact body)."""
    if case.path != WEBHOOK_PATH or variant not in AUTHENTICATED:
        return {}
    serialized = case.as_transport_kwargs()
    if "json" in serialized:
        raw = json.dumps(serialized["json"]).encode()
    else:
        raw = serialized.get("data") or b""
        raw = raw.encode() if isinstance(raw, str) else raw
    headers["X-Signature"] = sign(raw, STREAM_SECRET)
    return {"data": raw}


def assert_envelope(case, response) -> None:
    """Never a 5xx; JSON with a boolean `success`; a non-2xx has string `error` and `code`."""
    request = f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
    assert response.status_code < 500, request
    if case.path in NOT_JSON and response.status_code == 200:
        return
    body = json.loads(response.content)
    assert isinstance(body, dict) and isinstance(body.get("success"), bool), request
    if 200 <= response.status_code < 300:
        assert body["success"] is True and "data" in body, request
    else:
        assert body["success"] is False, request
        assert isinstance(body.get("error"), str) and body["error"].strip(), request
        assert isinstance(body.get("code"), str) and body["code"], request


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_operation_answers_json_and_never_a_5xx(method, path, api_schema):
    operation = api_schema[path][method]
    known = operation.app.state.fuzz_known
    cases = st.one_of(
        *operation.get_strategies_from_examples(),
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    seen: Counter[tuple[str, int]] = Counter()
    names = [parameter.name for parameter in operation.path_parameters]
    happy = operation.Case(path_parameters=dict.fromkeys(names, "?"), **HAPPY.get((method, path), {}))

    @example(case=happy, variant="known")
    @given(case=cases, variant=VARIANTS)
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def exchange(case, variant):
        if variant == "known":
            _use_known_ids(case, known)
        headers = _credentials(case, variant, known["me"])
        case.headers = headers
        extra = _webhook_body(case, variant, headers)
        response = case.call(**extra)
        seen[variant, response.status_code] += 1
        assert_envelope(case, response)
        checks = [status_code_conformance, content_type_conformance, response_schema_conformance]
        if variant == "valid":
            checks.append(negative_data_rejection)
        case.validate_response(response, checks=checks, transport_kwargs=extra or None)

    exchange()
    print(path, method, sorted(seen.items()))
    reached = {status for (variant, status) in seen if variant in AUTHENTICATED}
    assert 200 in reached, f"no case reached the handler and succeeded: {seen}"
    if path not in PUBLIC:
        # Without credentials only 401, or the 400/413/415 that screen bodies (size, encoding) before any route runs.
        refused = {status for (variant, status) in seen if variant not in AUTHENTICATED}
        assert 401 in refused and refused <= {400, 401, 413, 415}, seen

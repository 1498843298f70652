"""The OpenAPI document's examples work against the demo data, and every real answer matches its documented schema.

Each operation is called exactly as /docs would call it with its examples filled in (a token for the demo's owner
of Sat Education, the service token for /api/internal), and the 200 answer is validated against the schema the
document gives for it. Answer schemas forbid keys they do not list, so a serialiser and its model cannot drift.
"""

from __future__ import annotations

import json

import jsonschema_rs
import pytest
from sqlalchemy import text

from onecrew_chat.accounts import demo
from onecrew_chat.api.examples import EXAMPLE_CALLER_ID
from onecrew_chat.webhooks.body import sign
from tests.conftest import make_settings
from tests.support import STREAM_SECRET, auth, service_auth

FIRST = ("put_user", "put_company", "put_member", "post_conversation")
LAST = ("delete_member", "delete_user", "delete_company")
NOT_JSON = {"metrics"}


@pytest.fixture
def settings(database_url, emulator, emulator_server):
    return make_settings(database_url, emulator_server.base_url)


def _validator(document: dict, schema: dict):
    return jsonschema_rs.Draft202012Validator({**schema, "components": document["components"]})


def _operations(document: dict) -> dict[str, tuple[str, str, dict]]:
    found = {}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            found[operation["operationId"]] = (method.upper(), path, operation)
    return found


def _ordered(operation_ids) -> list[str]:
    middle = sorted(set(operation_ids) - set(FIRST) - set(LAST))
    return [*FIRST, *middle, *LAST]


def _request(method: str, path: str, operation: dict) -> dict:
    """URL, query, headers and body from the operation's examples, as Swagger UI's "Try it out" sends them."""
    query, headers = {}, {}
    for parameter in operation.get("parameters", []):
        example = parameter.get("example")
        if example is None:
            assert not parameter.get("required"), (
                f"{operation['operationId']}: required {parameter['name']} has no example"
            )
            continue
        if parameter["in"] == "path":
            path = path.replace("{" + parameter["name"] + "}", str(example))
        elif parameter["in"] == "query":
            query[parameter["name"]] = example
        elif parameter["in"] == "header":
            headers[parameter["name"]] = str(example)
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    body = None
    if content is not None:
        assert "example" in content, f"{operation['operationId']}: the request body has no example"
        body = json.dumps(content["example"]).encode()
        headers["Content-Type"] = "application/json"
    schemes = {name for requirement in operation.get("security", []) for name in requirement}
    if "OneCrewJWT" in schemes:
        headers.update(auth(EXAMPLE_CALLER_ID))
    if "ServiceToken" in schemes:
        headers.update(service_auth())
    if operation["operationId"] == "stream_webhook":
        headers["X-Signature"] = sign(body, STREAM_SECRET)
    return {"method": method, "url": path, "params": query, "headers": headers, "content": body}


async def test_every_operation_works_with_its_examples_on_the_demo_data(client, session):
    assert await demo.seed(session)
    await session.commit()
    document = (await client.get("/openapi.json")).json()
    operations = _operations(document)
    answered = []
    for operation_id in _ordered(set(operations) - NOT_JSON):
        method, path, operation = operations[operation_id]
        response = await client.request(**_request(method, path, operation))
        assert response.status_code == 200, f"{operation_id}: {response.status_code} {response.text}"
        schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        errors = [error.message for error in _validator(document, schema).iter_errors(response.json())]
        assert not errors, f"{operation_id} answered what its schema does not allow: {errors}\n{response.text}"
        answered.append(operation_id)
    assert set(answered) == set(operations) - NOT_JSON
    # The create example made the pair the other examples name, and Stream holds both members.
    created = await session.execute(text("SELECT chat_status FROM conversation"))
    assert [row[0] for row in created] == ["ready"]


async def test_documented_examples_match_their_own_schemas(client):
    document = (await client.get("/openapi.json")).json()
    for operation_id, (_method, _path, operation) in _operations(document).items():
        for status, answer in operation["responses"].items():
            content = answer.get("content", {}).get("application/json")
            if content is None:
                continue
            assert status != "200" or "example" in content, f"{operation_id}: no example of its 200 answer"
            if "example" in content:
                errors = [e.message for e in _validator(document, content["schema"]).iter_errors(content["example"])]
                assert not errors, f"{operation_id} {status} example: {errors}"
        body = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if body and "example" in body:
            errors = [e.message for e in _validator(document, body["schema"]).iter_errors(body["example"])]
            assert not errors, f"{operation_id} request example: {errors}"


async def test_docs_and_redoc_load_their_assets_from_this_server(client):
    for page in ("/docs", "/redoc"):
        response = await client.get(page)
        assert response.status_code == 200
        html = response.text
        assert "cdn" not in html.lower() and "https://" not in html and "fonts.googleapis" not in html
        assets = [part.split('"')[0] for part in html.split('="/docs-assets/')[1:]]
        assert assets, f"{page} names no packaged asset"
        for asset in assets:
            loaded = await client.get(f"/docs-assets/{asset}")
            assert loaded.status_code == 200 and len(loaded.content) > 1000, asset

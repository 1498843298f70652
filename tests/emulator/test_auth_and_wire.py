"""Auth like Stream's, and the wire details every SDK relies on: statuses, headers, envelopes."""

from __future__ import annotations

import http.client
import json
import time
from urllib.parse import quote, urlsplit

import httpx
import jwt
import pytest
from getstream import Stream
from getstream.base import StreamApiException
from getstream.models import ChannelInput, ChannelMemberRequest
from stream_chat import StreamChat
from stream_chat.base.exceptions import StreamAPIException

from .conftest import KEY, SECRET

SERVER_TOKEN = jwt.encode({"server": True}, SECRET, algorithm="HS256")
ENVELOPE_KEYS = {"code", "message", "StatusCode", "duration", "more_info", "details"}


def raw(
    base_url: str,
    method: str,
    path: str,
    *,
    key: str | None = KEY,
    token: str | None = SERVER_TOKEN,
    auth_type: str | None = "jwt",
    body: object = None,
) -> httpx.Response:
    headers = {}
    if token is not None:
        headers["Authorization"] = token
    if auth_type is not None:
        headers["stream-auth-type"] = auth_type
    params = {"api_key": key} if key is not None else {}
    return httpx.request(
        method, base_url + path, params=params, headers=headers, content=json.dumps(body) if body is not None else None
    )


def test_missing_api_key_is_code_2(base_url):
    response = raw(base_url, "POST", "/users", key=None, body={"users": {}})
    assert response.status_code == 401
    body = response.json()
    assert set(body) >= ENVELOPE_KEYS and body["code"] == 2 and body["StatusCode"] == 401
    assert body["message"] == 'UpdateUsers failed with error: "api_key not provided"'
    assert body["more_info"] == "https://getstream.io/chat/docs/api_errors_response"


def test_wrong_api_key_is_code_2(base_url):
    with pytest.raises(StreamAPIException) as caught:
        StreamChat("not-the-key", SECRET, base_url=base_url).upsert_user({"id": "x"})
    assert caught.value.status_code == 401 and caught.value.error_code == 2
    assert "api_key is invalid" in caught.value.error_message


def test_wrong_secret_is_code_43_naming_the_key(base_url):
    client = Stream(api_key=KEY, api_secret="another-secret-of-sufficient-length-1234", base_url=base_url)
    with pytest.raises(StreamApiException) as caught:
        client.get_app()
    assert caught.value.status_code == 401 and caught.value.code == 43
    assert caught.value.message == (
        'GetApp failed with error: "JWTAuth error: signature is not valid. Make sure the token '
        f'is created using the secret for API key "{KEY}""'
    )


@pytest.mark.parametrize(
    "token,auth_type,code,text",
    [
        (None, "jwt", 5, "JWTAuth error: token is missing"),
        (SERVER_TOKEN, None, 5, "stream-auth-type missing or invalid"),
        (SERVER_TOKEN, "anonymous", 5, "stream-auth-type missing or invalid"),
        ("not-a-jwt", "jwt", 5, "JWTAuth error: token contains an invalid number of segments"),
        (
            jwt.encode({"user_id": 42}, SECRET, algorithm="HS256"),
            "jwt",
            5,
            "cannot unmarshal number into Go struct field StreamJWTClaims.user_id of type string",
        ),
        (
            jwt.encode({"user_id": "ann", "exp": int(time.time()) - 10}, SECRET, algorithm="HS256"),
            "jwt",
            40,
            "JWTAuth error: token is expired",
        ),
    ],
)
def test_bad_tokens_get_401(base_url, token, auth_type, code, text):
    response = raw(base_url, "GET", "/app", token=token, auth_type=auth_type)
    assert response.status_code == 401
    assert response.json()["code"] == code and text in response.json()["message"]


def test_user_tokens_are_refused_on_server_only_operations(base_url, sc, emu):
    sc.upsert_users([{"id": "ann"}, {"id": "bob"}])
    user = Stream(api_key=KEY, token=sc.create_token("ann"), base_url=base_url)
    with pytest.raises(StreamApiException) as caught:
        user.deactivate_user("bob")
    assert caught.value.status_code == 403 and caught.value.code == 17
    # Client-side calls act as the token's user: no created_by needed.
    created = user.chat.channel("messaging", "mine").get_or_create(
        data=ChannelInput(members=[ChannelMemberRequest(user_id="bob")])
    )
    assert created.data.channel.created_by.id == "ann"
    assert "deactivated_at" not in emu.get_user("bob")


def test_statuses_headers_and_duration(base_url, sc):
    sc.upsert_user({"id": "ann"})
    parts = urlsplit(base_url)
    for method, path, body, status in [
        ("POST", "/users", {"users": {"bob": {"id": "bob"}}}, 201),
        ("GET", "/users?payload=" + quote(json.dumps({"filter_conditions": {"id": "ann"}})), None, 200),
        ("PATCH", "/users", {"users": [{"id": "ann", "set": {"a": 1}}]}, 200),
        ("DELETE", "/users/bob", None, 200),
        ("GET", "/channels-that-do-not-exist", None, 404),
    ]:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
        separator = "&" if "?" in path else "?"
        connection.request(
            method,
            f"{path}{separator}api_key={KEY}",
            body=json.dumps(body) if body else None,
            headers={"Authorization": SERVER_TOKEN, "stream-auth-type": "jwt"},
        )
        response = connection.getresponse()
        payload = json.loads(response.read())
        names = [name for name, _ in response.getheaders()]
        connection.close()
        assert response.status == status, (method, path, payload)
        # Lowercase on the wire: stream-chat's sync client only finds them that way.
        assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"} <= set(names)
        assert payload["duration"].endswith("ms")
    limits = sc.query_users({"id": "ann"}).rate_limit()
    assert limits.limit == 1000 and 0 < limits.remaining < 1000


def test_getstream_nulls_in_query_payloads_are_ignored(base_url, sc):
    sc.upsert_user({"id": "ann"})
    payload = {
        "filter_conditions": {"id": "ann"},
        "offset": None,
        "limit": None,
        "sort": [{"direction": -1, "field": "created_at", "type": None}],
        "user": None,
    }
    response = raw(base_url, "GET", f"/api/v2/users?payload={json.dumps(payload)}")
    assert response.status_code == 200 and response.json()["users"][0]["id"] == "ann"
    assert isinstance(response.json()["users"][0]["created_at"], int)


def test_bad_json_is_an_input_error(base_url):
    response = httpx.post(
        base_url + "/users",
        params={"api_key": KEY},
        content=b"{nope",
        headers={"Authorization": SERVER_TOKEN, "stream-auth-type": "jwt"},
    )
    assert response.status_code == 400 and response.json()["code"] == 4

"""Calls sent straight to the pool go out exactly as httpx's client would have sent them."""

from __future__ import annotations

import pytest

from onecrew_chat.stream.client import StreamGateway
from onecrew_chat.stream.endpoint import Endpoint
from onecrew_chat.stream.pool import StackTransport

SECRET = "endpoint-test-secret-0123456789abcdef0123"


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:9999", "https://chat.stream-io-api.com/", "http://h:81/base/"])
@pytest.mark.parametrize(
    ("method", "path", "query", "body"),
    [
        ("POST", "/api/v2/chat/channels/messaging/a%20b%3Ac/query", None, b'{"data": {}}'),
        ("GET", "/api/v2/users", {"payload": '{"filter_conditions": {"id": {"$in": ["a b", "c&d"]}}}'}, None),
        ("GET", "/api/v2/app", None, None),
        ("PATCH", "/api/v2/users", None, '{"users": ["é"]}'.encode()),
    ],
)
async def test_the_request_is_the_one_httpx_builds(base_url, method, path, query, body):
    gateway = StreamGateway("key", SECRET, base_url)
    client = gateway._client("test").client
    transport = StackTransport(max_connections=1, keepalive_expiry=1.0)
    endpoint = Endpoint.of(client, transport.pool)
    headers = [(b"x-client-request-id", b"id-1")]
    if body is not None:
        headers.append((b"Content-Type", b"application/json"))
    expected = client.build_request(
        method, path, params=query, content=body, headers={k.decode(): v.decode() for k, v in headers}
    )
    sent = endpoint.request(method, endpoint.target(path, query), headers, body)
    assert sent.method == expected.method.encode()
    assert (sent.url.scheme, sent.url.host, sent.url.port, sent.url.target) == (
        expected.url.raw_scheme,
        expected.url.raw_host,
        expected.url.port,
        expected.url.raw_path,
    )
    assert sent.headers == expected.headers.raw
    assert sent.extensions == expected.extensions
    assert endpoint.url(endpoint.target(path, query)) == str(expected.url)
    await transport.aclose()
    await gateway.close()

"""The Stream error tree: the "don't exist" parser on every known wording, and how SDK errors are classified."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
import pytest
from getstream.exceptions import StreamApiException, StreamRateLimitException

from onecrew_chat.stream.client import api_exception
from onecrew_chat.stream.errors import (
    DeadlineExceeded,
    StreamAuthRejected,
    StreamBatchError,
    StreamRateLimited,
    StreamRequestError,
    StreamTransientError,
    StreamUnavailable,
    StreamUsersMissing,
    from_api_exception,
    is_auth_failure,
    parse_missing_user_ids,
    recorded_failure_heals,
)

CREATE_TAIL = ". Please create the user objects before setting up the channel."


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        # create, Go's %v of a slice: space separated
        (
            'GetOrCreateChannel failed with error: "The following users are involved in channel create operation, '
            "but don't exist: [onecrew_user_a onecrew_company_b]" + CREATE_TAIL + '"',
            ["onecrew_user_a", "onecrew_company_b"],
        ),
        # create, comma + space
        (
            "The following users are involved in channel create operation, but don't exist: [a, b, c]" + CREATE_TAIL,
            ["a", "b", "c"],
        ),
        # create, bare comma (the emulator's choice)
        (
            "The following users are involved in channel create operation, but don't exist: [a,b]" + CREATE_TAIL,
            ["a", "b"],
        ),
        # create, quoted and space separated
        (
            "The following users are involved in channel create operation, but don't exist: "
            '["alpha" "bravo"]' + CREATE_TAIL,
            ["alpha", "bravo"],
        ),
        # one id, as surfaced by the JS SDK
        (
            'StreamChat error code 4: GetOrCreateChannel failed with error: "The following users are involved in '
            "channel create operation, but don't exist: [undefined]" + CREATE_TAIL + '"',
            ["undefined"],
        ),
        # update (add_members), real report
        (
            'UpdateChannel failed with error: "The following users are involved in channel update operation, '
            "but don't exist: [94461a35e0a73734438dba5ba10bbb74]" + CREATE_TAIL + '"',
            ["94461a35e0a73734438dba5ba10bbb74"],
        ),
        # the older channel.members wording, no space after the colon, comma after the bracket
        (
            "The following users are specified in channel.members but don't exist:[5027],please create the user "
            "objects before setting up the channel",
            ["5027"],
        ),
        (
            "The following users are specified in channel.members but don't exist:[5027, 5028],please create",
            ["5027", "5028"],
        ),
        # the older add_members wording
        (
            'UpdateChannel failed with error: "could not find user onecrew_user_1f0c from add_members"',
            ["onecrew_user_1f0c"],
        ),
        # duplicates collapse, order kept
        ("... but don't exist: [b, a, b]" + CREATE_TAIL, ["b", "a"]),
    ],
)
def test_parser_reads_every_known_wording(message, expected):
    assert parse_missing_user_ids(message) == expected


@pytest.mark.parametrize(
    "message",
    [
        "",
        'GetOrCreateChannel failed with error: "either data.created_by or data.created_by_id must be provided '
        'when using server side auth."',
        'DeleteChannel failed with error: "Can\'t find channel with id messaging:x"',
        "JWTAuth error: signature is not valid.",
    ],
)
def test_parser_ignores_other_errors(message):
    assert parse_missing_user_ids(message) is None


def test_parser_empty_list_names_nobody():
    assert parse_missing_user_ids("but don't exist: []. Please create") == []


def _api_error(status: int, code: int, message: str, headers: dict | None = None) -> StreamApiException:
    body = {
        "code": code,
        "message": message,
        "StatusCode": status,
        "duration": "0.01ms",
        "more_info": "https://getstream.io/chat/docs/api_errors_response",
        "details": [],
    }
    request = httpx.Request("POST", "http://stream.test/api/v2/chat/channels/messaging/x/query")
    response = httpx.Response(status, json=body, headers=headers or {}, request=request)
    cls = StreamRateLimitException if status == 429 else StreamApiException
    return cls(response=response)


def test_missing_users_become_users_missing_with_ids():
    message = (
        'GetOrCreateChannel failed with error: "The following users are involved in channel create operation, '
        "but don't exist: [u1,u2]" + CREATE_TAIL + '"'
    )
    error = from_api_exception("GetOrCreateChannel", _api_error(400, 4, message))
    assert isinstance(error, StreamUsersMissing)
    assert isinstance(error, StreamRequestError)
    assert error.missing_ids == ["u1", "u2"]
    assert (error.operation, error.status, error.code) == ("GetOrCreateChannel", 400, 4)
    assert error.message == message


def test_rate_limit_carries_reset_and_wait():
    reset = int(time.time()) + 3
    headers = {"x-ratelimit-limit": "300", "x-ratelimit-remaining": "0", "x-ratelimit-reset": f"{reset}, {reset}"}
    error = from_api_exception("UpdateUsers", _api_error(429, 9, "Too many requests", headers))
    assert isinstance(error, StreamRateLimited) and isinstance(error, StreamTransientError)
    assert error.reset_at == reset
    assert 1.5 < error.retry_after_s <= 3.0


def test_rate_limit_with_only_the_reset_header():
    reset = int(time.time()) + 2
    error = from_api_exception("QueryUsers", _api_error(429, 9, "slow down", {"x-ratelimit-reset": str(reset)}))
    assert isinstance(error, StreamRateLimited)
    assert error.reset_at == reset


def test_rate_limit_prefers_retry_after():
    exc = _api_error(429, 9, "slow down", {"Retry-After": "7"})
    assert exc.retry_after == timedelta(seconds=7)
    error = from_api_exception("QueryUsers", exc)
    assert error.retry_after_s == 7 and error.reset_at is None


def test_rate_limit_without_headers_has_no_wait():
    error = from_api_exception("QueryUsers", _api_error(429, 9, "slow down"))
    assert isinstance(error, StreamRateLimited)
    assert error.reset_at is None and error.retry_after_s is None


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_server_errors_are_unavailable(status):
    error = from_api_exception("GetOrCreateChannel", _api_error(status, -1, "boom"))
    assert type(error) is StreamUnavailable
    assert error.status == status


def test_unparseable_5xx_is_unavailable():
    request = httpx.Request("GET", "http://stream.test/api/v2/app")
    exc = StreamApiException(response=httpx.Response(502, text="<html>bad gateway</html>", request=request))
    error = from_api_exception("GetApp", exc)
    assert type(error) is StreamUnavailable and error.code is None


def test_other_4xx_fail_fast_with_streams_code_and_message():
    message = 'UpdateChannel failed with error: "User is not allowed to perform action UpdateChannel"'
    error = from_api_exception("UpdateChannel", _api_error(403, 17, message))
    assert type(error) is StreamRequestError
    assert (error.status, error.code, error.message) == (403, 17, message)
    assert "code 17" in str(error) and "UpdateChannel" in str(error)


@pytest.mark.parametrize(("status", "code"), [(401, 43), (401, 5), (403, 99)])
def test_our_credentials_refused_are_an_auth_rejection(status, code):
    message = 'JWTAuth error: signature is not valid. Make sure the token is created using the secret for API key "k"'
    error = from_api_exception("GetApp", _api_error(status, code, message))
    assert type(error) is StreamAuthRejected and isinstance(error, StreamRequestError)
    assert is_auth_failure(error) and (error.status, error.code, error.message) == (status, code, message)


def _gateway_answer(status: int, **kwargs) -> StreamApiException:
    """What the gateway client makes of an error answer that is not Stream's envelope."""
    request = httpx.Request("POST", "http://stream.test/api/v2/chat/channels/messaging/x/query")
    return api_exception(httpx.Response(status, request=request, **kwargs))


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 429])
@pytest.mark.parametrize(
    "answer",
    [
        {"json": {"message": "Bad Gateway"}},
        {"json": {"error": "upstream request timeout"}},
        {"json": ["not", "an", "object"]},
        {"json": {"code": "E502", "message": "no healthy upstream"}},
        {"text": "<html><body>502 Bad Gateway</body></html>"},
        {"content": b""},
    ],
)
def test_a_passing_status_in_a_gateways_words_is_classified_by_its_status(status, answer):
    error = from_api_exception("GetOrCreateChannel", _gateway_answer(status, **answer))
    assert isinstance(error, StreamTransientError), error
    assert error.status == status


def test_a_gateways_json_answer_keeps_its_words():
    error = from_api_exception("GetOrCreateChannel", _gateway_answer(502, json={"message": "Bad Gateway"}))
    assert type(error) is StreamUnavailable and "Bad Gateway" in str(error) and "HTTP 502" in str(error)
    refused = from_api_exception("GetOrCreateChannel", _gateway_answer(413, json={"message": "Request too large"}))
    assert type(refused) is StreamRequestError and refused.status == 413 and "Request too large" in str(refused)


@pytest.mark.parametrize(
    ("recorded", "passing"),
    [
        ("StreamUnavailable: GetOrCreateChannel HTTP 503: boom", True),
        ("DeadlineExceeded: UpdateUsers HTTP 502: gave up after 3.000s; last error: ...", True),
        ("StreamRateLimited: QueryUsers HTTP 429 code 9: Too many requests", True),
        ("StreamRequestError: GetOrCreateChannel HTTP 502: an answer in a gateway's words", True),
        ("StreamRequestError: GetOrCreateChannel: unexpected answer from Stream: KeyError('code')", True),
        ("StreamRequestError: GetOrCreateChannel HTTP 400 code 4: created_by_id is required", False),
        ("StreamBatchError: UpdateUsers HTTP 400 code 4: invalid name (bad id: onecrew_user_1)", False),
        # Our secret refused heals once it is fixed (before 401s paused the worker, server messages died of them).
        ("StreamAuthRejected: GetApp HTTP 401 code 43: JWTAuth error", True),
        ("StreamRequestError: SendMessage HTTP 401 code 43: JWTAuth error: signature is not valid", True),
        ("StreamRequestError: SendMessage HTTP 403 code 99: app suspended", True),
        ("StreamRequestError: UpdateChannel HTTP 403 code 17: not allowed", False),
        ("LookupError: no handler registered for outbox kind 'x'", False),
        (None, False),
    ],
)
def test_a_recorded_failure_reads_as_healing_by_itself_or_not(recorded, passing):
    assert recorded_failure_heals(recorded) is passing


def test_refused_user_batch_names_the_bad_id():
    message = 'UpdateUsers failed with error: "user onecrew_user_12 has an invalid name"'
    batch = ["onecrew_user_1", "onecrew_user_12", "onecrew_user_3"]
    error = from_api_exception("UpdateUsers", _api_error(400, 4, message), batch)
    assert isinstance(error, StreamBatchError)
    assert error.bad_id == "onecrew_user_12"
    assert "onecrew_user_12" in str(error)


def test_refused_user_batch_without_a_named_id():
    error = from_api_exception("UpdateUsers", _api_error(400, 4, "something is wrong"), ["a", "b"])
    assert isinstance(error, StreamBatchError) and error.bad_id is None


def test_auth_failure_on_a_batch_is_not_a_batch_error():
    error = from_api_exception("UpdateUsers", _api_error(401, 43, "JWTAuth error"), ["a"])
    assert type(error) is StreamAuthRejected


def test_deadline_exceeded_describes_the_last_error():
    last = StreamUnavailable("boom", operation="GetOrCreateChannel", status=503, code=-1)
    error = DeadlineExceeded.after("GetOrCreateChannel", last, 2.5)
    assert isinstance(error, StreamTransientError)
    assert error.status == 503 and "2.500s" in str(error) and "boom" in str(error)

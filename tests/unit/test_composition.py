"""The composition root: which failures pause the worker, which are dead letters, which are retried; what runs."""

from __future__ import annotations

import pytest

from onecrew_chat.composition import build_jobs, classify
from onecrew_chat.errors import AppError
from onecrew_chat.outbox.jobs import Failure, Verdict
from onecrew_chat.stream.errors import (
    DeadlineExceeded,
    StreamRateLimited,
    StreamRequestError,
    StreamUnavailable,
    StreamUsersMissing,
)
from tests.conftest import make_settings


class NotFound(AppError):
    status_code = 404
    code = "not_found"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (StreamRequestError("invalid signature", operation="UpdateUsers", status=401, code=5), Failure(Verdict.PAUSE)),
        (
            StreamRequestError("api_key not found", operation="GetOrCreateChannel", status=401, code=2),
            Failure(Verdict.PAUSE),
        ),
        (
            StreamRequestError("app suspended", operation="GetOrCreateChannel", status=403, code=99),
            Failure(Verdict.PAUSE),
        ),
        (StreamRequestError("not allowed", operation="UpdateChannel", status=403, code=17), Failure(Verdict.PERMANENT)),
        (
            StreamRequestError("bad input", operation="GetOrCreateChannel", status=400, code=4),
            Failure(Verdict.PERMANENT),
        ),
        (
            StreamUsersMissing("x", operation="GetOrCreateChannel", status=400, missing_ids=["a"]),
            Failure(Verdict.RETRY),
        ),
        (StreamUnavailable("HTTP 503", operation="GetApp", status=503), Failure(Verdict.RETRY)),
        (
            StreamRateLimited("slow down", operation="UpdateUsers", status=429, retry_after_s=42.0),
            Failure(Verdict.RETRY, 42.0),
        ),
        (DeadlineExceeded("gave up", operation="UpdateUsers", status=503), Failure(Verdict.RETRY)),
        (NotFound("gone"), Failure(Verdict.PERMANENT)),
        # A 5xx is passing whatever class the answer was read into (a gateway's words, not Stream's).
        (StreamRequestError("bad gateway", operation="GetOrCreateChannel", status=502), Failure(Verdict.RETRY)),
        (StreamRequestError("timeout", operation="QueryChannels", status=408), Failure(Verdict.RETRY)),
        (KeyError("bug"), Failure(Verdict.RETRY)),
    ],
)
def test_classify(error, expected):
    assert classify(error) == expected


def test_the_jobs_cover_both_kinds_and_the_periodic_work():
    jobs = build_jobs(make_settings("sqlite://", "http://127.0.0.1:9", reconcile_interval_s=0, retention_interval_s=60))
    assert set(jobs.handlers) == {"conversation.provision", "identity.sync", "message.send", "channel.unset_name"}
    assert set(jobs.dead_letter) == {"conversation.provision"}
    intervals = {job.name: job.interval_s for job in jobs.periodic}
    assert intervals == {
        "idempotency.purge": 600.0,
        "outbox.revive": 60.0,
        "retention.purge": 60.0,
        "reconcile": 0.0,  # 0: off
    }
    assert jobs.probe is not None and jobs.classify is classify

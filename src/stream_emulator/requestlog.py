"""The record of every API call, which tests read to count calls."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field

DEFAULT_SIZE = 10_000


@dataclass(frozen=True)
class RequestRecord:
    """One API call: Stream's operation name, the dialect, and what the caller got.

    `status` is 0 for a call whose response was withheld (the timeout-after-write fault). `at` is when the
    record was made (Unix seconds, at the answer), so `at - duration_ms / 1000` is when the call arrived.
    """

    operation: str
    dialect: str
    method: str
    path: str
    status: int
    duration_ms: float
    at: float = field(default_factory=time.time, compare=False)


class RequestLog:
    """A bounded log of records plus exact per-operation counts."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self._records: deque[RequestRecord] = deque(maxlen=size)
        self._counts: Counter[str] = Counter()
        self._total = 0
        self._lock = threading.Lock()

    def add(self, record: RequestRecord) -> None:
        """Append a record."""
        with self._lock:
            self._records.append(record)
            self._counts[record.operation] += 1
            self._total += 1

    def records(self) -> list[RequestRecord]:
        """The newest records, oldest first (at most the log's size)."""
        with self._lock:
            return list(self._records)

    def count(self, operation: str | None = None) -> int:
        """How many calls were made (of one operation), counting beyond the log's size."""
        with self._lock:
            return self._total if operation is None else self._counts[operation]

    def clear(self) -> None:
        """Forget every record and count."""
        with self._lock:
            self._records.clear()
            self._counts.clear()
            self._total = 0

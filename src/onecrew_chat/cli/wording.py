"""Counts in words for what the commands print: "1 Stream call", "2 Stream calls", "1 identity sync"."""

from __future__ import annotations

# Nouns whose plural is not the singular plus "s" (the last word decides).
_IRREGULAR = {"identity": "identities", "company": "companies", "entry": "entries"}


def count(number: int, singular: str, plural: str | None = None) -> str:
    """`number` and the noun phrase in the form that agrees with it."""
    if number == 1:
        return f"{number} {singular}"
    if plural is None:
        head, _, last = singular.rpartition(" ")
        last = _IRREGULAR.get(last, last + ("es" if last.endswith(("s", "x", "ch", "sh")) else "s"))
        plural = f"{head} {last}" if head else last
    return f"{number:,} {plural}"

"""Stream's query filters ($eq, $in, $and, ...) and sorts, over any object via a field getter."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from .clock import parse_time
from .errors import input_error

T = TypeVar("T")
Getter = Callable[[T, str], Any]
# Fields whose values are kept as nanoseconds while filters name times as strings.
TIME_FIELDS = frozenset(
    {"created_at", "updated_at", "last_message_at", "last_active", "deactivated_at", "deleted_at", "last_updated"}
)


def matches(item: T, conditions: dict, get: Getter) -> bool:
    """Whether `item` satisfies a Stream filter object."""
    for key, condition in conditions.items():
        if key == "$and":
            if not all(matches(item, c, get) for c in condition):
                return False
        elif key == "$or":
            if not any(matches(item, c, get) for c in condition):
                return False
        elif key == "$nor":
            if any(matches(item, c, get) for c in condition):
                return False
        elif not _field_matches(get(item, key), key, condition):
            return False
    return True


def _field_matches(value: Any, field: str, condition: Any) -> bool:
    if not isinstance(condition, dict):
        condition = {"$eq": condition}
    for operator, operand in condition.items():
        if field in TIME_FIELDS and operator not in ("$exists",):
            operand = [parse_time(o) for o in operand] if isinstance(operand, list) else parse_time(operand)
        if not _apply(operator, value, operand):
            return False
    return True


def _apply(operator: str, value: Any, operand: Any) -> bool:
    many = isinstance(value, (list, tuple, set, frozenset))
    if operator == "$eq":
        if many:
            return (set(value) == set(operand)) if isinstance(operand, list) else operand in value
        return value == operand
    if operator == "$ne":
        return not _apply("$eq", value, operand)
    if operator == "$in":
        operand = operand if isinstance(operand, list) else [operand]
        return bool(set(value) & set(operand)) if many else value in operand
    if operator == "$nin":
        return not _apply("$in", value, operand)
    if operator == "$contains":
        return many and operand in value
    if operator == "$exists":
        return (value is not None) == bool(operand)
    if operator in ("$gt", "$gte", "$lt", "$lte"):
        if value is None or operand is None:
            return False
        try:
            return {"$gt": value > operand, "$gte": value >= operand, "$lt": value < operand, "$lte": value <= operand}[
                operator
            ]
        except TypeError:
            return False
    if operator == "$autocomplete":
        text = str(operand).lower()
        return isinstance(value, str) and any(w.startswith(text) for w in value.lower().split())
    if operator == "$q":
        return isinstance(value, str) and str(operand).lower() in value.lower()
    raise input_error(f"operator {operator} is not supported")


def normalize_sort(sort: Any) -> list[tuple[str, int]]:
    """[(field, direction)] from Stream's list of {field, direction} (or a {field: dir} map)."""
    if not sort:
        return []
    if isinstance(sort, dict):
        sort = [{"field": k, "direction": v} for k, v in sort.items()]
    result = []
    for entry in sort:
        if isinstance(entry, dict) and entry.get("field"):
            result.append((entry["field"], -1 if (entry.get("direction") or 1) < 0 else 1))
    return result


def sort_items(items: Iterable[T], sort: list[tuple[str, int]], get: Getter) -> list[T]:
    """Items in the requested order, absent values last; a stable multi-key sort."""
    ordered = list(items)
    for field, direction in reversed(sort):
        present = [i for i in ordered if get(i, field) is not None]
        absent = [i for i in ordered if get(i, field) is None]
        present.sort(key=lambda i: _sortable(get(i, field)), reverse=direction < 0)
        ordered = present + absent
    return ordered


def _sortable(value: Any) -> Any:
    return (0, value) if isinstance(value, (int, float)) else (1, str(value))

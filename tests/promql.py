"""A small PromQL evaluator for the subset deploy/prometheus/alerts.yml uses, to test the rules like `promtool test
rules` does (promtool itself is not a Python dependency, nor installed where the suite runs).

Supported: instant selectors with label matchers (= != =~ !~) and a 5-minute lookback; range selectors under
increase/rate/min_over_time/max_over_time; sum/min/max/avg/count with `by (...)` before or after the argument;
time(), vector(s), absent(v); arithmetic (+ - * /), comparisons as filters (== != > < >= <=) and and/or/unless,
with one-to-one matching on all labels; scalars. `increase` is the sum of the counter's rises in the window
(counter resets handled) without Prometheus's extrapolation to the window's edges: the rules only compare it with
0, where the two agree. An unsupported construct raises ValueError rather than evaluating wrongly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

Labels = frozenset[tuple[str, str]]
Vector = dict[Labels, float]
Value = float | Vector

LOOKBACK_S = 300.0
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>\d+(?:\.\d+)?(?:e[+-]?\d+)?)(?![a-zA-Z_0-9.])
      | (?P<duration>\d+[smhdw])
      | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
      | (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<op>==|!=|>=|<=|=~|!~|[-+*/(){}\[\],=<>])
    )""",
    re.VERBOSE,
)
_DURATION = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_AGGREGATIONS = {"sum", "min", "max", "avg", "count"}
_RANGE_FUNCTIONS = {"increase", "rate", "min_over_time", "max_over_time"}
_COMPARISONS = {"==", "!=", ">", "<", ">=", "<="}


@dataclass
class Series:
    """One time series: its metric name, labels and (time, value) samples in time order."""

    name: str
    labels: dict[str, str]
    samples: list[tuple[float, float]] = field(default_factory=list)


def sampled(
    name: str, labels: dict[str, str], value: Callable[[float], float | None], start: float, end: float, step: float
) -> Series:
    """A series scraped every `step` seconds from `start` to `end`; `value(t)` None means no sample then."""
    samples = []
    t = start
    while t <= end:
        v = value(t)
        if v is not None:
            samples.append((t, float(v)))
        t += step
    return Series(name, dict(labels), samples)


def _tokens(expr: str) -> list[str]:
    out: list[str] = []
    pos = 0
    expr = expr.strip()
    while pos < len(expr):
        match = _TOKEN.match(expr, pos)
        if match is None or match.end() == pos:
            raise ValueError(f"cannot read PromQL at {expr[pos : pos + 20]!r}")
        out.append(match.group(match.lastgroup or "op"))
        pos = match.end()
    return out


def _duration_s(token: str) -> float:
    match = re.fullmatch(r"(\d+)([smhdw])", token)
    if match is None:
        raise ValueError(f"not a duration: {token!r}")
    return int(match.group(1)) * _DURATION[match.group(2)]


class _Parser:
    """Recursive descent into closures `evaluate(series, t) -> Value`."""

    def __init__(self, expr: str):
        self.tokens = _tokens(expr)
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise ValueError(f"expected {expected!r}, found {token!r}")
        self.pos += 1
        return token

    def parse(self) -> Callable[[list[Series], float], Value]:
        node = self.binary(0)
        if self.peek() is not None:
            raise ValueError(f"unexpected {self.peek()!r}")
        return node

    _LEVELS: tuple[tuple[str, ...], ...] = (("or",), ("and", "unless"), tuple(_COMPARISONS), ("+", "-"), ("*", "/"))

    def binary(self, level: int) -> Callable[[list[Series], float], Value]:
        if level == len(self._LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while self.peek() in self._LEVELS[level]:
            op = self.take()
            if self.peek() == "bool":
                raise ValueError("the bool modifier is not supported")
            right = self.binary(level + 1)
            left = _binary(op, left, right)
        return left

    def unary(self) -> Callable[[list[Series], float], Value]:
        if self.peek() == "-":
            self.take()
            inner = self.unary()
            return _binary("*", lambda _s, _t: -1.0, inner)
        return self.primary()

    def primary(self) -> Callable[[list[Series], float], Value]:
        token = self.take()
        if token == "(":
            node = self.binary(0)
            self.take(")")
            return node
        if re.fullmatch(r"\d+(?:\.\d+)?(?:e[+-]?\d+)?", token):
            number = float(token)
            return lambda _s, _t: number
        if token in _AGGREGATIONS:
            by = self.by_clause()
            self.take("(")
            inner = self.binary(0)
            self.take(")")
            by = by if by is not None else self.by_clause()
            return _aggregate(token, by or (), inner)
        if token == "time":
            self.take("(")
            self.take(")")
            return lambda _s, t: float(t)
        if token == "vector":
            self.take("(")
            inner = self.binary(0)
            self.take(")")
            return lambda s, t: {frozenset(): _scalar(inner(s, t))}
        if token == "absent":
            self.take("(")
            inner = self.binary(0)
            self.take(")")
            return lambda s, t: {} if _vector(inner(s, t)) else {frozenset(): 1.0}
        if token in _RANGE_FUNCTIONS:
            self.take("(")
            name, matchers = self.selector(self.take())
            self.take("[")
            window = _duration_s(self.take())
            self.take("]")
            self.take(")")
            return _range_function(token, name, matchers, window)
        if re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", token):
            if self.peek() == "(":
                raise ValueError(f"unsupported function {token}()")
            name, matchers = self.selector(token)
            if self.peek() == "[":
                raise ValueError("a range selector outside a range function")
            return lambda s, t: _instant(s, t, name, matchers)
        raise ValueError(f"unexpected {token!r}")

    def by_clause(self) -> tuple[str, ...] | None:
        if self.peek() != "by":
            if self.peek() == "without":
                raise ValueError("without (...) is not supported")
            return None
        self.take("by")
        self.take("(")
        labels = []
        while self.peek() != ")":
            labels.append(self.take())
            if self.peek() == ",":
                self.take(",")
        self.take(")")
        return tuple(labels)

    def selector(self, name: str) -> tuple[str, list[tuple[str, str, str]]]:
        matchers: list[tuple[str, str, str]] = []
        if self.peek() == "{":
            self.take("{")
            while self.peek() != "}":
                label = self.take()
                op = self.take()
                if op not in ("=", "!=", "=~", "!~"):
                    raise ValueError(f"unsupported matcher {op!r}")
                value = self.take()
                if not value.startswith('"'):
                    raise ValueError(f"matcher value must be a string, got {value!r}")
                matchers.append((label, op, value[1:-1].encode().decode("unicode_escape")))
                if self.peek() == ",":
                    self.take(",")
            self.take("}")
        return name, matchers


def _matches(series: Series, name: str, matchers: list[tuple[str, str, str]]) -> bool:
    if series.name != name:
        return False
    for label, op, value in matchers:
        have = series.labels.get(label, "")
        if op == "=" and have != value:
            return False
        if op == "!=" and have == value:
            return False
        if op == "=~" and not re.fullmatch(value, have):
            return False
        if op == "!~" and re.fullmatch(value, have):
            return False
    return True


def _key(series: Series) -> Labels:
    return frozenset(series.labels.items())


def _instant(all_series: list[Series], t: float, name: str, matchers: list[tuple[str, str, str]]) -> Vector:
    out: Vector = {}
    for series in all_series:
        if not _matches(series, name, matchers):
            continue
        recent = [v for at, v in series.samples if t - LOOKBACK_S < at <= t]
        if recent:
            out[_key(series)] = recent[-1]
    return out


def _range_function(
    function: str, name: str, matchers: list[tuple[str, str, str]], window: float
) -> Callable[[list[Series], float], Value]:
    def evaluate(all_series: list[Series], t: float) -> Value:
        out: Vector = {}
        for series in all_series:
            if not _matches(series, name, matchers):
                continue
            values = [v for at, v in series.samples if t - window < at <= t]
            if function in ("min_over_time", "max_over_time"):
                if values:
                    out[_key(series)] = min(values) if function == "min_over_time" else max(values)
                continue
            if len(values) < 2:
                continue  # as Prometheus: a counter needs two samples in the window
            rise = sum(b - a if b >= a else b for a, b in zip(values, values[1:], strict=False))
            out[_key(series)] = rise if function == "increase" else rise / window
        return out

    return evaluate


def _scalar(value: Value) -> float:
    if isinstance(value, dict):
        raise ValueError("a vector where a scalar is needed")
    return value


def _vector(value: Value) -> Vector:
    if not isinstance(value, dict):
        raise ValueError("a scalar where a vector is needed")
    return value


def _aggregate(
    how: str, by: Iterable[str], inner: Callable[[list[Series], float], Value]
) -> Callable[[list[Series], float], Value]:
    keep = tuple(by)

    def evaluate(all_series: list[Series], t: float) -> Value:
        groups: dict[Labels, list[float]] = {}
        for labels, value in _vector(inner(all_series, t)).items():
            group = frozenset((k, v) for k, v in labels if k in keep)
            groups.setdefault(group, []).append(value)
        reduce: dict[str, Callable[[list[float]], float]] = {
            "sum": sum,
            "min": min,
            "max": max,
            "count": lambda values: float(len(values)),
            "avg": lambda values: sum(values) / len(values),
        }
        return {group: reduce[how](values) for group, values in groups.items()}

    return evaluate


def _apply(op: str, a: float, b: float) -> float | bool:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        return a / b if b else (float("nan") if a == 0 else float("inf") * (1 if a > 0 else -1))
    return {
        "==": a == b,
        "!=": a != b,
        ">": a > b,
        "<": a < b,
        ">=": a >= b,
        "<=": a <= b,
    }[op]


def _binary(
    op: str, left: Callable[[list[Series], float], Value], right: Callable[[list[Series], float], Value]
) -> Callable[[list[Series], float], Value]:
    def evaluate(all_series: list[Series], t: float) -> Value:
        a, b = left(all_series, t), right(all_series, t)
        if op in ("and", "or", "unless"):
            va, vb = _vector(a), _vector(b)
            if op == "and":
                return {k: v for k, v in va.items() if k in vb}
            if op == "unless":
                return {k: v for k, v in va.items() if k not in vb}
            return va | {k: v for k, v in vb.items() if k not in va}
        if not isinstance(a, dict) and not isinstance(b, dict):
            if op in _COMPARISONS:
                raise ValueError("a comparison between scalars needs bool, which is not supported")
            return float(_apply(op, a, b))
        if isinstance(a, dict) and not isinstance(b, dict):
            pairs = {k: (v, b, v) for k, v in a.items()}
        elif not isinstance(a, dict) and isinstance(b, dict):
            pairs = {k: (a, v, v) for k, v in b.items()}
        else:
            va, vb = _vector(a), _vector(b)
            pairs = {k: (v, vb[k], v) for k, v in va.items() if k in vb}
        out: Vector = {}
        for k, (x, y, kept) in pairs.items():
            result = _apply(op, x, y)
            if op in _COMPARISONS:
                if result:
                    out[k] = kept
            else:
                out[k] = float(result)
        return out

    return evaluate


def compile_expr(expr: str) -> Callable[[list[Series], float], Value]:
    """The expression as a function of (series, evaluation time)."""
    return _Parser(expr).parse()


def firing(expr: str, for_s: float, series: list[Series], at: float, *, step: float = 30.0) -> Vector:
    """The alert's elements firing at `at`: those the expression returned at every evaluation (every `step`)
    from `at - for_s` to `at`, as Prometheus's pending-then-firing does."""
    evaluate = compile_expr(expr)
    t = at - for_s
    result: Vector | None = None
    while True:
        now = _vector(evaluate(series, min(t, at)))
        result = now if result is None else {k: v for k, v in now.items() if k in result}
        if t >= at or not result:
            return result
        t += step

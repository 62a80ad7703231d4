"""What Grafana does with our dashboards and alert rules, reproduced for the tests.

Grafana cannot run here, so this module does the part of its job that decides
whether a panel or an alert is right:

* **macros** — ``$timeFilter`` becomes ``time >= <from>ms and time <= <to>ms``
  (what Grafana's InfluxQL backend renders), ``$__interval``/``$__interval_ms``
  the interval Grafana would pick, ``$site``/``$device`` the selected values;
* **time ranges** — the dashboard's range or the panel's ``timeFrom``
  (``now/d``, ``now/M``, ``now/y`` rounded in the dashboard time zone, ``24h``…);
* **alert expressions** — ``reduce`` (last/mean/min/max/sum/count, dropping
  non-numbers), ``math`` (``$X`` references, comparison and boolean operators,
  label matching where one label set contains the other) and ``threshold``,
  with ``noDataState: OK``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

Labels = tuple[tuple[str, str], ...]

_DUR = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_NICE_INTERVALS = [10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 86400]


def duration_s(text: str) -> int:
    m = re.fullmatch(r"(\d+)([smhdwy])", text)
    if m is None:
        raise ValueError(f"not a Grafana duration: {text!r}")
    return int(m.group(1)) * _DUR[m.group(2)]


def parse_range(spec: str, now: datetime, tz: ZoneInfo) -> datetime:
    """Start of a Grafana relative range (``now-7d``, ``now/d``, ``now/M``, ``now/y``, or a panel's ``15m``)."""
    local = now.astimezone(tz)
    if spec == "now/d":
        return local.replace(hour=0, minute=0, second=0, microsecond=0)
    if spec == "now/M":
        return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if spec == "now/y":
        return local.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    rel = spec[len("now-"):] if spec.startswith("now-") else spec
    return now - timedelta(seconds=duration_s(rel))


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime

    @property
    def from_ms(self) -> int:
        return int(self.start.timestamp() * 1000)

    @property
    def to_ms(self) -> int:
        return int(self.end.timestamp() * 1000)


def panel_range(dashboard: dict[str, Any], panel: dict[str, Any], now: datetime) -> TimeRange:
    tz = ZoneInfo(dashboard["timezone"])
    spec = panel.get("timeFrom") or dashboard["time"]["from"]
    return TimeRange(parse_range(spec, now, tz), now)


def interval_s(rng: TimeRange, min_interval: str | None, max_points: int = 1000) -> int:
    raw = (rng.to_ms - rng.from_ms) / 1000 / max_points
    nice = next((i for i in _NICE_INTERVALS if i >= raw), _NICE_INTERVALS[-1])
    if min_interval:
        nice = max(nice, duration_s(min_interval))
    return nice


def _interval_text(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def render(query: str, rng: TimeRange, interval: int, variables: dict[str, str]) -> str:
    """Substitute Grafana's macros and template variables the way Grafana would for InfluxQL."""
    q = query.replace("$timeFilter", f"time >= {rng.from_ms}ms and time <= {rng.to_ms}ms")
    q = q.replace("$__interval_ms", str(interval * 1000)).replace("$__interval", _interval_text(interval))
    for name, value in sorted(variables.items(), key=lambda kv: -len(kv[0])):
        q = q.replace(f"${{{name}}}", value).replace(f"${name}", value)
    leftover = re.findall(r"\$[A-Za-z_]\w*", q)
    if leftover:
        raise AssertionError(f"macro(s) {leftover} left in rendered query: {q}")
    return q


# --------------------------------------------------------------------------- query results

Series = dict[Labels, list[float | None]]


def to_series(answer: dict[str, Any]) -> Series:
    """InfluxDB's JSON answer as Grafana's numeric series: one per (tag set, value column)."""
    out: Series = {}
    for result in answer.get("results", []):
        for s in result.get("series", []):
            tags = s.get("tags", {})
            cols = s["columns"]
            for ci, col in enumerate(cols):
                if col == "time":
                    continue
                labels = tuple(sorted(tags.items()))
                if sum(1 for c in cols if c != "time") > 1:
                    labels = tuple(sorted([*tags.items(), ("__field", col)]))
                vals = [row[ci] if isinstance(row[ci], (int, float)) and not isinstance(row[ci], bool) else None
                        for row in s["values"]]
                out[labels] = vals
    return out


def has_data(answer: dict[str, Any]) -> bool:
    return any(v is not None for result in answer.get("results", []) for s in result.get("series", [])
               for row in s["values"] for v in row[1:])


# --------------------------------------------------------------------------- alert expressions

Numbers = dict[Labels, float]


def reduce_series(series: Series, reducer: str) -> Numbers:
    out: Numbers = {}
    for labels, vals in series.items():
        nums = [float(v) for v in vals if v is not None and not math.isnan(float(v))]
        if not nums:
            continue
        fn: dict[str, Callable[[list[float]], float]] = {
            "last": lambda x: x[-1], "mean": lambda x: sum(x) / len(x), "min": min, "max": max,
            "sum": sum, "count": lambda x: float(len(x))}
        out[labels] = fn[reducer](nums)
    return out


def _compatible(a: Labels, b: Labels) -> Labels | None:
    da, db = dict(a), dict(b)
    small, big = (da, db) if len(da) <= len(db) else (db, da)
    if all(big.get(k) == v for k, v in small.items()):
        return tuple(sorted({**da, **db}.items()))
    return None


def math_expr(expression: str, values: dict[str, Numbers]) -> Numbers:
    """Evaluate a Grafana math expression per label set (one side's labels contained in the other's)."""
    refs = sorted(set(re.findall(r"\$([A-Za-z]\w*)", expression)))
    py = expression.replace("&&", " and ").replace("||", " or ")
    for r in refs:
        py = py.replace(f"${r}", f"v_{r}")
    combos: list[tuple[Labels, dict[str, float]]] = [((), {})]
    for r in refs:
        nxt = []
        for labels, env in combos:
            for lab, val in values.get(r, {}).items():
                merged = _compatible(labels, lab)
                if merged is not None:
                    nxt.append((merged, {**env, f"v_{r}": val}))
        combos = nxt
    out: Numbers = {}
    for labels, env in combos:
        out[labels] = float(bool(eval(py, {"__builtins__": {}}, env))) if any(
            op in expression for op in ("<", ">", "==", "!=", "&&", "||")) else float(eval(py, {"__builtins__": {}}, env))
    return out


def threshold(values: Numbers, kind: str, params: list[float]) -> Numbers:
    tests: dict[str, Callable[[float], bool]] = {
        "gt": lambda v: v > params[0], "lt": lambda v: v < params[0],
        "within_range": lambda v: params[0] < v < params[1],
        "outside_range": lambda v: v < params[0] or v > params[1]}
    return {labels: float(tests[kind](v)) for labels, v in values.items()}


def evaluate_rule(rule: dict[str, Any], now: datetime, run_query: Callable[[str], dict[str, Any]]) -> tuple[
        set[Labels], list[str]]:
    """Evaluate one provisioned rule at *now*: the label sets in Alerting state and the queries run."""
    results: dict[str, Any] = {}
    queries: list[str] = []
    for item in rule["data"]:
        model = item["model"]
        ref = item["refId"]
        if item["datasourceUid"] != "__expr__":
            rel = item["relativeTimeRange"]
            rng = TimeRange(now - timedelta(seconds=rel["from"]), now - timedelta(seconds=rel["to"]))
            q = render(model["query"], rng, max(1, model.get("intervalMs", 60000) // 1000), {})
            queries.append(q)
            results[ref] = to_series(run_query(q))
        elif model["type"] == "reduce":
            results[ref] = reduce_series(results[model["expression"]], model["reducer"])
        elif model["type"] == "math":
            results[ref] = math_expr(model["expression"], results)
        elif model["type"] == "threshold":
            ev = model["conditions"][0]["evaluator"]
            results[ref] = threshold(results[model["expression"]], ev["type"], ev["params"])
        else:
            raise AssertionError(f"expression type {model['type']!r} not emulated")
    cond = results[rule["condition"]]
    assert rule["noDataState"] == "OK", "the emulation treats no data as OK"
    return {labels for labels, v in cond.items() if v != 0}, queries

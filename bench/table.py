"""
The bench's one table: rows of measurements, some with a target and whether it is met.
"""

from __future__ import annotations

import math
import statistics
import sys
from dataclasses import dataclass
from typing import Any

from common import Login
from finger_load import percentile

#: (header, row key) of every column, in order.
COLUMNS = (
    ("measurement", "measurement"), ("n", "n"), ("rate/s", "rate"), ("p50 ms", "p50_ms"), ("p90 ms", "p90_ms"),
    ("p99 ms", "p99_ms"), ("max ms", "max_ms"), ("cpu ms/op", "cpu_ms_per_op"), ("errors", "errors"),
    ("ovfl", "overflows"), ("value", "value"), ("target", "target"), ("met?", "met"), ("note", "note"),
)  # fmt: skip
#: Columns printed left-aligned.
LEFT = {"measurement", "target", "met", "note"}
#: How a target names the column it applies to.
FIGURES = {"rate": "rate", "p50": "p50_ms", "p99": "p99_ms", "max": "max_ms"}


@dataclass(frozen=True)
class Target:
    """
    A goal for one figure of a row, C{figure op limit}: e.g. C{Target("p99", "<=", 15, "ms")} reads the row's
    p99 column; C{Target("", "<", 5, "s")} reads the row's C{value}.
    """

    figure: str
    op: str
    limit: float
    unit: str
    #: How to print the limit when not as C{limit unit}, e.g. C{"1 KB"} for 1024 B.
    shown: str = ""

    def __str__(self) -> str:
        limit = self.shown or (f"{self.limit:g}x" if self.unit == "x" else f"{self.limit:g} {self.unit}")
        return f"{self.figure} {self.op} {limit}".strip()

    def met(self, value: float | None) -> str:
        """
        C{yes}, C{NO}, or C{n/a} when there is no figure to judge.
        """
        if value is None or math.isnan(value):
            return "n/a"
        good = {"<": value < self.limit, "<=": value <= self.limit, ">=": value >= self.limit}[self.op]
        return "yes" if good else "NO"


def fmt(value: Any) -> str:
    """
    A cell: C{-} for nothing, numbers with three significant-ish digits.
    """
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.0f}" if abs(value) >= 100 else f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"
    return str(value)


def with_unit(value: float, unit: str) -> str:
    """
    C{0.53x}, C{15 ms}: a figure and its unit (ratios without a space).
    """
    text = fmt(value)
    if text.endswith(".00"):
        text = text[:-3]
    return text + unit if unit == "x" else f"{text} {unit}"


class Table:
    """
    The result rows, printed as one aligned table and optionally written as JSON.
    """

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, measurement: str, target: Target | None = None, unit: str = "", **values: Any) -> dict[str, Any]:
        """
        Add one row and return it; missing columns are printed as C{-}.

        @param target: the row's goal; the figure it reads is put in the C{value} column and judged in C{met}.
        @param unit: the unit of C{values["value"]} (or of the target).
        @param values: the cells by row key (see L{COLUMNS}), C{value} for a single figure.
        """
        row: dict[str, Any] = {"measurement": measurement, **values}
        if target is not None:
            unit = target.unit
            if target.figure:
                row["value"] = values.get(FIGURES[target.figure])
            row["target"], row["met"] = str(target), target.met(row.get("value"))
        if row.get("value") is not None and not math.isnan(row["value"]):
            row["unit"] = unit
        self.rows.append(row)
        shown = {k: v for k, v in row.items() if k not in ("measurement", "note", "unit")}
        print(f"  .. {measurement}: " + ", ".join(f"{k} {fmt(v)}" for k, v in shown.items()), file=sys.stderr,
              flush=True)  # fmt: skip
        return row

    def section(self, title: str) -> None:
        """
        Start a group of rows.
        """
        self.rows.append({"section": title})
        print(f"-- {title}", file=sys.stderr, flush=True)

    def targets(self) -> list[dict[str, Any]]:
        """
        The rows that have a target.
        """
        return [row for row in self.rows if "target" in row]

    def render(self) -> str:
        """
        The aligned table.
        """
        cells = [[header for header, _ in COLUMNS]]
        for row in self.rows:
            if "section" in row:
                cells.append([row["section"]])
                continue
            line = [fmt(row.get(key)) if key not in LEFT else row.get(key, "") for _, key in COLUMNS]
            if "unit" in row:
                line[[key for _, key in COLUMNS].index("value")] = with_unit(row["value"], row["unit"])
            cells.append(line)
        widths = [max(len(r[i]) for r in cells if len(r) > 1) for i in range(len(COLUMNS))]
        lines = []
        for r in cells:
            if len(r) == 1:
                lines.append(f"-- {r[0]} " + "-" * max(0, sum(widths[:-1]) + 2 * len(widths) - len(r[0]) - 4))
                continue
            parts = [
                cell.ljust(width) if key in LEFT else cell.rjust(width)
                for cell, width, (_, key) in zip(r, widths, COLUMNS)
            ]
            lines.append("  ".join(parts).rstrip())
        return "\n".join(lines)


def _ratio(a: float | None, b: float | None) -> float:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return float("nan")
    return a / b


def ratio_row(
    table: Table, name: str, top: dict[str, Any], bottom: dict[str, Any], note: str, target: Target | None = None
) -> dict[str, Any]:
    """
    Add a row of ratios C{top / bottom} of two rows: rate and each latency column.
    """
    columns = ("rate", "p50_ms", "p90_ms", "p99_ms", "max_ms", "cpu_ms_per_op")
    return table.add(name, target, **{column: _ratio(top.get(column), bottom.get(column)) for column in columns},
                     note=note)  # fmt: skip


def finger_row(
    table: Table, name: str, r: dict[str, Any], note: str = "", target: Target | None = None
) -> dict[str, Any]:
    """
    Add a finger result (L{common.finger_run}, L{common.pool}) as a row.
    """
    if r["error_kinds"]:
        note = (note + "; " if note else "") + ", ".join(f"{k} {v}" for k, v in r["error_kinds"].items())
    if r["wrong_answers"]:
        note = (note + "; " if note else "") + f"e.g. {r['wrong_answers'][0]!r}"
    return table.add(name, target, n=r["queries"], rate=r["qps"], p50_ms=r["p50_ms"], p90_ms=r["p90_ms"],
                     p99_ms=r["p99_ms"], max_ms=r["max_ms"], cpu_ms_per_op=r["cpu_ms_per_op"], errors=r["errors"],
                     overflows=r["overflows"], note=note)  # fmt: skip


def login_row(
    table: Table, name: str, runs: list[Login], wall: float | None = None, note: str = "",
    cpu: float | None = None, target: Target | None = None,
) -> dict[str, Any]:  # fmt: skip
    """
    Add a row for a batch of logins (or other timed client steps: edits): rate (if C{wall} is given),
    p50/p90/max of the successful ones, the server's CPU per login (if C{cpu}, its CPU seconds over the batch, is
    given), failures.
    """
    ok = sorted(t for t, good, _ in runs if good)
    failures = [text for _, good, text in runs if not good]
    if failures:
        note = (note + "; " if note else "") + f"first failure: {failures[0][:80]}"
    return table.add(
        name, target, n=len(ok), rate=(len(ok) / wall) if wall else None,
        p50_ms=statistics.median(ok) * 1000 if ok else float("nan"), p90_ms=percentile(ok, 0.9) * 1000,
        max_ms=(ok[-1] * 1000) if ok else float("nan"),
        cpu_ms_per_op=(cpu * 1000 / len(runs)) if cpu is not None and runs else None, errors=len(failures), note=note,
    )  # fmt: skip

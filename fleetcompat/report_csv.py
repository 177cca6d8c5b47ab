"""The CSV files of a report (columns documented in docs/reports.md).

- `matrix.csv`: one row per host, one column per image, cells yes/no/error/n/a;
- `results_long.csv`: one row per host x image x compatibility set x failing
  expression, for every cell that is not compatible (error and not-evaluated cells
  get one row with the reason);
- `hosts.csv`: the hosts with their snapshot and its age.

Text cells that a spreadsheet would run as a formula get a quote in front
(`safe_cell`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fleetcompat.evaluate import COMPATIBLE, ERROR, INCOMPATIBLE, NOT_EVALUATED
from fleetcompat.runview import RunView
from fleetcompat.store import EvalImage, EvalResult, Snapshot

CSV_CELLS = {"C": "yes", "I": "no", "E": "error", "N": "n/a"}

MATRIX_COLUMNS = ["host", "groups", "arch", "status", "snapshot_taken_at"]
"""The leading columns of matrix.csv; one column per image follows."""
LONG_COLUMNS = [
    "host",
    "image",
    "platform",
    "artifact",
    "verdict",
    "set",
    "set_tag",
    "set_verdict",
    "rule",
    "feature",
    "element",
    "matcher",
    "op",
    "value",
    "actual",
    "explanation",
    "reason",
]
"""The columns of results_long.csv."""
HOST_COLUMNS = [
    "host",
    "groups",
    "status",
    "reason",
    "snapshot_id",
    "snapshot_taken_at",
    "snapshot_age_hours",
    "arch",
    "feature_set",
    "os",
    "kernel",
    "latest_outcome",
    "latest_reason",
    "latest_attempt_at",
]
"""The columns of hosts.csv (new ones only ever appended)."""


def write_matrix_csv(view: RunView, path: Path) -> None:
    """matrix.csv: hosts x images, cells yes/no/error/n/a.

    Each unit's cells are formatted once (by pandas) and written after each of its
    hosts' leading columns.
    """
    lead = pd.DataFrame(
        {
            "host": [safe_cell(h.host) for h in view.hosts],
            "groups": [safe_cell(",".join(h.groups)) for h in view.hosts],
            "arch": [h.arch for h in view.hosts],
            "status": [h.status for h in view.hosts],
            "snapshot_taken_at": [h.taken_at for h in view.hosts],
        },
        columns=MATRIX_COLUMNS,
    )
    labels = np.array(["n/a"] * 256, dtype=object)
    for letter, text in CSV_CELLS.items():
        labels[ord(letter)] = text
    unit_lines = _csv_lines(pd.DataFrame(labels[view.codes]))
    unevaluated = ",".join(["n/a"] * len(view.images))

    with path.open("w", encoding="utf-8", newline="") as out:
        images = [safe_cell(name) for name in view.images]
        header = pd.DataFrame(columns=MATRIX_COLUMNS + images)
        header.to_csv(out, index=False, lineterminator="\n")
        for host, line in zip(view.hosts, _csv_lines(lead), strict=True):
            cells = (
                unit_lines[view.unit_of_host[host.idx]]
                if host.status == "ok"
                else unevaluated
            )
            out.write(f"{line},{cells}\n" if view.images else f"{line}\n")


def _csv_lines(frame: pd.DataFrame) -> list[str]:
    """A frame's rows as CSV lines (no header, no index), formatted by pandas."""
    if frame.empty:
        return [""] * len(frame)
    text: str = frame.to_csv(index=False, header=False, lineterminator="\n")
    return text.split("\n")[:-1]


def write_long_csv(view: RunView, path: Path) -> None:
    """results_long.csv: a row per host x image x set x failing expression.

    Hosts of one unit share their rows: each unit's rows are formatted once (by
    pandas) and written after each of its hosts' names. Hosts come in name order
    when the run has at most `_CACHED_UNITS` units, else grouped by unit.
    """
    columns = LONG_COLUMNS[1:]
    blocks: dict[int, str] = {}
    hosts = list(view.hosts)
    many = view.cells.shape[0] > _CACHED_UNITS
    if many:
        hosts.sort(key=lambda h: (view.unit_of_host[h.idx], h.host))

    with path.open("w", encoding="utf-8", newline="") as out:
        pd.DataFrame(columns=LONG_COLUMNS).to_csv(out, index=False)
        for host in hosts:
            prefix = _csv_field(safe_cell(host.host)) + ","
            if host.status != "ok":
                rows = [
                    _long_row("", image, NOT_EVALUATED, host.reason)[1:]
                    for image in view.images
                ]
                out.write(_prefixed(prefix, _csv_block(rows, columns)))
                continue
            unit = view.unit_of_host[host.idx]
            block = blocks.get(unit)
            if block is None:
                block = _csv_block(list(_unit_long_rows(view, unit)), columns)
                if many:
                    blocks.clear()
                blocks[unit] = block
            out.write(_prefixed(prefix, block))


_CACHED_UNITS = 2000


def _csv_block(rows: list[list[Any]], columns: list[str]) -> str:
    """Rows as CSV text (no header), formatted by pandas."""
    if not rows:
        return ""
    rows = [[_one_line(safe_cell(v)) for v in row] for row in rows]
    text: str = pd.DataFrame(rows, columns=columns).to_csv(
        index=False, header=False, lineterminator="\n"
    )
    return text


def safe_cell(value: Any) -> Any:
    """A text cell that a spreadsheet will not run as a formula (OWASP's advice).

    Text starting with =, +, -, @, a tab or a carriage return gets a single quote
    in front unless the whole cell is a number (such as -1, +2 or -1.5e3); so
    `-2+3` and `-1+1+cmd|...` are quoted. Every other value is left as it is.
    """
    if not isinstance(value, str) or not value:
        return value
    if value[0] in _FORMULA_STARTS and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
"""A plain decimal number, the only text starting with - or + left unquoted."""
_FORMULA_STARTS = frozenset("=+-@\t\r")


def _one_line(value: Any) -> Any:
    """A cell with line breaks turned into spaces, so each row is one line."""
    if isinstance(value, str) and ("\n" in value or "\r" in value):
        return value.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    return value


def _prefixed(prefix: str, block: str) -> str:
    """Every line of a CSV block with `prefix` (the host column) in front."""
    if not block:
        return ""
    return prefix + block[:-1].replace("\n", "\n" + prefix) + "\n"


def _csv_field(text: str) -> str:
    """One CSV field, quoted as pandas (and RFC 4180) would quote it."""
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _long_row(host: str, image: str, verdict: str, reason: str) -> list[Any]:
    """A results_long row for a cell with no expressions (error, not evaluated)."""
    row: list[Any] = [host, image] + [""] * (len(LONG_COLUMNS) - 2)
    row[LONG_COLUMNS.index("verdict")] = verdict
    row[LONG_COLUMNS.index("reason")] = reason
    return row


def _unit_long_rows(view: RunView, unit: int) -> Iterator[list[Any]]:
    """The results_long rows of one unit, without the host column."""
    by_idx = {t.idx: t for targets in view.targets.values() for t in targets}
    for col, image in enumerate(view.images):
        cell = int(view.cells[unit, col])
        if cell < 0:
            yield _long_row("", image, NOT_EVALUATED, view.reasons[-cell - 1])[1:]
            continue
        result = view.results[cell]
        if result.verdict == COMPATIBLE:
            continue
        target = by_idx[view.result_targets[cell]]
        if result.verdict == ERROR:
            row = _long_row("", image, ERROR, result.error)[1:]
            row[1], row[2] = target.platform, target.artifact or ""
            yield row
            continue
        yield from _failing_rows(image, target, result)


def _failing_rows(
    image: str, target: EvalImage, result: EvalResult
) -> Iterator[list[Any]]:
    """Rows for every failing expression of every failing set of a result."""
    for number, entry in enumerate(result.detail.get("sets", [])):
        if entry["ok"]:
            continue
        tag = target.sets[number].get("tag", "") if number < len(target.sets) else ""
        for rule in entry["rules"]:
            items = list(rule["items"]) + [i for alt in rule["any"] for i in alt]
            for item in items or [None]:
                for expr in (item or {}).get("expressions") or [None]:
                    yield [
                        image,
                        target.platform,
                        target.artifact or "",
                        INCOMPATIBLE,
                        number,
                        tag,
                        "incompatible",
                        rule["name"],
                        (item or {}).get("feature", ""),
                        (expr or {}).get("name", ""),
                        (expr or {}).get("matcher", ""),
                        (expr or {}).get("op", ""),
                        json.dumps(expr["value"]) if expr and "value" in expr else "",
                        (item or {}).get("actual", ""),
                        (item or {}).get("why", ""),
                        "",
                    ]


def write_hosts_csv(
    view: RunView,
    facts: dict[str, dict[str, str]],
    attempts: dict[str, Snapshot],
    path: Path,
) -> None:
    """hosts.csv: the hosts, their snapshot, its age, and their newest attempt."""
    now = datetime.now(UTC)
    rows = []
    for host in view.hosts:
        fact = facts.get(host.feature_set or "", {})
        latest = attempts.get(host.host)
        rows.append(
            [
                host.host,
                ",".join(host.groups),
                host.status,
                host.reason,
                host.snapshot_id if host.snapshot_id is not None else "",
                host.taken_at,
                _age_hours(host.taken_at, now),
                host.arch,
                host.feature_set or "",
                fact.get("os", ""),
                fact.get("kernel", ""),
                latest.status if latest else "",
                latest.error if latest else "",
                latest.taken_at if latest else "",
            ]
        )
    rows = [[safe_cell(value) for value in row] for row in rows]
    pd.DataFrame(rows, columns=HOST_COLUMNS).to_csv(path, index=False)


def _age_hours(taken_at: str, now: datetime) -> str:
    """Hours since an ISO time, one decimal; "" when there is no time."""
    if not taken_at:
        return ""
    try:
        then = datetime.fromisoformat(taken_at.replace("Z", "+00:00"))
    except ValueError:
        return ""
    return f"{(now - then).total_seconds() / 3600:.1f}"

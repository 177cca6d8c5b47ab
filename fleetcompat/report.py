"""Reports of a stored evaluation run: one self-contained HTML file and CSV files.

`write_report(store, run_id, out_dir)` renders a run already in the store; it never
collects or evaluates. The HTML page has everything inline (CSS, JS, SVG plots, the
data as JSON in a `<script type="application/json">`), so it opens from a USB stick
with no network. Every value from a host or a spec reaches the page either through
Jinja2 with autoescaping or through that JSON (with `<` written as `\\u003c`), and
the page's script only ever puts data into `textContent`, never into markup.

The matrix is kept small by grouping: hosts evaluated from the same feature set
(a "unit") have the same cells, and units with the same verdict row form one matrix
row. A spec that reads `system.name` makes every host its own unit.

CSV files (columns documented in docs/reports.md):

- `matrix.csv`: one row per host, one column per image, cells yes/no/error/n/a;
- `results_long.csv`: one row per host x image x compatibility set x failing
  expression, for every cell that is not compatible (error and not-evaluated cells
  get one row with the reason);
- `hosts.csv`: the hosts with their snapshot and its age.

Text cells that a spreadsheet would run as a formula get a quote in front
(`safe_cell`).

jinja2 and pandas are used here and nowhere else.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd

from fleetcompat.errors import InputError, StoreError
from fleetcompat.evaluate import (
    COMPATIBLE,
    ERROR,
    INCOMPATIBLE,
    NOT_EVALUATED,
)
from fleetcompat.runview import (
    CODES,
    RunView,
    changes,
    host_row,
    layout_problems,
    load_run,
    previous_run,
)
from fleetcompat.store import EvalImage, EvalResult, Snapshot, Store

CSV_CELLS = {"C": "yes", "I": "no", "E": "error", "N": "n/a"}
DRIFT_RUNS = 20

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


@dataclass(frozen=True)
class ReportFiles:
    """Where a report's files were written."""

    html: Path
    matrix_csv: Path
    long_csv: Path | None
    hosts_csv: Path


def write_report(
    store: Store, run_id: int | None, out_dir: Path, *, long_csv: bool = True
) -> ReportFiles:
    """Render a run (the newest evaluation when `run_id` is None) into `out_dir`.

    `long_csv=False` leaves out results_long.csv, the one file whose size grows
    with hosts x images (gigabytes at 10,000 x 1,000).
    """
    view = load_run(store, run_id)
    previous = previous_run(store, view.run.id)
    out_dir = Path(out_dir)
    try:
        return _write_files(store, view, previous, out_dir, long_csv)
    except OSError as exc:
        if exc.filename and not _inside(Path(str(exc.filename)), out_dir):
            raise  # not the output: a template of the package, a bug
        raise _unwritable(out_dir, exc) from exc


def _inside(path: Path, directory: Path) -> bool:
    """Whether `path` is `directory` or lies under it."""
    return path == directory or directory in path.parents


def check_out_dir(out_dir: Path) -> None:
    """Make sure a report can be written into `out_dir`, creating it if need be.

    Raises InputError naming the directory when it cannot be created or written.
    """
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".fleetcompat-", dir=out_dir)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise _unwritable(out_dir, exc) from exc


def _unwritable(out_dir: Path, exc: OSError) -> InputError:
    """The one-line error for a report directory or file that cannot be written."""
    where = exc.filename or out_dir
    return InputError(f"{where}: cannot write the report: {exc.strerror or exc}")


def _write_files(
    store: Store,
    view: RunView,
    previous: RunView | None,
    out_dir: Path,
    long_csv: bool,
) -> ReportFiles:
    """Write the report's files into `out_dir`; OSError is left to the caller."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files_ = ReportFiles(
        out_dir / "report.html",
        out_dir / "matrix.csv",
        out_dir / "results_long.csv" if long_csv else None,
        out_dir / "hosts.csv",
    )
    features = _host_facts(store, view)
    _write_html(store, view, previous, features, files_.html)
    _write_matrix_csv(view, files_.matrix_csv)
    if files_.long_csv is not None:
        _write_long_csv(view, files_.long_csv)
    _write_hosts_csv(view, features, latest_attempts(store, view), files_.hosts_csv)
    return files_


def _host_facts(store: Store, view: RunView) -> dict[str, dict[str, str]]:
    """A few descriptive features per feature set: OS, kernel, CPU."""
    facts: dict[str, dict[str, str]] = {}
    for host in view.hosts:
        digest = host.feature_set
        if digest is None or digest in facts:
            continue
        try:
            features = store.feature_set(digest)
        except StoreError:  # pruned since this run: nothing to describe it by
            facts[digest] = {}
            continue
        osr = features.attributes.get("system.osrelease", {})
        cpu = features.attributes.get("cpu.model", {})
        facts[digest] = {
            "os": osr.get("PRETTY_NAME") or osr.get("ID", ""),
            "kernel": features.attributes.get("kernel.version", {}).get("full", ""),
            "cpu": " ".join(
                f"{k}={cpu[k]}" for k in ("vendor_id", "family", "id") if k in cpu
            ),
        }
    return facts


# HTML


def _write_html(
    store: Store,
    view: RunView,
    previous: RunView | None,
    facts: dict[str, dict[str, str]],
    path: Path,
) -> None:
    """Render report.html from the templates in fleetcompat.reports."""
    assets = files("fleetcompat.reports")
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(
            lambda name: assets.joinpath(name).read_text(encoding="utf-8")
        ),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    template = env.get_template("report.html.j2")
    data = _page_data(view, facts)
    summary = _summary(store, view, previous)
    html = template.render(
        nonce=secrets.token_urlsafe(16),
        run=view.run,
        summary=summary,
        css=assets.joinpath("report.css").read_text(encoding="utf-8"),
        script=assets.joinpath("report.js").read_text(encoding="utf-8"),
        data_json=json_for_script(data),
        plots=_plots(store, view),
    )
    path.write_text(html, encoding="utf-8")


def json_for_script(data: Any) -> str:
    """JSON safe inside a `<script type="application/json">` element."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return (
        text.replace("<", "\\u003c")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _page_data(view: RunView, facts: dict[str, dict[str, str]]) -> dict[str, Any]:
    """The JSON the page's script renders: images, units, hosts, results."""
    units = view.cells.shape[0]
    unit_info: list[dict[str, Any]] = [{} for _ in range(units)]
    for host in view.hosts:
        if host.subject >= 0:
            unit = view.unit_of_host[host.idx]
            fact = facts.get(host.feature_set or "", {})
            unit_info[unit] = {"arch": host.arch, **fact}
    rows = [
        {
            **unit_info[u],
            "row": bytes(view.codes[u]).decode(),
            "cells": view.cells[u].tolist(),
        }
        for u in range(units)
    ]
    images = [
        {
            "name": name,
            "targets": [
                {
                    "idx": t.idx,
                    "platform": t.platform or "any",
                    "artifact": t.artifact or "",
                    "status": t.status,
                    "reason": t.reason,
                    "sets": list(t.sets),
                }
                for t in view.targets[name]
            ],
        }
        for name in view.images
    ]
    results = [
        {
            "v": CODES[r.verdict],
            "sets": r.set_verdicts,
            "error": r.error,
            "blocker": r.blocker,
            "detail": r.detail,
            "target": view.result_targets[i],
        }
        for i, r in enumerate(view.results)
    ]
    hosts = [
        [
            h.host,
            view.unit_of_host[h.idx] if h.status == "ok" else -1,
            ",".join(h.groups),
            h.taken_at,
            h.reason,
        ]
        for h in view.hosts
    ]
    return {
        "run": view.run.id,
        "images": images,
        "units": rows,
        "hosts": hosts,
        "results": results,
        "reasons": view.reasons,
    }


def _summary(store: Store, view: RunView, previous: RunView | None) -> dict[str, Any]:
    """Counts per image and host group, changes since the last run, failures."""
    counts = Counter[str]()
    group_counts: dict[str, Counter[str]] = defaultdict(Counter)
    rows = {h.host: host_row(view, h) for h in view.hosts}
    for host in view.hosts:
        row = Counter(rows[host.host])
        counts.update(row)
        for group in host.groups or ("(no group)",):
            group_counts[group].update(row)

    per_image = []
    hosts_ok = [h for h in view.hosts if h.status == "ok"]
    weights = np.bincount(
        [view.unit_of_host[h.idx] for h in hosts_ok], minlength=view.codes.shape[0]
    )
    for col, name in enumerate(view.images):
        column = view.codes[:, col] if view.codes.size else np.array([], np.uint8)
        image_counts = {
            letter: int(weights[column == ord(letter)].sum()) for letter in "CIEN"
        }
        image_counts["N"] += len(view.hosts) - len(hosts_ok)
        per_image.append((name, image_counts))

    return {
        "totals": {letter: counts.get(letter, 0) for letter in "CIEN"},
        "hosts": len(view.hosts),
        "images": len(view.images),
        "per_image": per_image,
        "per_group": sorted(
            (g, {letter: c.get(letter, 0) for letter in "CIEN"})
            for g, c in group_counts.items()
        ),
        "changes": changes(store, view, previous, rows),
        "not_collected": _not_collected(store, view),
        "layout_problems": layout_problems(view),
    }


def _not_collected(store: Store, view: RunView) -> list[dict[str, str]]:
    """Hosts with no good snapshot, or whose newest attempt failed, and why."""
    attempts = latest_attempts(store, view)
    found = []
    for host in view.hosts:
        latest = attempts.get(host.host)
        if host.status != "ok":
            found.append({"host": host.host, "why": host.reason, "stale": ""})
        elif latest is not None and not latest.ok:
            found.append(
                {
                    "host": host.host,
                    "why": f"{latest.status}: {latest.error}",
                    "stale": f"evaluated from the snapshot of {host.taken_at}",
                }
            )
    return found


def latest_attempts(store: Store, view: RunView) -> dict[str, Snapshot]:
    """Each host's newest collection attempt that came before the run, if any.

    A snapshot row stands for repeated equal attempts; it counts when its first
    attempt came before the run started.
    """
    statuses = {s.host.name: s for s in store.hosts()}
    started = view.run.started_at
    found: dict[str, Snapshot] = {}
    for host in view.hosts:
        status = statuses.get(host.host)
        latest = status.latest if status else None
        if latest is not None and (latest.first_taken_at or latest.taken_at) > started:
            earlier = (
                s
                for s in store.snapshots(host.host)
                if (s.first_taken_at or s.taken_at) <= started
            )
            latest = next(earlier, None)
        if latest is not None:
            found[host.host] = latest
    return found


def _plots(store: Store, view: RunView) -> dict[str, Any]:
    """Numbers for the inline SVG plots: shares per image, drift over runs."""
    summary_runs = list(reversed(store.runs("evaluate", limit=DRIFT_RUNS)))
    drift = []
    for run in summary_runs:
        if run.id > view.run.id:
            continue
        counts = run.counts
        total = sum(counts.get(f"cells_{v}", 0) for v in CODES)
        if total:
            drift.append((run.id, counts.get(f"cells_{COMPATIBLE}", 0) / total))

    hosts_ok = [h for h in view.hosts if h.status == "ok"]
    weights = np.bincount(
        [view.unit_of_host[h.idx] for h in hosts_ok], minlength=view.codes.shape[0]
    )
    shares = []
    total_hosts = max(len(view.hosts), 1)
    for col, name in enumerate(view.images):
        column = view.codes[:, col] if view.codes.size else np.array([], np.uint8)
        compatible = int(weights[column == ord("C")].sum())
        shares.append((name, compatible / total_hosts))
    shares.sort(key=lambda item: (item[1], item[0]))
    return {"shares": shares[:40], "share_count": len(shares), "drift": drift}


# CSV


def _write_matrix_csv(view: RunView, path: Path) -> None:
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


def _write_long_csv(view: RunView, path: Path) -> None:
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


def _write_hosts_csv(
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

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

The CSV files are written by `fleetcompat.report_csv`. jinja2 is used here and
pandas there, and neither anywhere else (numpy, which pandas brings, also in
`fleetcompat.runview`).
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from fleetcompat.errors import InputError, StoreError
from fleetcompat.evaluate import COMPATIBLE
from fleetcompat.report_csv import write_hosts_csv, write_long_csv, write_matrix_csv
from fleetcompat.runview import (
    CODES,
    RunView,
    changes,
    host_row,
    layout_problems,
    load_run,
    previous_run,
)
from fleetcompat.store import Snapshot, Store

DRIFT_RUNS = 20


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
    write_matrix_csv(view, files_.matrix_csv)
    if files_.long_csv is not None:
        write_long_csv(view, files_.long_csv)
    write_hosts_csv(view, features, latest_attempts(store, view), files_.hosts_csv)
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

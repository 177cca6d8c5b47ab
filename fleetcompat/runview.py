"""A stored evaluation run arranged for reading: hosts x images, and its changes.

`load_run` joins what a run stored (hosts -> subject, images -> artifact, pairs ->
result) into a units x images matrix, where a unit is the set of hosts that share
every result (hosts of one feature set, or each host alone when a spec reads
`system.name`). Reports and checks read cells through it; no cell is stored.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from fleetcompat.errors import StoreError
from fleetcompat.evaluate import (
    COMPATIBLE,
    ERROR,
    INCOMPATIBLE,
    NOT_EVALUATED,
    platform_arch,
    unmatched_reason,
)
from fleetcompat.platforms import ANY_PLATFORM
from fleetcompat.store import EvalHost, EvalImage, EvalPair, EvalResult, Run, Store

CODES = {COMPATIBLE: "C", INCOMPATIBLE: "I", ERROR: "E", NOT_EVALUATED: "N"}
"""The letter of each verdict in rows and in the report's data."""


@dataclass
class RunView:
    """A stored evaluation run, arranged for rendering: units x images."""

    run: Run
    hosts: list[EvalHost]
    images: list[str]
    targets: dict[str, list[EvalImage]]
    results: list[EvalResult]
    reasons: list[str]
    unit_of_host: list[int]
    cells: np.ndarray
    """units x images: >= 0 a result index, < 0 a reason index as -(i + 1)."""
    codes: np.ndarray
    """units x images: the verdict letter's byte (C, I, E, N)."""
    result_targets: list[int]
    """For each result, the index of the image target it came from."""


def load_run(store: Store, run_id: int | None = None) -> RunView:
    """Read a stored evaluation run into a RunView; StoreError when there is none."""
    if run_id is None:
        runs = store.runs("evaluate", limit=1)
        if not runs:
            raise StoreError(f"{store.path}: no evaluation run yet; run evaluate")
        run = runs[0]
    else:
        run = store.run(run_id)
        if run.kind != "evaluate":
            raise StoreError(f"{store.path}: run {run_id} is a {run.kind} run")

    hosts = store.eval_hosts(run.id)
    rows = store.eval_images(run.id)
    pairs = store.eval_pairs(run.id)
    targets: dict[str, list[EvalImage]] = defaultdict(list)
    for row in rows:
        targets[row.image].append(row)
    images = sorted(targets)
    per_host = any(row.per_host for row in rows)

    stored = store.eval_results((p.projection, p.artifact) for p in pairs)
    keys = sorted(stored)
    results = [stored[key] for key in keys]
    unit_of_host = [h.idx if per_host else h.subject for h in hosts]
    units = len(hosts) if per_host else max((h.subject for h in hosts), default=-1) + 1
    cells = np.full((units, len(images)), -1, dtype=np.int64)

    result_targets = _place_results(cells, hosts, rows, pairs, keys, images, per_host)
    reasons = _place_reasons(cells, hosts, unit_of_host, targets, images)
    lookup = np.array(
        [ord(CODES[r.verdict]) for r in results] or [ord("N")], dtype=np.uint8
    )
    codes = np.where(cells >= 0, lookup[np.clip(cells, 0, None)], ord("N"))
    return RunView(
        run,
        hosts,
        images,
        dict(targets),
        results,
        reasons,
        unit_of_host,
        cells,
        codes.astype(np.uint8),
        result_targets,
    )


def _place_results(
    cells: np.ndarray,
    hosts: list[EvalHost],
    rows: list[EvalImage],
    pairs: list[EvalPair],
    keys: list[tuple[str, str]],
    images: list[str],
    per_host: bool,
) -> list[int]:
    """Put each pair's result index into its members' cells.

    Returns, per result, the image target it came from (the last one, when
    targets share an artifact).
    """
    result_index = {key: i for i, key in enumerate(keys)}
    column = {name: i for i, name in enumerate(images)}
    by_row = {row.idx: row for row in rows}
    hosts_of_subject: dict[int, list[int]] = defaultdict(list)
    for host in hosts:
        hosts_of_subject[host.subject].append(host.idx)

    result_targets = [0] * len(keys)
    for pair in pairs:
        target = by_row[pair.image_idx]
        index = result_index.get((pair.projection, pair.artifact))
        if index is None:
            continue
        result_targets[index] = target.idx
        members = list(pair.members)
        if per_host and not target.per_host:
            members = [h for m in pair.members for h in hosts_of_subject[m]]
        cells[members, column[target.image]] = index
    return result_targets


def _place_reasons(
    cells: np.ndarray,
    hosts: list[EvalHost],
    unit_of_host: list[int],
    targets: dict[str, list[EvalImage]],
    images: list[str],
) -> list[str]:
    """Fill the cells no pair reached with why, as -(reason index + 1)."""
    reasons: list[str] = []
    reason_index: dict[str, int] = {}
    unit_arch = {unit_of_host[h.idx]: h.arch for h in hosts if h.subject >= 0}
    for unit in range(cells.shape[0]):
        for col in np.nonzero(cells[unit] < 0)[0]:
            platforms = [(t.platform, t.status) for t in targets[images[col]]]
            reason = unmatched_reason(unit_arch.get(unit, ""), platforms)
            if reason not in reason_index:
                reason_index[reason] = len(reasons)
                reasons.append(reason)
            cells[unit, col] = -(reason_index[reason] + 1)
    return reasons


def host_row(view: RunView, host: EvalHost) -> str:
    """A host's verdict letters, one per image (all N for an unevaluated host)."""
    if host.status != "ok":
        return "N" * len(view.images)
    return bytes(view.codes[view.unit_of_host[host.idx]]).decode()


def previous_run(store: Store, run_id: int) -> RunView | None:
    """The evaluation run before this one, if any."""
    earlier = [r for r in store.runs("evaluate") if r.id < run_id]
    return load_run(store, earlier[0].id) if earlier else None


def changes(
    store: Store, view: RunView, previous: RunView | None, rows: dict[str, str]
) -> dict[str, Any]:
    """What changed since the previous evaluation run."""
    if previous is None:
        return {"previous": None}
    before_rows = {h.host: host_row(previous, h) for h in previous.hosts}
    before_col = {name: i for i, name in enumerate(previous.images)}
    common = [(i, before_col[n]) for i, n in enumerate(view.images) if n in before_col]
    before_hosts = {h.host: h for h in previous.hosts}
    became_incompatible: list[tuple[str, str]] = []
    incompatible_why: list[str] = []
    unevaluated: list[tuple[str, str]] = []
    unevaluated_why: list[str] = []
    lost: list[tuple[str, str]] = []
    became_compatible: list[tuple[str, str]] = []
    for host in view.hosts:
        old = before_rows.get(host.host)
        if old is None:
            continue
        new = rows[host.host]
        for now_col, old_col in common:
            a, b = old[old_col], new[now_col]
            if a == b:
                continue
            image = view.images[now_col]
            if a == "C":
                lost.append((host.host, image))
            if a == "C" and b == "I":
                became_incompatible.append((host.host, image))
                earlier = before_hosts[host.host]
                incompatible_why.append(_why_lost(previous, earlier, view, host, image))
            elif a == "C":
                unevaluated.append((host.host, image))
                unevaluated_why.append(cell_reason(view, host, now_col))
            elif b == "C":
                became_compatible.append((host.host, image))

    old_sets = {h.host: h.feature_set for h in previous.hosts}
    feature_changes = []
    for host in view.hosts:
        before = old_sets.get(host.host)
        if before and host.feature_set and before != host.feature_set:
            feature_changes.append(
                (host.host, _feature_diff(store, before, host.feature_set))
            )
    removed, unread = _removed_images(view, previous)
    return {
        "previous": previous.run.id,
        "lost": lost,
        "became_incompatible": became_incompatible,
        "became_incompatible_why": incompatible_why,
        "no_longer_evaluated": unevaluated,
        "no_longer_evaluated_why": unevaluated_why,
        "became_compatible": became_compatible,
        "images_added": sorted(set(view.images) - set(previous.images)),
        "images_removed": removed,
        "images_unread": unread,
        "feature_changes": feature_changes,
        "hosts_added": sorted({h.host for h in view.hosts} - set(old_sets)),
        "hosts_removed": sorted(set(old_sets) - {h.host for h in view.hosts}),
    }


def _removed_images(view: RunView, previous: RunView) -> tuple[list[str], list[str]]:
    """Images gone since the previous run: removed, and in a layout not read now.

    An image of a layout that could not be read this time is not known to be
    removed. A previous run that did not record its images' layouts (runs before
    layouts were recorded) cannot tell, so all its gone images count as unread
    when any layout could not be read.
    """
    gone = sorted(set(previous.images) - set(view.images))
    unread = set(view.run.settings.get("layouts_unread", []))
    if not unread:
        return gone, []
    where = previous.run.settings.get("image_layouts")
    if not isinstance(where, dict):
        return [], gone
    removed = [image for image in gone if where.get(image) not in unread]
    return removed, [image for image in gone if where.get(image) in unread]


def cell_reason(view: RunView, host: EvalHost, col: int) -> str:
    """Why a host x image cell is not evaluated, or the error it is."""
    if host.status != "ok":
        return host.reason or "the host has no good snapshot"
    index = int(view.cells[view.unit_of_host[host.idx], col])
    if index < 0:
        reason = view.reasons[-index - 1]
        target = _target_for(view, host, view.images[col])
        if target is not None and target.status != "ok" and target.reason:
            return f"{reason}: {target.reason}"
        return reason
    result = view.results[index]
    if result.verdict == ERROR:
        return f"error: {result.error}" if result.error else "error"
    return result.verdict


def layout_problems(view: RunView) -> list[str]:
    """What was wrong with the run's layouts, as stored with the run."""
    return [str(p) for p in view.run.settings.get("layout_problems", [])]


def _why_lost(
    previous: RunView, before: EvalHost, view: RunView, host: EvalHost, image: str
) -> str:
    """What changed for a host x image that was compatible and is not any more."""
    reasons = []
    was = _artifact_for(previous, before, image)
    now = _artifact_for(view, host, image)
    if was and now and was != now:
        reasons.append(
            f"the image's compatibility artifact changed ({was[:19]} -> {now[:19]})"
        )
    if (
        before.feature_set
        and host.feature_set
        and before.feature_set != host.feature_set
    ):
        reasons.append("the host's features changed")
    return "; ".join(reasons)


def _artifact_for(view: RunView, host: EvalHost, image: str) -> str:
    """The artifact digest a host's cell of an image was evaluated with ("" if none)."""
    target = _target_for(view, host, image)
    return (target.artifact or "") if target is not None else ""


def _target_for(view: RunView, host: EvalHost, image: str) -> EvalImage | None:
    """The image target a host's cell comes from: its platform's, else the any."""
    targets = view.targets.get(image, [])
    for target in targets:
        if (
            host.arch
            and target.platform
            and platform_arch(target.platform) == host.arch
        ):
            return target
    for target in targets:
        if target.platform == ANY_PLATFORM:
            return target
    return None


def regressions(store: Store, run_id: int) -> list[tuple[str, str]]:
    """(host, image) cells compatible in the previous run and not in this one."""
    view = load_run(store, run_id)
    previous = previous_run(store, run_id)
    if previous is None:
        return []
    rows = {h.host: host_row(view, h) for h in view.hosts}
    found = changes(store, view, previous, rows)
    return list(found["lost"])


def _feature_diff(store: Store, before: str, after: str) -> list[str]:
    """The feature names whose elements differ between two stored feature sets.

    A set pruned from the store since (see `Store.prune`) cannot be compared.
    """
    try:
        a, b = store.feature_set(before), store.feature_set(after)
    except StoreError:
        return ["(an earlier feature set was pruned from the store)"]
    changed = []
    for name in sorted(a.names() | b.names()):
        if (
            a.flags.get(name) != b.flags.get(name)
            or a.attributes.get(name) != b.attributes.get(name)
            or a.instances.get(name) != b.instances.get(name)
        ):
            changed.append(name)
    return changed


def verdict_counts(view: RunView) -> dict[str, int]:
    """Cells per verdict over hosts x images, for checks and the CLI."""
    letters = Counter[str]()
    for host in view.hosts:
        letters.update(host_row(view, host))
    names = {v: k for k, v in CODES.items()}
    return {names[letter]: letters.get(letter, 0) for letter in "CIEN"}

"""Every host x every image, with NFD's engine, evaluated once per distinct input.

`evaluate_fleet(store, catalog)` checks each image's chosen compatibility artifact
against the latest good snapshot of every host in the store and saves the run.

How it stays fast on a fleet that repeats itself:

- Hosts are grouped into subjects: the distinct stored feature sets (stored without
  `system.name`, so ten thousand hosts of fifty machine models are fifty subjects).
- Each spec reads few features. `Spec.feature_references()` names them, and each
  subject's features are projected onto them: only the referenced features, and
  within them only the referenced elements (the whole feature when the spec needs
  it, e.g. for matchName). A feature the host has but with none of the referenced
  elements stays, empty, so "absent" and "present" keep NFD's meaning. Instances are
  projected onto the referenced attributes and, unless a rule renders a template
  over them, deduplicated (which device count a host has does not change a verdict).
- The projection's sha256 with the artifact's digest keys the result. One
  evaluation per distinct key, fanned out to every subject (and host) with it; keys
  already in the store from an earlier run are reused, not evaluated again.
- A spec that reads `system.name` (NFD's node name) is projected per host, since
  the name is each host's own.

Which artifact a host gets is decided in `fleetcompat.platforms`.

Verdicts per host x image: compatible, incompatible, error (a spec that cannot be
parsed, or a rule error NFD would abort on), or not evaluated with the reason. NFD
reports each compatibility set on its own and gives no overall answer; ours
(`holds`) reads the sets as Kubernetes reads node affinity: sets without a weight
are requirements that must all hold, and sets with a weight are preferences of
which at least one must hold (NFD's own example has a "preferred" set of weight 10
and a "fallback" of weight 1). Per set, `EvalResult.set_verdicts` has one letter.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fleetcompat.errors import InputError, RuleError
from fleetcompat.features import Features
from fleetcompat.platforms import (
    ANY_PLATFORM,
    ImageTarget,
    choose_target,
    host_architecture,
    platform_arch,
    unmatched_reason,
)
from fleetcompat.spec import project_features
from fleetcompat.store import (
    EvalHost,
    EvalImage,
    EvalPair,
    EvalResult,
    HostStatus,
    Store,
)
from fleetcompat.targets import LayoutStatus, image_targets, layout_status
from fleetcompat.verdicts import (
    COMPATIBLE,
    ERROR,
    INCOMPATIBLE,
    NOT_EVALUATED,
    VERDICTS,
    evaluate_pair,
    holds,
)

if TYPE_CHECKING:
    from fleetcompat.oci import Catalog
    from fleetcompat.spec import Spec

__all__ = [
    "ANY_PLATFORM",
    "COMPATIBLE",
    "ERROR",
    "INCOMPATIBLE",
    "NOT_EVALUATED",
    "EvaluationRun",
    "ImageTarget",
    "LayoutStatus",
    "choose_target",
    "evaluate_fleet",
    "evaluate_targets",
    "holds",
    "host_architecture",
    "image_targets",
    "layout_status",
    "platform_arch",
    "plural",
    "unmatched_reason",
]

log = logging.getLogger(__name__)


RESULT_FORMAT = b"fleetcompat-eval-5\n"
"""Salts projection digests: changing how results are made retires old ones."""

SPEC_ERROR = "spec-error"
"""The projection key of a spec that cannot be parsed: one result for all hosts."""

Progress = Callable[[str, int, int], None]
"""Called as progress(stage, done, total)."""


@dataclass(frozen=True)
class EvaluationRun:
    """What one evaluation run did: its id, its cells by verdict, its work."""

    run_id: int
    hosts: int
    hosts_not_evaluated: int
    images: int
    images_failed: int
    cells: dict[str, int] = field(default_factory=dict)
    evaluations: int = 0
    computed: int = 0
    reused: int = 0
    seconds: float = 0.0
    unknown_arch_cells: int = 0
    """Cells not evaluated because the host's architecture could not be told."""
    layout_problems: tuple[str, ...] = ()
    """What was wrong with the layouts themselves, one line each."""

    @property
    def partial(self) -> bool:
        """Whether something failed: layouts, hosts, images, errors, architecture.

        A plain platform mismatch (an arm64 host, an amd64-only image) is an
        answer, not a failure.
        """
        return bool(self.problems())

    def problems(self) -> list[str]:
        """What makes the run partial, one line each (empty when nothing did)."""
        found = list(self.layout_problems)
        if self.hosts_not_evaluated:
            hosts = plural(self.hosts_not_evaluated, "host")
            found.append(f"{hosts} without a good snapshot")
        if self.images_failed:
            found.append(f"{plural(self.images_failed, 'image')} without a usable spec")
        if self.cells.get(ERROR):
            cells = plural(self.cells[ERROR], "error cell")
            found.append(f"{cells} (a spec or rule that fails to evaluate)")
        if self.unknown_arch_cells:
            cells = plural(self.unknown_arch_cells, "cell")
            found.append(f"{cells} not evaluated: host architecture unknown")
        return found

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary, as `evaluate --output json` prints it."""
        return {
            "run": self.run_id,
            "hosts": self.hosts,
            "hosts_not_evaluated": self.hosts_not_evaluated,
            "images": self.images,
            "images_failed": self.images_failed,
            "cells": dict(self.cells),
            "evaluations": self.evaluations,
            "computed": self.computed,
            "reused": self.reused,
            "seconds": round(self.seconds, 3),
            "unknown_arch_cells": self.unknown_arch_cells,
            "layout_problems": list(self.layout_problems),
        }


def plural(n: int, noun: str) -> str:
    """`1 host`, `2 hosts`: a count with its noun in agreement."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def evaluate_fleet(
    store: Store, catalog: Catalog, *, progress: Progress | None = None
) -> EvaluationRun:
    """Evaluate every image of `catalog` on every host of `store`; save the run.

    The catalog's layout-level problems make the run partial and are stored with
    it, so the report can tell a layout that could not be read from one whose
    images were removed.
    """
    return evaluate_targets(
        store,
        image_targets(catalog),
        progress=progress,
        layouts=layout_status(catalog),
    )


def projection_digest(projected: Features) -> str:
    """The key of a projection: sha256 over the result format and canonical form."""
    return hashlib.sha256(RESULT_FORMAT + projected.canonical_json()).hexdigest()


@dataclass
class _Prepared:
    """One target with its parsed spec and what the spec reads."""

    idx: int
    target: ImageTarget
    spec: Spec | None = None
    references: dict[str, frozenset[str] | None] = field(default_factory=dict)
    error: str = ""
    per_host: bool = False
    dedup: bool = True
    sets: list[dict[str, Any]] = field(default_factory=list)


def evaluate_targets(
    store: Store,
    targets: Sequence[ImageTarget],
    *,
    progress: Progress | None = None,
    layouts: LayoutStatus | None = None,
) -> EvaluationRun:
    """Evaluate these image targets on every host in the store; save the run."""
    started = time.monotonic()
    layouts = layouts or LayoutStatus()
    settings = {
        "images": len({t.image for t in targets}),
        "targets": len(targets),
        **layouts.settings(),
    }
    run_id = store.start_run("evaluate", settings)
    try:
        fields = _evaluate(store, run_id, targets, progress)
    except BaseException:
        store.finish_run(run_id, "failed", {})
        raise

    seconds = time.monotonic() - started
    summary = EvaluationRun(
        **fields, seconds=seconds, layout_problems=tuple(layouts.problems)
    )
    counts = {k: v for k, v in summary.to_json().items() if isinstance(v, int)}
    counts.update({f"cells_{k}": v for k, v in summary.cells.items()})
    store.finish_run(run_id, "partial" if summary.partial else "ok", counts)
    log.info("evaluation run=%s done in %.2f s", run_id, summary.seconds)
    return summary


def _evaluate(
    store: Store,
    run_id: int,
    targets: Sequence[ImageTarget],
    progress: Progress | None,
) -> dict[str, Any]:
    """The body of an evaluation run; returns EvaluationRun fields."""
    statuses = store.hosts()
    hosts, subjects, subject_features = _subjects(store, statuses)
    artifacts = [t.artifact for t in targets if t.artifact and t.spec is not None]
    known = store.artifact_infos(artifacts)
    prepared = [_prepare(i, target, known) for i, target in enumerate(targets)]
    parsed = {
        p.target.artifact: _info(p)
        for p in prepared
        if p.target.artifact and p.target.artifact not in known and p.target.spec
    }
    store.save_artifact_infos(parsed)
    by_image: dict[str, list[_Prepared]] = defaultdict(list)
    for item in prepared:
        by_image[item.target.image].append(item)

    groups, work = _group(hosts, subjects, subject_features, by_image, progress)
    cached = store.cached_result_keys(p.target.artifact or "" for p in prepared)
    todo = [key for key in work if key not in cached]
    log.info(
        "evaluation run=%s: %d hosts, %d subjects, %d targets, %d distinct "
        "evaluations (%d reused)",
        run_id,
        len(hosts),
        len(subjects),
        len(prepared),
        len(work),
        len(work) - len(todo),
    )

    results: list[EvalResult] = []
    for n, key in enumerate(todo, 1):
        projected, item = work[key]
        if item.spec is None:
            _parse(item)  # known from an earlier run, but this key is new
        if item.spec is None:
            results.append(_error_result(key, item.error or "spec cannot be read"))
        else:
            results.append(evaluate_pair(item.spec, projected, key[0], key[1]))
        if len(results) >= 2000:
            store.save_eval_results(results)
            results = []
        if progress and (n % 500 == 0 or n == len(todo)):
            progress("evaluate", n, len(todo))
    store.save_eval_results(results)

    for item in prepared:
        if item.error:
            store.save_eval_results([_spec_error_result(item)])
    pairs = [
        EvalPair(idx, projection, artifact, tuple(sorted(members)))
        for (idx, projection, artifact), members in groups.items()
    ]
    images = [_image_row(item) for item in prepared]
    store.save_evaluation(run_id, hosts, images, pairs)

    cells = _count_cells(store, hosts, prepared, pairs)
    return {
        "run_id": run_id,
        "hosts": len(hosts),
        "hosts_not_evaluated": sum(1 for h in hosts if h.status != "ok"),
        "images": len(by_image),
        "images_failed": len(_failed_images(prepared)),
        "cells": cells,
        "evaluations": len(work),
        "computed": len(todo),
        "reused": len(work) - len(todo),
        "unknown_arch_cells": _unknown_arch_cells(hosts, by_image),
    }


def _unknown_arch_cells(
    hosts: Sequence[EvalHost], by_image: Mapping[str, list[_Prepared]]
) -> int:
    """Cells of hosts of unknown architecture that no artifact of the image fits."""
    unknown = sum(1 for h in hosts if h.status == "ok" and not h.arch)
    if not unknown:
        return 0
    unfit = sum(
        1
        for items in by_image.values()
        if any(item.target.artifact for item in items)
        and choose_target("", [item.target for item in items]) is None
    )
    return unknown * unfit


def _subjects(
    store: Store, statuses: Sequence[HostStatus]
) -> tuple[list[EvalHost], list[str], list[Features]]:
    """The run's hosts, its distinct feature sets, and their features."""
    index: dict[str, int] = {}
    subject_features: list[Features] = []
    arches: list[str] = []
    hosts: list[EvalHost] = []
    for idx, status in enumerate(statuses):
        good = status.latest_good
        groups = status.host.groups
        if good is None or good.feature_set is None:
            latest = status.latest
            reason = "no snapshot"
            if latest is not None and latest.error:
                reason = f"no snapshot: {latest.status}: {latest.error}"
            hosts.append(
                EvalHost(
                    idx,
                    status.host.name,
                    groups,
                    None,
                    "",
                    None,
                    -1,
                    "",
                    "",
                    "failed",
                    reason,
                )
            )
            continue
        subject = index.get(good.feature_set)
        if subject is None:
            subject = index[good.feature_set] = len(subject_features)
            features = store.feature_set(good.feature_set)
            subject_features.append(features)
            arches.append(host_architecture(features))
        hosts.append(
            EvalHost(
                idx,
                status.host.name,
                groups,
                good.id,
                good.taken_at,
                good.feature_set,
                subject,
                arches[subject],
                good.node_name,
                "ok",
            )
        )
    return hosts, list(index), subject_features


def _prepare(
    idx: int, target: ImageTarget, known: Mapping[str, Mapping[str, Any]]
) -> _Prepared:
    """What a target's spec reads: from `known` (stored earlier) or by parsing it.

    A spec that cannot be parsed is kept as an error that marks its cells.
    """
    item = _Prepared(idx, target)
    if target.spec is None or target.artifact is None:
        return item
    info = known.get(target.artifact)
    if info is None:
        _parse(item)
        return item

    item.error = info["error"]
    item.references = {
        name: None if elements is None else frozenset(elements)
        for name, elements in info["references"].items()
    }
    item.per_host = info["per_host"]
    item.dedup = info["dedup"]
    item.sets = list(info["sets"])
    return item


def _parse(item: _Prepared) -> None:
    """Parse the target's spec into `item`, or record why it cannot be used."""
    from fleetcompat.spec import load_spec

    assert item.target.spec is not None
    try:
        text = item.target.spec.decode("utf-8", errors="replace")
        spec = load_spec(text if "\n" in text else text + "\n")
        item.spec = spec
        item.references = dict(spec.feature_references())
    except (InputError, RuleError) as exc:
        item.error = str(exc)
        log.warning("image=%s: spec cannot be used: %s", item.target.image, exc)
        return

    item.per_host = "system.name" in item.references
    item.dedup = not _has_templates(spec)
    item.sets = [
        {
            "tag": c.tag or "",
            "weight": c.weight or 0,
            "description": c.description or "",
        }
        for c in spec.compatibilities
    ]


def _info(item: _Prepared) -> dict[str, Any]:
    """The stored form of what a parsed spec reads."""
    return {
        "error": item.error,
        "references": {
            name: None if elements is None else sorted(elements)
            for name, elements in item.references.items()
        },
        "per_host": item.per_host,
        "dedup": item.dedup,
        "sets": item.sets,
    }


def _has_templates(spec: Spec) -> bool:
    """Whether any rule renders a template over matched elements."""
    return any(rule.vars_template or rule.labels_template for rule in spec.rules())


def _group(
    hosts: Sequence[EvalHost],
    subjects: Sequence[str],
    subject_features: Sequence[Features],
    by_image: Mapping[str, list[_Prepared]],
    progress: Progress | None,
) -> tuple[
    dict[tuple[int, str, str], set[int]],
    dict[tuple[str, str], tuple[Features, _Prepared]],
]:
    """Members per (target, projection), and the distinct evaluations to do."""
    arches: dict[int, str] = {h.subject: h.arch for h in hosts if h.subject >= 0}
    projections: dict[tuple[int, int], tuple[str, Features]] = {}
    reference_keys: dict[str, int] = {}
    refs_of: dict[int, int] = {}
    groups: dict[tuple[int, str, str], set[int]] = defaultdict(set)
    work: dict[tuple[str, str], tuple[Features, _Prepared]] = {}

    for n, items in enumerate(by_image.values(), 1):
        targets = [item.target for item in items]
        for subject in range(len(subjects)):
            target = choose_target(arches[subject], targets)
            if target is None:
                continue
            item = items[targets.index(target)]
            artifact = target.artifact or ""
            if item.error:
                groups[(item.idx, SPEC_ERROR, artifact)].add(subject)
                continue
            if item.target.spec is None:
                continue
            if item.per_host:
                continue  # projected per host below
            refs_key = refs_of.get(item.idx)
            if refs_key is None:
                text = _refs_text(item.references, item.dedup)
                refs_key = reference_keys.setdefault(text, len(reference_keys))
                refs_of[item.idx] = refs_key
            cached = projections.get((subject, refs_key))
            if cached is None:
                projected = project_features(
                    subject_features[subject], item.references, dedup=item.dedup
                )
                cached = projections[(subject, refs_key)] = (
                    projection_digest(projected),
                    projected,
                )
            digest, projected = cached
            groups[(item.idx, digest, artifact)].add(subject)
            work.setdefault((digest, artifact), (projected, item))
        for item in items:
            if item.per_host and item.target.spec is not None and not item.error:
                _group_per_host(item, hosts, subject_features, groups, work)
        if progress and n % 100 == 0:
            progress("project", n, len(by_image))
    return groups, work


def _group_per_host(
    item: _Prepared,
    hosts: Sequence[EvalHost],
    subject_features: Sequence[Features],
    groups: dict[tuple[int, str, str], set[int]],
    work: dict[tuple[str, str], tuple[Features, _Prepared]],
) -> None:
    """Group the hosts of a spec that reads system.name, one projection each."""
    siblings = [item.target]
    for host in hosts:
        if host.subject < 0 or choose_target(host.arch, siblings) is None:
            continue
        features = subject_features[host.subject].copy()
        features.attributes["system.name"] = {"nodename": host.node_name}
        projected = project_features(features, item.references, dedup=item.dedup)
        digest = projection_digest(projected)
        artifact = item.target.artifact or ""
        groups[(item.idx, digest, artifact)].add(host.idx)
        work.setdefault((digest, artifact), (projected, item))


def _refs_text(references: Mapping[str, frozenset[str] | None], dedup: bool) -> str:
    """A stable text of a spec's references, to share projections between specs."""
    parts = {k: (None if v is None else sorted(v)) for k, v in references.items()}
    return json.dumps([parts, dedup], sort_keys=True)


def _error_result(key: tuple[str, str], message: str) -> EvalResult:
    """The result of a key whose spec turned out unusable when parsed again."""
    return EvalResult(key[0], key[1], ERROR, "", "", message, {})


def _spec_error_result(item: _Prepared) -> EvalResult:
    """The shared result of a spec that cannot be parsed: every cell an error."""
    artifact = item.target.artifact or ""
    return EvalResult(SPEC_ERROR, artifact, ERROR, "", "", item.error, {})


def _image_row(item: _Prepared) -> EvalImage:
    """The stored row of one target."""
    target = item.target
    if item.error:
        status, reason = ERROR, item.error
    elif target.artifact is None:
        status, reason = "missing", target.problem or "no compatibility artifact"
    else:
        status, reason = "ok", ""
    return EvalImage(
        item.idx,
        target.image,
        target.platform,
        target.artifact,
        status,
        reason,
        tuple(item.sets),
        tuple(sorted(item.references)),
        item.per_host,
    )


def _count_cells(
    store: Store,
    hosts: Sequence[EvalHost],
    prepared: Sequence[_Prepared],
    pairs: Sequence[EvalPair],
) -> dict[str, int]:
    """Cells per verdict over hosts x images (not per platform)."""
    per_subject: dict[int, int] = defaultdict(int)
    for host in hosts:
        if host.subject >= 0:
            per_subject[host.subject] += 1
    per_host = {p.idx for p in prepared if p.per_host}
    verdicts = store.eval_verdicts((p.projection, p.artifact) for p in pairs)

    counts = dict.fromkeys(VERDICTS, 0)
    for pair in pairs:
        verdict = verdicts.get((pair.projection, pair.artifact), ERROR)
        weight = (
            len(pair.members)
            if pair.image_idx in per_host
            else sum(per_subject[m] for m in pair.members)
        )
        counts[verdict] += weight
    total = len(hosts) * len({p.target.image for p in prepared})
    counts[NOT_EVALUATED] = total - sum(counts[v] for v in VERDICTS[:3])
    return counts


def _failed_images(prepared: Sequence[_Prepared]) -> set[str]:
    """Images with a spec that cannot be used, or with no artifact at all.

    An image with an artifact for some platforms only has not failed: hosts of
    the other platforms are simply not evaluated for it.
    """
    with_artifact = {p.target.image for p in prepared if p.target.artifact}
    broken = {p.target.image for p in prepared if p.error}
    return broken | ({p.target.image for p in prepared} - with_artifact)

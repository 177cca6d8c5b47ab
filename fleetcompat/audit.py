"""The nightly job in one call: collect, evaluate, report, and judge the outcome.

`run_audit` runs the three stages against one database and says whether the
chosen `--fail-on` policy tripped:

- none: never (the exit status only tells success from a partial run);
- regression: a host x image cell that was compatible in the previous evaluation
  run is not compatible now;
- incompatible: any cell is incompatible;
- any-failure: any cell is not compatible (incompatible, error, not evaluated),
  or any host failed collection, any image could not be evaluated, or any layout
  had a problem (one that could not be read at all, or a broken entry).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetcompat.evaluate import (
    ERROR,
    INCOMPATIBLE,
    NOT_EVALUATED,
    EvaluationRun,
    Progress,
    evaluate_fleet,
    plural,
)
from fleetcompat.store import Store

if TYPE_CHECKING:
    from fleetcompat.vault import Keyring

POLICIES = ("none", "regression", "incompatible", "any-failure")


@dataclass(frozen=True)
class AuditResult:
    """What an audit did, where the report is, and whether the policy tripped."""

    collect: Any
    evaluation: EvaluationRun
    report: Any
    regressions: tuple[tuple[str, str], ...]
    tripped: tuple[str, ...]

    @property
    def partial(self) -> bool:
        """Whether some hosts failed collection, or layouts, images or cells did."""
        return self.collect.status != "ok" or self.evaluation.partial

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary of the audit."""
        return {
            "collect": self.collect.to_json(),
            "evaluation": self.evaluation.to_json(),
            "report": str(self.report.html),
            "regressions": [
                {"host": host, "image": image} for host, image in self.regressions
            ],
            "tripped": list(self.tripped),
        }


def run_audit(
    inventory: Path,
    layouts: list[Path],
    store: Store | Path | str,
    out_dir: Path,
    *,
    fail_on: str = "none",
    limit: str | None = None,
    collect_options: Any = None,
    collect_progress: Any = None,
    progress: Progress | None = None,
    long_csv: bool = True,
    keyring: Keyring | None = None,
) -> AuditResult:
    """Collect the inventory, evaluate every layout image, write the report.

    `store` is an open Store or the path of the database, opened (and created)
    only once the inputs are known to be good. `keyring` opens the inventory's
    `!vault` values (by default from ANSIBLE_VAULT_PASSWORD_FILE). Raises
    InputError, before
    anything is written, for a bad inventory, layout path, policy or an output
    directory that cannot be written; KeyboardInterrupt when the collection was
    interrupted.
    """
    from fleetcompat.collect import check_known_hosts_file
    from fleetcompat.errors import InputError
    from fleetcompat.inventory import load_inventory
    from fleetcompat.oci import scan_layouts
    from fleetcompat.report import check_out_dir

    if fail_on not in POLICIES:
        raise InputError(f"--fail-on: unknown policy {fail_on!r}")
    fleet = load_inventory(inventory, keyring)
    fleet.select(limit)  # a bad --limit or an unopenable vault value: nothing written
    if collect_options is not None:
        check_known_hosts_file(collect_options)
    catalog = scan_layouts(layouts)
    check_out_dir(Path(out_dir))

    opened = nullcontext(store) if isinstance(store, Store) else Store(store)
    with opened as open_store:
        return _audit(
            fleet,
            catalog,
            open_store,
            out_dir,
            fail_on,
            limit,
            collect_options,
            collect_progress,
            progress,
            long_csv,
        )


def _audit(
    fleet: Any,
    catalog: Any,
    store: Store,
    out_dir: Path,
    fail_on: str,
    limit: str | None,
    collect_options: Any,
    collect_progress: Any,
    progress: Progress | None,
    long_csv: bool,
) -> AuditResult:
    """The three stages on checked inputs, and the policy's verdict."""
    from fleetcompat.collect import collect_fleet
    from fleetcompat.report import write_report
    from fleetcompat.runview import regressions

    collected = collect_fleet(
        fleet, store, limit=limit, options=collect_options, progress=collect_progress
    )
    if collected.status == "interrupted":
        raise KeyboardInterrupt  # the hosts collected so far are saved
    evaluation = evaluate_fleet(store, catalog, progress=progress)
    report = write_report(store, evaluation.run_id, out_dir, long_csv=long_csv)
    lost = tuple(regressions(store, evaluation.run_id))
    tripped = policy_trips(fail_on, evaluation, lost, collected.status != "ok")
    return AuditResult(collected, evaluation, report, lost, tripped)


def policy_trips(
    policy: str,
    evaluation: EvaluationRun,
    lost: tuple[tuple[str, str], ...],
    collect_failed: bool,
) -> tuple[str, ...]:
    """Why the policy trips (empty when it does not)."""
    cells = evaluation.cells
    reasons: list[str] = []
    if policy == "regression" and lost:
        reasons.append(f"{len(lost)} host x image cells were compatible and are not")
    if policy in ("incompatible", "any-failure") and cells.get(INCOMPATIBLE):
        reasons.append(f"{cells[INCOMPATIBLE]} cells are incompatible")
    if policy == "any-failure":
        if cells.get(ERROR):
            reasons.append(f"{cells[ERROR]} cells are errors")
        if cells.get(NOT_EVALUATED):
            reasons.append(f"{cells[NOT_EVALUATED]} cells were not evaluated")
        if collect_failed:
            reasons.append("some hosts could not be collected")
        if evaluation.images_failed:
            reasons.append(f"{evaluation.images_failed} images could not be evaluated")
        if evaluation.layout_problems:
            count = plural(len(evaluation.layout_problems), "layout problem")
            reasons.append(f"{count}: {evaluation.layout_problems[0]}")
    return tuple(reasons)

"""Broken layouts in evaluate, audit and the report; cells that lost a verdict."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from fleetcompat.audit import policy_trips
from fleetcompat.cli.main import main
from fleetcompat.evaluate import (
    EvaluationRun,
    ImageTarget,
    evaluate_fleet,
    evaluate_targets,
)
from fleetcompat.oci import scan_layouts
from fleetcompat.report import write_report
from fleetcompat.runview import regressions
from fleetcompat.store import Host, Store
from tests.test_evaluate import EXAMPLE_LAYOUT, SPEC_OK, fill, machine


def _bad_json(layout: Path) -> None:
    (layout / "index.json").write_text("{bad")


def _no_index(layout: Path) -> None:
    (layout / "index.json").unlink()


def _future_version(layout: Path) -> None:
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "9.9.9"}')


def _manifests_not_a_list(layout: Path) -> None:
    (layout / "index.json").write_text('{"schemaVersion": 2, "manifests": {}}')


def _bad_entry(layout: Path) -> None:
    index = json.loads((layout / "index.json").read_text())
    index["manifests"].append({"mediaType": 5, "digest": "nope"})
    (layout / "index.json").write_text(json.dumps(index))


BREAKAGES = [
    pytest.param(_bad_json, "malformed JSON", id="index-not-json"),
    pytest.param(_no_index, "index.json: missing", id="index-missing"),
    pytest.param(_future_version, "not supported", id="unsupported-version"),
    pytest.param(_manifests_not_a_list, "no manifests list", id="manifests-not-list"),
    pytest.param(_bad_entry, "entry #", id="bad-entry"),
]


def broken_copy(tmp_path: Path, breaks: Callable[[Path], None]) -> Path:
    layout = tmp_path / "L4"
    shutil.copytree(EXAMPLE_LAYOUT, layout)
    breaks(layout)
    return layout


def fleet_db(tmp_path: Path) -> Path:
    path = tmp_path / "fleet.db"
    with Store(path) as store:
        fill(store, hosts_per_machine=1)
    return path


@pytest.mark.parametrize(("breaks", "says"), BREAKAGES)
def test_evaluate_names_a_broken_layout_and_exits_partial(
    tmp_path: Path, breaks: Callable[[Path], None], says: str
) -> None:
    db = fleet_db(tmp_path)
    layout = broken_copy(tmp_path, breaks)

    result = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--oci-layout",
            str(layout),
            "--oci-layout",
            str(EXAMPLE_LAYOUT),
            "--db",
            str(db),
        ],
    )

    assert result.exit_code == 3, result.output
    partial = [
        line
        for line in result.stderr.splitlines()
        if line.startswith("fleetcompat: partial: ")
    ]
    assert any(str(layout) in line and says in line for line in partial), partial


def test_a_layout_that_cannot_be_read_is_not_reported_as_removed_images(
    tmp_path: Path,
) -> None:
    db = fleet_db(tmp_path)
    layout = broken_copy(tmp_path, lambda _: None)
    with Store(db) as store:
        first = evaluate_fleet(store, scan_layouts([layout]))
        _bad_json(layout)

        run = evaluate_fleet(store, scan_layouts([layout]))
        written = write_report(store, run.run_id, tmp_path / "out")

    html = written.html.read_text()
    summary = html.split('id="summary"')[1].split("</section>")[0]
    changes = html.split('id="changes"')[1].split("</section>")[0]
    assert run.partial and run.images == 0 and first.images == 5
    assert "Layouts with problems (1)" in summary
    assert f"layout {layout} could not be read" in summary
    assert "Removed: none." in changes
    assert "layout could not be read" in changes
    assert "cuda-inference:12.4" in changes


def test_images_of_a_layout_left_out_are_still_removed(tmp_path: Path) -> None:
    db = fleet_db(tmp_path)
    broken = broken_copy(tmp_path, _bad_json)
    with Store(db) as store:
        evaluate_fleet(store, scan_layouts([EXAMPLE_LAYOUT]))

        run = evaluate_fleet(store, scan_layouts([broken]))
        written = write_report(store, run.run_id, tmp_path / "out")

    changes = written.html.read_text().split('id="changes"')[1]
    assert "Removed: base-runtime:2.0, cuda-inference:12.4" in changes


def test_audit_any_failure_trips_on_a_layout_problem() -> None:
    evaluation = EvaluationRun(
        1,
        10,
        0,
        5,
        0,
        {"compatible": 50},
        layout_problems=("layout L4 could not be read: L4/index.json: missing",),
    )

    trips = policy_trips("any-failure", evaluation, (), False)

    assert evaluation.partial
    assert trips == ("1 layout problem: " + evaluation.layout_problems[0],)


def test_a_cell_that_lost_its_artifact_is_no_longer_evaluated_not_incompatible(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "fleet.db")
    store.save_snapshot(Host("web-0"), run_id=None, source="test", features=machine())
    store.save_snapshot(Host("web-1"), run_id=None, source="test", features=machine())
    artifact = "sha256:" + "a" * 64
    evaluate_targets(
        store,
        [
            ImageTarget("app", "", artifact, SPEC_OK.encode()),
            ImageTarget("lib", "", artifact, SPEC_OK.encode()),
        ],
    )
    stricter = SPEC_OK.replace("5.15", "7.0").encode()
    run = evaluate_targets(
        store,
        [
            ImageTarget("app", "", None, None, "artifact withdrawn"),
            ImageTarget("lib", "", "sha256:" + "b" * 64, stricter),
        ],
    )

    written = write_report(store, run.run_id, tmp_path / "out")

    changes = written.html.read_text().split('id="changes"')[1].split("</section>")[0]
    became = changes.split("Became incompatible")[1].split("No longer evaluated")[0]
    assert "(2)" in became and "lib" in became and "app" not in became
    assert "No longer evaluated (2)" in changes
    assert "no longer evaluated: no artifact: artifact withdrawn" in changes
    assert sorted(regressions(store, run.run_id)) == [
        ("web-0", "app"),
        ("web-0", "lib"),
        ("web-1", "app"),
        ("web-1", "lib"),
    ]

"""`audit`: collect, evaluate, report, and the exit status a nightly job reads."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from fleetcompat.audit import policy_trips
from fleetcompat.cli.main import main
from fleetcompat.evaluate import EvaluationRun
from tests.test_evaluate import EXAMPLE_LAYOUT

CLEAN = EvaluationRun(1, 10, 0, 5, 0, {"compatible": 50, "incompatible": 0})
INCOMPATIBLE = EvaluationRun(1, 10, 0, 5, 0, {"compatible": 45, "incompatible": 5})
UNEVALUATED = EvaluationRun(1, 10, 1, 5, 0, {"compatible": 45, "not-evaluated": 5})
LOST = (("web-1", "app:1"),)


@pytest.mark.parametrize(
    ("policy", "evaluation", "lost", "collect_failed", "trips"),
    [
        pytest.param("none", INCOMPATIBLE, LOST, True, False, id="none-never"),
        pytest.param("regression", INCOMPATIBLE, (), False, False, id="no-regression"),
        pytest.param("regression", CLEAN, LOST, False, True, id="regression"),
        pytest.param("incompatible", INCOMPATIBLE, (), False, True, id="incompatible"),
        pytest.param(
            "incompatible", UNEVALUATED, (), True, False, id="only-unevaluated"
        ),
        pytest.param("any-failure", UNEVALUATED, (), False, True, id="unevaluated"),
        pytest.param("any-failure", CLEAN, (), True, True, id="host-not-collected"),
        pytest.param("any-failure", CLEAN, (), False, False, id="all-clean"),
    ],
)
def test_fail_on_policy(
    policy: str,
    evaluation: EvaluationRun,
    lost: tuple[tuple[str, str], ...],
    collect_failed: bool,
    trips: bool,
) -> None:
    assert bool(policy_trips(policy, evaluation, lost, collect_failed)) is trips


@pytest.fixture
def local_inventory(tmp_path: Path) -> Path:
    """An inventory whose one host is this machine, over a local connection."""
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "all:\n  hosts:\n    this-machine:\n      ansible_connection: local\n"
    )
    return path


def audit(
    inventory: Path,
    tmp_path: Path,
    *extra: str,
    layout: Path = EXAMPLE_LAYOUT,
    out: Path | None = None,
) -> tuple[int, str]:
    """Run `fleetcompat audit` on the example layout; its exit code and output."""
    result = CliRunner().invoke(
        main,
        [
            "audit",
            "-i",
            str(inventory),
            "--oci-layout",
            str(layout),
            "--db",
            str(tmp_path / "fleet.db"),
            "--out",
            str(out or tmp_path / "report"),
            *extra,
        ],
    )
    return result.exit_code, result.output


def test_audit_reports_this_machine_and_trips_on_incompatible(
    local_inventory: Path, tmp_path: Path
) -> None:
    quiet, output = audit(local_inventory, tmp_path)
    strict, _ = audit(local_inventory, tmp_path, "--fail-on", "incompatible")
    again, _ = audit(local_inventory, tmp_path, "--fail-on", "regression")

    assert quiet == 0, output
    assert f"report: {tmp_path / 'report' / 'report.html'}" in output
    assert (tmp_path / "report" / "matrix.csv").read_text().count("this-machine") == 1
    assert strict == 4  # no GPU here: cuda-inference is incompatible
    assert again == 0


def test_audit_with_a_bad_inventory_writes_nothing(tmp_path: Path) -> None:
    inventory = tmp_path / "bad.yaml"
    inventory.write_text("all:\n  hosts: [unclosed\n")

    code, output = audit(inventory, tmp_path)

    assert code == 2
    assert "bad.yaml" in output
    assert not (tmp_path / "report").exists()


def test_audit_with_a_bad_layout_path_leaves_no_database(
    local_inventory: Path, tmp_path: Path
) -> None:
    code, output = audit(local_inventory, tmp_path, layout=tmp_path / "no-such-dir")

    assert code == 2, output
    assert "no-such-dir" in output
    assert not (tmp_path / "fleet.db").exists()
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize(
    "out",
    [
        pytest.param(Path("/proc/nope"), id="cannot-be-created"),
        pytest.param(Path("a-file/report"), id="under-a-file"),
    ],
)
def test_audit_checks_the_output_directory_before_collecting(
    local_inventory: Path, tmp_path: Path, out: Path
) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    out = out if out.is_absolute() else tmp_path / out

    code, output = audit(local_inventory, tmp_path, out=out)

    assert code == 2, output
    assert "cannot write the report" in output and str(out) in output
    assert not (tmp_path / "fleet.db").exists()

"""Reports of a stored run: CSV counts, escaping, changes between runs, the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from fleetcompat.cli.main import main
from fleetcompat.evaluate import (
    COMPATIBLE,
    ERROR,
    INCOMPATIBLE,
    NOT_EVALUATED,
    ImageTarget,
    evaluate_fleet,
    evaluate_targets,
    image_targets,
)
from fleetcompat.features import Features
from fleetcompat.oci import scan_layouts
from fleetcompat.report import write_report
from fleetcompat.report_csv import (
    HOST_COLUMNS,
    LONG_COLUMNS,
    MATRIX_COLUMNS,
    safe_cell,
)
from fleetcompat.runview import regressions
from fleetcompat.store import Host, Store
from tests.test_evaluate import (
    EXAMPLE_LAYOUT,
    SPEC_OK,
    fill,
    independent_verdicts,
    machine,
)

HOSTILE = "<img src=x onerror=alert(1)>"
HOSTILE_SPEC = (
    "version: v1alpha1\ncompatibilities:\n"
    '- description: "</script><script>alert(2)</script>"\n'
    '  tag: "<b onmouseover=alert(3)>x</b>"\n'
    '  rules:\n  - name: "<svg onload=alert(4)>"\n    matchFeatures:\n'
    "    - feature: kernel.loadedmodule\n"
    '      matchExpressions: {"<img src=y onerror=alert(5)>": {op: Exists}}\n'
)
CSV_WORDS = {
    "yes": COMPATIBLE,
    "no": INCOMPATIBLE,
    "error": ERROR,
    "n/a": NOT_EVALUATED,
}


def hostile_fleet(store: Store) -> list[ImageTarget]:
    """The example images plus one with a hostile spec, on hosts with one hostile."""
    fill(store, hosts_per_machine=2)
    evil = machine(pretty=HOSTILE)
    store.save_snapshot(
        Host(HOSTILE, groups=("<i>evil</i>",)),
        run_id=None,
        source="test",
        features=evil,
        node_name="evil",
    )
    store.save_snapshot(
        Host("down"), run_id=None, source="ssh", status="timeout", error="probe: 30 s"
    )
    targets = image_targets(scan_layouts([EXAMPLE_LAYOUT]))
    return targets + [ImageTarget(HOSTILE, "", "sha256:e", HOSTILE_SPEC.encode())]


@pytest.fixture
def report_dir(tmp_path: Path) -> tuple[Store, Path, list[ImageTarget]]:
    """A store with an evaluated hostile fleet and its report written."""
    store = Store(tmp_path / "fleet.db")
    targets = hostile_fleet(store)
    run = evaluate_targets(store, targets)
    write_report(store, run.run_id, tmp_path / "out")
    return store, tmp_path / "out", targets


def test_matrix_csv_agrees_with_validating_every_pair(report_dir) -> None:
    store, out, targets = report_dir

    matrix = pd.read_csv(out / "matrix.csv", dtype=str, keep_default_na=False)

    expected = independent_verdicts(store, targets)
    images = list(matrix.columns[len(MATRIX_COLUMNS) :])
    assert list(matrix.columns[: len(MATRIX_COLUMNS)]) == MATRIX_COLUMNS
    found = {
        (row["host"], image): CSV_WORDS[row[image]]
        for _, row in matrix.iterrows()
        for image in images
    }
    assert found == expected


def test_long_csv_has_a_row_for_every_cell_that_is_not_compatible(report_dir) -> None:
    store, out, targets = report_dir

    long = pd.read_csv(out / "results_long.csv", dtype=str, keep_default_na=False)

    assert list(long.columns) == LONG_COLUMNS
    expected = {
        cell: verdict
        for cell, verdict in independent_verdicts(store, targets).items()
        if verdict != COMPATIBLE
    }
    found = {(r.host, r.image): r.verdict for r in long.itertuples()}
    assert found == expected
    nvidia = long[(long.host == "dpdk-0") & (long.element == "nvidia")]
    assert list(nvidia.explanation) == ["module nvidia not loaded"]
    assert list(nvidia.op) == ["Exists"]


def test_hosts_csv_lists_every_host_with_its_snapshot_age(report_dir) -> None:
    _, out, _ = report_dir

    hosts = pd.read_csv(out / "hosts.csv", dtype=str, keep_default_na=False)

    assert list(hosts.columns) == HOST_COLUMNS
    down = hosts[hosts.host == "down"].iloc[0]
    assert down.status == "failed" and "timeout: probe: 30 s" in down.reason
    evil = hosts[hosts.host == HOSTILE].iloc[0]
    assert evil.os == HOSTILE
    assert float(evil.snapshot_age_hours) < 1


def test_html_embeds_host_and_spec_values_only_escaped(report_dir) -> None:
    _, out, _ = report_dir

    html = (out / "report.html").read_text()

    assert HOSTILE not in html
    assert "alert(2)</script>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html  # the summary, escaped
    data = re.search(
        r'<script id="report-data" type="application/json">(.*?)</script>', html, re.S
    )
    assert data is not None and "<" not in data.group(1)
    parsed = json.loads(data.group(1))
    assert HOSTILE in [h[0] for h in parsed["hosts"]]
    assert "http://" not in html.replace("http://www.w3.org", "")
    assert "https://" not in html


def test_html_counts_agree_with_validating_every_pair(report_dir) -> None:
    store, out, targets = report_dir
    html = (out / "report.html").read_text()

    totals = re.search(r'<table class="totals">(.*?)</table>', html, re.S)

    expected = list(independent_verdicts(store, targets).values())
    numbers = [int(n) for n in re.findall(r'class="v-[CIEN]">(\d+)<', totals.group(1))]
    assert numbers == [
        expected.count(v) for v in (COMPATIBLE, INCOMPATIBLE, ERROR, NOT_EVALUATED)
    ]


def test_changes_name_hosts_that_lost_an_image(tmp_path: Path) -> None:
    store = Store(tmp_path / "fleet.db")
    fill(store, hosts_per_machine=1)
    catalog = scan_layouts([EXAMPLE_LAYOUT])
    evaluate_fleet(store, catalog)
    store.save_snapshot(
        Host("gpu-0"), run_id=None, source="test", features=machine(gpu=True)
    )

    run = evaluate_fleet(store, catalog)
    written = write_report(store, run.run_id, tmp_path / "out")

    assert ("gpu-0", "cuda-inference:12.4") in regressions(store, run.run_id)
    html = written.html.read_text()
    changes = html.split('id="changes"')[1].split("</section>")[0]
    assert "Became incompatible (2)" in changes
    assert "kernel.loadedmodule" in changes and "cpu.cpuid" in changes


def test_report_command_renders_any_stored_run(tmp_path: Path) -> None:
    store = Store(tmp_path / "fleet.db")
    fill(store, hosts_per_machine=1)
    first = evaluate_fleet(store, scan_layouts([EXAMPLE_LAYOUT]))
    store.close()
    runner = CliRunner()

    again = runner.invoke(
        main,
        [
            "evaluate",
            "--oci-layout",
            str(EXAMPLE_LAYOUT),
            "--db",
            str(tmp_path / "fleet.db"),
        ],
    )
    rendered = runner.invoke(
        main,
        [
            "report",
            "--db",
            str(tmp_path / "fleet.db"),
            "--run",
            str(first.run_id),
            "--out",
            str(tmp_path / "old"),
        ],
    )
    missing = runner.invoke(
        main,
        ["report", "--db", str(tmp_path / "fleet.db"), "--run", "99", "--out", "x"],
    )

    assert again.exit_code == 0, again.output
    assert "0 computed" in again.output
    assert rendered.exit_code == 0, rendered.output
    assert rendered.output.strip() == str(tmp_path / "old" / "report.html")
    assert missing.exit_code == 2 and "no run 99" in missing.output


def test_evaluate_exits_partial_when_a_host_has_no_snapshot(tmp_path: Path) -> None:
    store = Store(tmp_path / "fleet.db")
    fill(store, hosts_per_machine=1)
    store.save_snapshot(Host("down"), run_id=None, source="ssh", status="timeout")
    store.close()

    result = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--oci-layout",
            str(EXAMPLE_LAYOUT),
            "--db",
            str(tmp_path / "fleet.db"),
            "--output",
            "json",
        ],
    )

    assert result.exit_code == 3
    assert "1 host without a good snapshot" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["hosts_not_evaluated"] == 1
    assert summary["cells"]["not-evaluated"] == 5


def test_report_can_leave_out_the_long_csv(tmp_path: Path) -> None:
    store = Store(tmp_path / "fleet.db")
    fill(store, hosts_per_machine=1)
    evaluate_fleet(store, scan_layouts([EXAMPLE_LAYOUT]))
    store.close()

    result = CliRunner().invoke(
        main,
        [
            "report",
            "--db",
            str(tmp_path / "fleet.db"),
            "--out",
            str(tmp_path / "r"),
            "--no-long-csv",
        ],
    )

    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (tmp_path / "r").iterdir())
    assert written == ["hosts.csv", "matrix.csv", "report.html"]


def test_a_host_whose_last_collection_failed_is_named_with_its_old_snapshot(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "fleet.db")
    fill(store, hosts_per_machine=1)
    store.save_snapshot(
        Host("gpu-0"), run_id=None, source="ssh", status="refused", error="port 22"
    )
    run = evaluate_fleet(store, scan_layouts([EXAMPLE_LAYOUT]))

    written = write_report(store, run.run_id, tmp_path / "out")

    summary = written.html.read_text().split('id="summary"')[1].split("</section>")[0]
    assert "refused: port 22" in summary
    assert "evaluated from the snapshot of" in summary
    hosts = pd.read_csv(written.hosts_csv, dtype=str, keep_default_na=False)
    stale = hosts[hosts.host == "gpu-0"].iloc[0]
    assert (stale.status, stale.reason) == ("ok", "")
    assert (stale.latest_outcome, stale.latest_reason) == ("refused", "port 22")
    fresh = hosts[hosts.host == "gpu-nodriver-0"].iloc[0]
    assert (fresh.latest_outcome, fresh.latest_reason) == ("ok", "")
    assert list(hosts.columns[-3:]) == [
        "latest_outcome",
        "latest_reason",
        "latest_attempt_at",
    ]


def test_an_old_run_renders_after_its_feature_sets_were_pruned(tmp_path: Path) -> None:
    store = Store(tmp_path / "fleet.db")
    fill(store, hosts_per_machine=1)
    catalog = scan_layouts([EXAMPLE_LAYOUT])
    first = evaluate_fleet(store, catalog)
    store.save_snapshot(Host("old-0"), run_id=None, source="test", features=machine())
    evaluate_fleet(store, catalog)
    store.prune(keep=1)
    store.close()
    store = Store(tmp_path / "fleet.db")  # no feature sets cached in memory

    old = write_report(store, first.run_id, tmp_path / "old")
    new = write_report(store, None, tmp_path / "new")

    assert "old-0" in old.html.read_text()
    assert "pruned from the store" in new.html.read_text()


def test_evaluate_exits_partial_and_says_why_when_an_architecture_is_unknown(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "fleet.db")
    store.save_snapshot(
        Host("mystery"),
        run_id=None,
        source="test",
        features=Features(attributes={"kernel.version": {"full": "6.1.0"}}),
    )
    store.close()

    result = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--oci-layout",
            str(EXAMPLE_LAYOUT),
            "--db",
            str(tmp_path / "fleet.db"),
        ],
    )

    assert result.exit_code == 3, result.output
    assert "host architecture unknown" in result.stderr
    assert "run 1: 1 host x 5 images:" in result.stdout
    assert (
        f"next: fleetcompat report --db {tmp_path / 'fleet.db'} --out" in result.stdout
    )


def test_evaluate_of_an_arm_host_and_amd64_images_exits_0(tmp_path: Path) -> None:
    store = Store(tmp_path / "fleet.db")
    store.save_snapshot(
        Host("arm"), run_id=None, source="test", features=machine(arch="arm64")
    )
    store.close()

    result = CliRunner(env={"FLEETCOMPAT_DB": str(tmp_path / "fleet.db")}).invoke(
        main, ["evaluate", "--oci-layout", str(EXAMPLE_LAYOUT)]
    )

    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert "next: fleetcompat report --out report/" in result.stdout


@pytest.mark.parametrize(
    "out",
    [
        pytest.param(Path("/proc/nope"), id="cannot-be-created"),
        pytest.param(Path("a-file/report"), id="under-a-file"),
    ],
)
def test_report_into_an_unwritable_directory_is_bad_input(
    tmp_path: Path, out: Path
) -> None:
    store = Store(tmp_path / "fleet.db")
    fill(store, hosts_per_machine=1)
    evaluate_fleet(store, scan_layouts([EXAMPLE_LAYOUT]))
    store.close()
    (tmp_path / "a-file").write_text("not a directory")
    out = out if out.is_absolute() else tmp_path / out

    result = CliRunner().invoke(
        main, ["report", "--db", str(tmp_path / "fleet.db"), "--out", str(out)]
    )

    assert result.exit_code == 2, result.output
    assert "cannot write the report" in result.stderr
    assert str(out) in result.stderr


FORMULA = '=HYPERLINK("http://evil","x")'
FORMULA_SPEC = (
    "version: v1alpha1\ncompatibilities:\n"
    "- tag: '+tag'\n"
    "  rules:\n  - name: '@SUM(1)'\n    matchFeatures:\n"
    "    - feature: kernel.loadedmodule\n"
    "      matchExpressions: {'-cmd': {op: Exists}}\n"
)


@pytest.mark.parametrize(
    ("text", "written"),
    [
        pytest.param(FORMULA, "'" + FORMULA, id="equals"),
        pytest.param("+1+1", "'+1+1", id="plus"),
        pytest.param("@SUM(1)", "'@SUM(1)", id="at"),
        pytest.param("\tx", "'\tx", id="tab"),
        pytest.param("\rx", "'\rx", id="carriage-return"),
        pytest.param("-cmd", "'-cmd", id="minus-text"),
        pytest.param("-1.5", "-1.5", id="negative-number"),
        pytest.param("-2e3", "-2e3", id="negative-exponent"),
        pytest.param("+7", "+7", id="signed-number"),
        pytest.param("-2+3", "'-2+3", id="minus-digit-arithmetic"),
        pytest.param(
            "-1+1+cmd|' /C calc'!A0",
            "'-1+1+cmd|' /C calc'!A0",
            id="minus-digit-command",
        ),
        pytest.param("-1e", "'-1e", id="minus-digit-not-a-number"),
        pytest.param("-", "'-", id="lone-minus"),
        pytest.param("web-1", "web-1", id="plain"),
        pytest.param("", "", id="empty"),
    ],
)
def test_csv_text_that_starts_a_formula_gets_a_quote(text: str, written: str) -> None:
    assert safe_cell(text) == written


def test_no_csv_carries_a_formula_from_a_host_or_a_spec(tmp_path: Path) -> None:
    store = Store(tmp_path / "fleet.db")
    store.save_snapshot(
        Host(FORMULA, groups=("+grp",)),
        run_id=None,
        source="test",
        features=machine(pretty="=os"),
    )
    run = evaluate_targets(
        store, [ImageTarget("=image", "", "sha256:f", FORMULA_SPEC.encode())]
    )

    written = write_report(store, run.run_id, tmp_path / "out")

    matrix = pd.read_csv(written.matrix_csv, dtype=str, keep_default_na=False)
    hosts = pd.read_csv(written.hosts_csv, dtype=str, keep_default_na=False)
    assert written.long_csv is not None
    long = pd.read_csv(written.long_csv, dtype=str, keep_default_na=False)
    assert list(matrix.host) == list(hosts.host) == ["'" + FORMULA]
    assert list(matrix.columns)[-1] == "'=image"
    assert (matrix.groups[0], hosts.os[0]) == ("'+grp", "'=os")
    row = long.iloc[0]
    assert (row.host, row.image, row.set_tag) == ("'" + FORMULA, "'=image", "'+tag")
    assert (row.rule, row.element) == ("'@SUM(1)", "'-cmd")


def test_tables_piped_to_a_file_keep_each_host_on_one_line(tmp_path: Path) -> None:
    store = Store(tmp_path / "fleet.db")
    name = "db1.rack-42.datacenter-north.example.com"
    store.save_snapshot(
        Host(name, groups=("databases", "north", "tier-one")),
        run_id=None,
        source="ssh",
        status="hostkey-mismatch",
        error="host key for this host changed since it was recorded in known_hosts",
    )
    store.close()

    result = CliRunner().invoke(main, ["hosts", "--db", str(tmp_path / "fleet.db")])

    assert result.exit_code == 0, result.output
    line = next(line for line in result.stdout.splitlines() if name in line)
    assert "recorded in known_hosts" in line
    assert "\x1b[" not in result.stdout


def test_changes_say_when_an_image_lost_a_host_because_its_artifact_changed(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "fleet.db")
    store.save_snapshot(Host("web-0"), run_id=None, source="test", features=machine())
    evaluate_targets(
        store, [ImageTarget("app", "", "sha256:" + "a" * 64, SPEC_OK.encode())]
    )
    stricter = SPEC_OK.replace("5.15", "7.0")
    run = evaluate_targets(
        store, [ImageTarget("app", "", "sha256:" + "b" * 64, stricter.encode())]
    )

    written = write_report(store, run.run_id, tmp_path / "out")

    html = written.html.read_text()
    changes = html.split('id="changes"')[1].split("</section>")[0]
    assert "Became incompatible (1)" in changes
    artifacts = "sha256:aaaaaaaaaaaa -&gt; sha256:bbbbbbbbbbbb"
    assert f"compatibility artifact changed ({artifacts})" in changes
    assert "1 host &times; 1 image." in html

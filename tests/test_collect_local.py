"""Collection of local hosts through the real CLI: probe roots, skips, limits, runs.

No SSH server: every host here runs the probe with this machine's /bin/sh, most
of them under a small captured root.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from fleetcompat.store import Host, Store
from tests.sshd import run_cli

CPUINFO = """\
processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 85
model name\t: Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sse sse2 avx avx2
"""


def small_root(path: Path) -> Path:
    """A captured host root with a cpuinfo and an os-release."""
    (path / "proc").mkdir(parents=True)
    (path / "proc" / "cpuinfo").write_text(CPUINFO)
    (path / "etc").mkdir()
    (path / "etc" / "os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    return path


def local_inventory(path: Path, hosts: dict[str, str]) -> Path:
    """An inventory of local hosts; each value is extra YAML for that host."""
    lines = ["all:", "  hosts:"]
    for name, extra in hosts.items():
        lines.append(f"    {json.dumps(name)}:")
        if "ansible_connection" not in extra:
            lines.append("      ansible_connection: local")
        lines += [f"      {line}" for line in extra.splitlines()]
    path.write_text("\n".join(lines) + "\n")
    return path


async def collect(tmp_path: Path, inv: Path, *args: str) -> tuple[int, str, str]:
    """`fleetcompat collect` of `inv` into tmp_path/f.db."""
    db = str(tmp_path / "f.db")
    return await run_cli(tmp_path, "collect", "-i", str(inv), "--db", db, *args)


async def host_rows(tmp_path: Path) -> dict[str, dict[str, object]]:
    """`fleetcompat hosts -o json`, keyed by host name."""
    _, out, _ = await run_cli(
        tmp_path, "hosts", "--db", str(tmp_path / "f.db"), "-o", "json"
    )
    return {row["name"]: row for row in json.loads(out)}


@pytest.mark.parametrize(
    ("bad_root", "outcome", "reason"),
    [
        pytest.param(
            "/nonexistent/root", "probe-failed", "not a directory", id="missing-root"
        ),
        pytest.param(
            "EMPTY", "output-invalid", "no /proc and no /sys", id="empty-directory"
        ),
        pytest.param("FILE", "probe-failed", "not a directory", id="root-is-a-file"),
    ],
)
async def test_a_probe_root_that_is_no_host_fails_and_keeps_the_good_snapshot(
    tmp_path: Path, bad_root: str, outcome: str, reason: str
) -> None:
    root = small_root(tmp_path / "root")
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("not a tree\n")
    bad = {"EMPTY": str(tmp_path / "empty"), "FILE": str(tmp_path / "file")}
    inv = tmp_path / "inv.yaml"
    local_inventory(inv, {"box": f"fleetcompat_probe_root: {root}"})
    first = await collect(tmp_path, inv)
    good = (await host_rows(tmp_path))["box"]
    local_inventory(
        inv, {"box": f"fleetcompat_probe_root: {bad.get(bad_root, bad_root)}"}
    )

    status, out, err = await collect(tmp_path, inv, "-o", "json")
    row = (await host_rows(tmp_path))["box"]

    host = json.loads(out)["hosts"][0]
    assert first[0] == 0, first[2]
    assert status == 3, err
    assert host["outcome"] == outcome
    assert reason in host["reason"]
    assert row["outcome"] == outcome
    assert row["feature_set"] == good["feature_set"] is not None
    assert row["last_ok_at"] == good["last_ok_at"]


async def test_every_host_skipped_is_partial_and_names_each_with_its_reason(
    tmp_path: Path,
) -> None:
    inv = local_inventory(
        tmp_path / "inv.yaml",
        {"win1": "ansible_connection: winrm", "off": "fleetcompat_skip: true"},
    )

    status, out, err = await collect(tmp_path, inv)
    json_status, json_out, _ = await collect(tmp_path, inv, "-o", "json")

    summary = json.loads(json_out)
    assert status == 3 and json_status == 3, err
    assert "no host collected" in out and "2 skipped" in out
    assert "win1" in out and "'winrm' is not supported" in out
    assert "off" in out and "fleetcompat_skip is set" in out
    assert summary["status"] == "partial" and summary["hosts"] == []
    assert {s["name"] for s in summary["skipped"]} == {"win1", "off"}


async def test_one_skipped_host_beside_collected_ones_makes_the_run_partial(
    tmp_path: Path,
) -> None:
    root = small_root(tmp_path / "root")
    inv = local_inventory(
        tmp_path / "inv.yaml",
        {"box": f"fleetcompat_probe_root: {root}", "win1": "ansible_connection: winrm"},
    )

    status, out, err = await collect(tmp_path, inv)

    assert status == 3, err
    assert "1 ok, 1 skipped" in out
    assert "win1" in out and "winrm" in out


@pytest.mark.parametrize(
    "pattern",
    [
        pytest.param("!box", id="everything-excluded"),
        pytest.param("box:&nothere*", id="intersection-empty"),
        pytest.param("nothere", id="no-such-host"),
    ],
)
async def test_a_limit_that_selects_no_host_exits_2_naming_the_pattern(
    tmp_path: Path, pattern: str
) -> None:
    inv = local_inventory(tmp_path / "inv.yaml", {"box": ""})

    status, out, err = await collect(tmp_path, inv, "--limit", pattern)

    assert status == 2
    assert out == ""
    assert err.count("\n") == 1 and f"--limit {pattern}" in err
    assert not (tmp_path / "f.db").exists()


def test_only_runs_whose_process_is_gone_on_this_machine_are_marked_killed(
    tmp_path: Path,
) -> None:
    from fleetcompat.collect import mark_killed_runs

    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(gone.stdout)
    here = socket.gethostname()
    with Store(tmp_path / "f.db") as store:
        dead = store.start_run("collect", {"pid": dead_pid, "machine": here})
        for name in ("saved-before-the-kill", "also-saved"):
            store.save_snapshot(
                Host(name), run_id=dead, source="ssh", status="timeout", error="x"
            )
        live = store.start_run("collect", {"pid": os.getpid(), "machine": here})
        elsewhere = store.start_run("collect", {"pid": dead_pid, "machine": "other"})
        unrecorded = store.start_run("collect", {})
        finished = store.start_run("collect", {"pid": dead_pid, "machine": here})
        store.finish_run(finished, "ok", {})

        marked = mark_killed_runs(store)
        statuses = {run.id: run.status for run in store.runs()}
        counts = store.run(dead).counts

    assert marked == [dead]
    assert counts == {"timeout": 2}
    assert statuses == {
        dead: "killed",
        live: "running",
        elsewhere: "running",
        unrecorded: "running",
        finished: "ok",
    }


async def test_control_characters_in_names_and_reasons_never_reach_the_terminal(
    tmp_path: Path,
) -> None:
    hostile = "evil\x1b[2J\x1b]0;pwned\x07"
    root = json.dumps("/nonexistent/\x1b[31mred")
    inv = local_inventory(
        tmp_path / "inv.yaml", {hostile: f"fleetcompat_probe_root: {root}"}
    )

    _, collected, log = await collect(tmp_path, inv)
    _, listed, _ = await run_cli(tmp_path, "hosts", "--db", str(tmp_path / "f.db"))

    for text in (collected, log, listed):
        assert "\x1b" not in text and "\x07" not in text
    assert "evil?[2J" in listed and "evil?[2J" in log


async def test_discover_refuses_a_root_with_no_proc_and_no_sys(
    tmp_path: Path,
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "etc").mkdir()

    status, out, err = await run_cli(
        tmp_path, "discover", "--root", str(tmp_path / "empty")
    )

    assert status == 2
    assert out == ""
    assert err.count("\n") == 1
    assert f"{tmp_path / 'empty'}: no /proc and no /sys: not a host root" in err

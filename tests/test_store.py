"""The store: atomic snapshots, shared feature sets, history that failures keep."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetcompat.errors import StoreError
from fleetcompat.features import Features
from fleetcompat.store import Host, Store


def machine(nodename: str, kernel: str = "6.1.0") -> Features:
    """A small feature set as a host of one machine model would report it."""
    return Features(
        flags={"cpu.cpuid": {"AVX", "AVX2"}},
        attributes={
            "kernel.version": {"full": kernel},
            "system.name": {"nodename": nodename},
        },
        instances={"pci.device": [{"class": "0200", "vendor": "8086"}]},
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "fleet.db")


def test_hosts_with_equal_features_share_one_stored_set(store: Store) -> None:
    run = store.start_run("collect")

    for name in ("a", "b", "c"):
        store.save_snapshot(
            Host(name), run_id=run, source="ssh", features=machine(name), node_name=name
        )

    assert store.db["feature_sets"].count == 1
    good = store.latest_good_snapshots()
    assert [store.features(s).attributes["system.name"] for s in good] == [
        {"nodename": "a"},
        {"nodename": "b"},
        {"nodename": "c"},
    ]


def test_failed_attempt_keeps_the_earlier_good_snapshot(store: Store) -> None:
    first = store.start_run("collect")
    store.save_snapshot(Host("a"), run_id=first, source="ssh", features=machine("a"))
    second = store.start_run("collect")

    store.save_snapshot(
        Host("a"), run_id=second, source="ssh", status="timeout", error="probe: 30 s"
    )

    (status,) = store.hosts()
    assert status.latest is not None and status.latest.status == "timeout"
    assert status.latest_good is not None and status.latest_good.run_id == first


def test_snapshot_that_fails_to_write_leaves_nothing(store: Store) -> None:
    missing_run = 12345

    with pytest.raises(sqlite3.IntegrityError):
        store.save_snapshot(
            Host("a"), run_id=missing_run, source="ssh", features=machine("a")
        )

    assert store.db["snapshots"].count == 0
    assert store.db["hosts"].count == 0
    assert store.db["feature_sets"].count == 0


def test_snapshot_needs_features_exactly_when_ok(store: Store) -> None:
    with pytest.raises(ValueError):
        store.save_snapshot(Host("a"), run_id=None, source="ssh")


def test_prune_keeps_newest_good_and_drops_orphan_sets(store: Store) -> None:
    run = store.start_run("collect")
    store.save_snapshot(Host("a"), run_id=run, source="ssh", features=machine("a", "5"))
    store.save_snapshot(Host("a"), run_id=run, source="ssh", features=machine("a", "6"))
    store.save_snapshot(Host("a"), run_id=run, source="ssh", status="refused")

    removed = store.prune(keep=1)

    assert removed == 1
    kept = store.snapshots("a")
    assert [s.status for s in kept] == ["refused", "ok"]
    assert store.db["feature_sets"].count == 1
    assert store.features(kept[1]).attributes["kernel.version"] == {"full": "6"}


def test_run_records_settings_and_counts(store: Store) -> None:
    run = store.start_run("collect", {"concurrency": 5})

    store.finish_run(run, "partial", {"ok": 3, "unreachable": 1})

    (recorded,) = store.runs()
    assert recorded.settings == {"concurrency": 5}
    assert recorded.counts == {"ok": 3, "unreachable": 1}
    assert recorded.finished_at is not None


def test_foreign_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x)")

    with pytest.raises(StoreError, match="not a fleetcompat database"):
        Store(path)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    Store(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version=999")

    with pytest.raises(StoreError, match="newer fleetcompat"):
        Store(path)


def test_reopened_store_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "fleet.db"
    with Store(path) as store:
        run = store.start_run("collect")
        store.save_snapshot(Host("a"), run_id=run, source="ssh", features=machine("a"))

    with Store(path) as again:
        (status,) = again.hosts()
        ok = again.db.execute("PRAGMA integrity_check").fetchone()[0]

    assert status.latest_good is not None
    assert ok == "ok"


def test_unchanged_host_is_confirmed_in_place(store: Store) -> None:
    first = store.start_run("collect")
    store.save_snapshot(
        Host("a"), run_id=first, source="ssh", features=machine("a"), node_name="a"
    )
    second = store.start_run("collect")

    confirmed = store.save_snapshot(
        Host("a"),
        run_id=second,
        source="ssh",
        features=machine("a"),
        node_name="a",
        taken_at="2030-01-01T00:00:00Z",
    )

    assert store.db.table("snapshots").count == 1
    assert (confirmed.run_id, confirmed.first_run_id) == (second, first)
    assert confirmed.taken_at == "2030-01-01T00:00:00Z"
    assert confirmed.first_taken_at < confirmed.taken_at


def test_changed_features_or_a_failure_between_add_rows(store: Store) -> None:
    run = store.start_run("collect")
    save = store.save_snapshot

    save(Host("a"), run_id=run, source="ssh", features=machine("a", "6.1"))
    save(Host("a"), run_id=run, source="ssh", features=machine("a", "6.2"))
    save(Host("a"), run_id=run, source="ssh", status="timeout", error="probe")
    save(Host("a"), run_id=run, source="ssh", features=machine("a", "6.2"))

    kernels = [
        store.features(s).attributes["kernel.version"]["full"] if s.ok else s.status
        for s in store.snapshots("a")
    ]
    assert kernels == ["6.2", "timeout", "6.2", "6.1"]


READ_AS_NOBODY = """
import importlib.metadata, os, sys
import sqlite_utils.plugins
from fleetcompat.collect import fleet_status
from fleetcompat.errors import StoreError
from fleetcompat.store import Host, Store
sqlite_utils.plugins.ensure_plugins_loaded()  # imports done before losing /root
os.setgid(65534)
os.setuid(65534)
store = Store(sys.argv[1])
print(store.readonly, [s.host.name for s in fleet_status(store)])
try:
    store.start_run("collect")
except StoreError as exc:
    print("refused:", exc)
"""


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A folder any user can enter (pytest's own tmp folders are root-only)."""
    folder = Path(tempfile.mkdtemp(prefix="fleetcompat-ro-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def test_database_on_storage_it_cannot_write_is_read_only(public_dir: Path) -> None:
    path = public_dir / "fleet.db"
    with Store(path) as store:
        run = store.start_run("collect")
        store.save_snapshot(Host("a"), run_id=run, source="ssh", features=machine("a"))
    path.chmod(0o644)

    done = subprocess.run(
        [sys.executable, "-c", READ_AS_NOBODY, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "True ['a']"
    assert lines[1].startswith("refused:") and "read-only" in lines[1]


def test_reading_commands_do_not_invent_a_database(tmp_path: Path) -> None:
    typo = tmp_path / "fleeet.db"

    with pytest.raises(StoreError, match="no such database"):
        Store(typo, create=False)

    assert not typo.exists()

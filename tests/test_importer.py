"""Importing NodeFeature dumps, nfd export output and probe archives."""

from __future__ import annotations

import gzip
import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from fleetcompat.cli.main import main
from fleetcompat.importer import import_files
from fleetcompat.probe import run_local_probe
from fleetcompat.store import Store

FEATURES = {
    "flags": {"cpu.cpuid": {"elements": {"AVX2": {}, "SSE4": {}}}},
    "attributes": {"kernel.version": {"elements": {"major": "6", "full": "6.1.0"}}},
    "instances": {
        "pci.device": {
            "elements": [{"attributes": {"vendor": "10de", "class": "0300"}}]
        }
    },
}


def node_feature(name: str) -> dict[str, object]:
    """A NodeFeature object for node `name`."""
    return {
        "apiVersion": "nfd.k8s-sigs.io/v1alpha1",
        "kind": "NodeFeature",
        "metadata": {
            "name": f"{name}-abcde",
            "labels": {"nfd.node.kubernetes.io/node-name": name},
        },
        "spec": {"features": FEATURES},
    }


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """A fresh store."""
    return Store(tmp_path / "f.db")


def test_a_list_of_nodefeatures_becomes_one_snapshot_per_node(
    tmp_path: Path, store: Store
) -> None:
    dump = tmp_path / "nodes.yaml"
    dump.write_text(
        json.dumps({"kind": "List", "items": [node_feature("n1"), node_feature("n2")]})
    )

    summary = import_files([dump], store)

    assert [i.host for i in summary.imported] == ["n1", "n2"]
    assert {s.host for s in store.latest_good_snapshots()} == {"n1", "n2"}
    assert all(s.source == "import" for s in store.latest_good_snapshots())
    features = store.features(store.snapshots("n1")[0])
    assert features.flags["cpu.cpuid"] == {"AVX2", "SSE4"}
    assert features.attributes["system.name"] == {"nodename": "n1"}


@pytest.mark.parametrize(
    ("filename", "host", "expected"),
    [
        ("gpu-07.json", None, "gpu-07"),
        ("export.json", "node-a", "node-a"),
    ],
    ids=["named-by-stem", "named-by-option"],
)
def test_bare_features_are_named_by_host_option_or_file_stem(
    tmp_path: Path, store: Store, filename: str, host: str | None, expected: str
) -> None:
    path = tmp_path / filename
    path.write_text(json.dumps(FEATURES))

    summary = import_files([path], store, host=host)

    assert [i.host for i in summary.imported] == [expected]


def test_probe_archive_runs_discovery_like_a_collected_host(
    tmp_path: Path, store: Store
) -> None:
    archive = tmp_path / "box-3.probe.gz"
    archive.write_bytes(gzip.compress(run_local_probe()))

    summary = import_files([archive], store)

    snapshot = store.snapshots("box-3")[0]
    assert summary.imported[0].source == "probe-archive"
    assert snapshot.source == "probe-archive" and snapshot.ok
    assert "kernel.version" in store.features(snapshot).attributes


def test_probe_output_of_an_empty_root_is_refused_as_no_host(
    tmp_path: Path, store: Store
) -> None:
    (tmp_path / "empty").mkdir()
    archive = tmp_path / "box-4.probe"
    archive.write_bytes(run_local_probe(str(tmp_path / "empty")))

    summary = import_files([archive], store)

    assert summary.imported == ()
    assert summary.errors == (f"{archive}: no /proc and no /sys: not a host root",)
    assert store.hosts() == []


def test_bad_file_is_one_error_and_the_others_are_still_imported(
    tmp_path: Path, store: Store
) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(node_feature("good")))
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: NodeFeature\nspec: {features: {flags: [1, 2]}}\n")
    garbage = tmp_path / "broken.probe"
    garbage.write_bytes(b"#fleetcompat-probe v1\nQ nonsense\n")

    summary = import_files([bad, good, garbage], store)

    assert [i.host for i in summary.imported] == ["good"]
    assert len(summary.errors) == 2
    assert str(bad) in summary.errors[0] and "\n" not in summary.errors[0]
    assert str(garbage) in summary.errors[1]


def test_import_keeps_the_address_an_earlier_collection_recorded(
    tmp_path: Path, store: Store
) -> None:
    from fleetcompat.store import Host

    store.save_snapshot(
        Host("n1", "10.0.0.1:22", ("web",)),
        run_id=None,
        source="ssh",
        status="refused",
        error="x",
    )
    dump = tmp_path / "n1.json"
    dump.write_text(json.dumps(node_feature("n1")))

    import_files([dump], store)

    host = store.hosts()[0].host
    assert (host.address, host.groups) == ("10.0.0.1:22", ("web",))


def test_import_command_exits_3_on_a_partial_import(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(FEATURES))
    missing = tmp_path / "missing.json"
    db = tmp_path / "f.db"

    result = CliRunner().invoke(
        main, ["import", str(good), str(missing), "--db", str(db)]
    )

    assert result.exit_code == 3
    assert f"{missing}: cannot read" in result.output
    with sqlite3.connect(db) as conn:
        assert conn.execute("select host from snapshots").fetchall() == [("good",)]


def test_import_prints_node_names_without_terminal_control_characters(
    tmp_path: Path,
) -> None:
    dump = tmp_path / "nodes.json"
    dump.write_text(json.dumps(node_feature("n1\x1b]0;pwned\x07")))

    result = CliRunner().invoke(
        main, ["import", str(dump), "--db", str(tmp_path / "f.db")]
    )

    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "n1?]0;pwned?: import from" in result.output

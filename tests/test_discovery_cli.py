"""`fleetcompat discover`: its output formats and its sources of a host."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from fleetcompat.cli.main import ExitCode, main
from fleetcompat.discovery import discover
from fleetcompat.features import Features, load_features, read_node_features
from fleetcompat.hosttree import HostTree
from fleetcompat.probe import run_local_probe
from tests.discovery_support import make_root

TREE = {
    "/proc/cpuinfo": "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\n"
    "model\t\t: 85\nflags\t\t: fpu cx8 sep cmov mmx fxsr sse sse2 syscall\n",
    "/proc/sys/kernel/osrelease": "6.1.0-13-amd64\n",
    "/etc/os-release": 'ID=debian\nVERSION_ID="12"\nNOTE="a <b> & c"\n',
}


def run(*args: str) -> tuple[int, str, str]:
    """Run the CLI (NODE_NAME unset); return exit code, stdout and stderr."""
    result = CliRunner().invoke(main, ["discover", *args], env={"NODE_NAME": None})
    return result.exit_code, result.stdout, result.stderr


def test_json_output_is_nfd_export_features_shape(tmp_path: Path) -> None:
    root = make_root(tmp_path, TREE)

    code, out, _ = run("--root", str(root), "--output", "json")

    assert code == ExitCode.OK
    data = json.loads(out)
    assert list(data) == ["flags", "attributes", "instances"]
    assert out.startswith('{\n    "flags": {\n        "cpu.cpuid": {\n')
    assert '"NOTE": "a \\u003cb\\u003e \\u0026 c"' in out
    assert Features.from_nfd(data) == discover(HostTree.from_root(root))


def test_nodefeature_output_round_trips_through_load_features(tmp_path: Path) -> None:
    root = make_root(tmp_path, TREE)

    code, out, _ = run("--root", str(root), "-o", "nodefeature", "--node-name", "n1")

    assert code == ExitCode.OK
    loaded = read_node_features(out)
    assert loaded.node == "n1"
    assert loaded.features == discover(HostTree.from_root(root), "n1")
    assert loaded.features.attributes["system.name"] == {"nodename": "n1"}
    assert "kind: NodeFeature" in out
    assert "namespace: node-feature-discovery" in out


def test_yaml_output_loads_as_bare_features(tmp_path: Path) -> None:
    root = make_root(tmp_path, TREE)

    code, out, _ = run("--root", str(root), "-o", "yaml")

    assert code == ExitCode.OK
    assert load_features(out) == discover(HostTree.from_root(root))


def test_root_may_be_a_probe_output_file(tmp_path: Path) -> None:
    root = make_root(tmp_path / "root", TREE)
    archive = tmp_path / "host.probe"
    archive.write_bytes(run_local_probe(str(root)))

    _, from_file, _ = run("--root", str(archive))
    _, from_dir, _ = run("--root", str(root))

    assert from_file == from_dir


def test_without_root_the_probe_reads_this_machine() -> None:
    code, out, _ = run("-o", "json")

    assert code == ExitCode.OK
    assert "kernel.version" in json.loads(out)["attributes"]


def test_a_file_that_is_not_probe_output_is_bad_input(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.txt"
    bogus.write_text("hello\n")

    code, out, err = run("--root", str(bogus))

    assert code == ExitCode.USAGE
    assert out == ""
    assert "notes.txt" in err


def test_notes_go_to_stderr_only(tmp_path: Path) -> None:
    root = make_root(tmp_path, TREE)

    _, out, err = run("--root", str(root))

    assert "note:" in err
    assert "note:" not in out


def test_node_name_comes_from_node_name_then_this_hosts_name() -> None:
    import socket

    named = CliRunner().invoke(
        main, ["discover", "-o", "nodefeature"], env={"NODE_NAME": "worker-7"}
    )
    plain = CliRunner().invoke(
        main, ["discover", "-o", "nodefeature"], env={"NODE_NAME": None}
    )

    assert read_node_features(named.stdout).node == "worker-7"
    assert read_node_features(plain.stdout).node == socket.gethostname()

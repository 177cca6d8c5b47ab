"""HostTree over a captured root: symlinks stay inside, odd files read as unreadable."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from click.testing import CliRunner

from fleetcompat.cli.main import main
from fleetcompat.hosttree import HostTree, Unreadable
from fleetcompat.probe import run_local_probe
from tests.discovery_support import FIFO, make_root


@pytest.mark.parametrize(
    "link",
    ["/etc/secret", "../../../../../../etc/secret", "../../etc/secret"],
    ids=["absolute", "far-upward", "upward"],
)
def test_symlinks_never_leave_the_root(tmp_path: Path, link: str) -> None:
    root = make_root(
        tmp_path / "root", {"/etc/secret": "inside\n", "/a/b": ("link", link)}
    )

    assert HostTree.from_root(root).read_text("/a/b") == "inside\n"


def test_symlink_loop_reads_as_absent(tmp_path: Path) -> None:
    root = make_root(tmp_path, {"/a": ("link", "b"), "/b": ("link", "a")})

    tree = HostTree.from_root(root)

    assert tree.read_text("/a") is None
    assert not tree.exists("/a")


def test_dangling_symlink_is_listed_but_does_not_exist(tmp_path: Path) -> None:
    root = make_root(tmp_path, {"/sys/class/net/lo": ("link", "../../devices/lo")})

    tree = HostTree.from_root(root)

    assert tree.list_dir("/sys/class/net") == ["lo"]
    assert not tree.exists("/sys/class/net/lo")
    assert tree.read_link("/sys/class/net/lo") == "../../devices/lo"


@pytest.mark.parametrize(
    ("files", "path"),
    [({"/p": FIFO}, "/p"), ({"/d/x": ""}, "/d")],
    ids=["fifo", "directory"],
)
def test_non_regular_file_is_unreadable_not_absent(
    tmp_path: Path, files: dict[str, object], path: str
) -> None:
    tree = HostTree.from_root(make_root(tmp_path, files))

    assert tree.exists(path)
    with pytest.raises(Unreadable):
        tree.read_text(path)


def test_gzipped_probe_output_is_accepted_by_discover(tmp_path: Path) -> None:
    root = make_root(tmp_path / "root", {"/proc/sys/kernel/osrelease": "6.1.0\n"})
    archive = tmp_path / "host.probe.gz"
    archive.write_bytes(gzip.compress(run_local_probe(str(root))))

    plain = CliRunner().invoke(main, ["discover", "--root", str(root)])
    zipped = CliRunner().invoke(main, ["discover", "--root", str(archive)])

    assert zipped.exit_code == 0, zipped.output
    assert zipped.stdout == plain.stdout

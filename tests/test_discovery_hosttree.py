"""HostTree over a captured root: symlinks stay inside, odd files read as unreadable."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from fleetcompat.cli.main import main
from fleetcompat.discovery import discover_host
from fleetcompat.hosttree import (
    MAX_GZIP_TEXT_BYTES,
    HostTree,
    TooLarge,
    Unreadable,
    gunzip,
)
from fleetcompat.probe import parse_probe_output, run_local_probe
from tests.discovery_support import FIFO, make_root

REPO = Path(__file__).resolve().parent.parent
NOBODY = 65534


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


def at_bound(text: str) -> bytes:
    """`text` padded with a comment line to exactly the gzip text bound."""
    pad = MAX_GZIP_TEXT_BYTES - len(text) - 1
    return (text + "#" * pad + "\n").encode()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (gzip.compress(b"a\n"), b"a\n"),
        (gzip.compress(b"a\n") + gzip.compress(b"b\n"), b"a\nb\n"),
        (gzip.compress(at_bound("a")), at_bound("a")),
        (gzip.compress(bytes(MAX_GZIP_TEXT_BYTES + 1)), None),
    ],
    ids=["one-member", "two-members", "exactly-the-bound", "one-byte-over"],
)
def test_gunzip_reads_every_member_up_to_the_bound(
    data: bytes, expected: bytes | None
) -> None:
    assert gunzip(data, MAX_GZIP_TEXT_BYTES) == expected


@pytest.mark.parametrize(
    "data",
    [
        b"",
        gzip.compress(b"CONFIG_A=y\n")[:-6],
        b"CONFIG_A=y\n",
        gzip.compress(b"a") + b"x",
    ],
    ids=["empty", "cut-short", "not-gzip", "trailing-garbage"],
)
def test_gunzip_refuses_what_is_not_whole_gzip(data: bytes) -> None:
    with pytest.raises(zlib.error):
        gunzip(data, MAX_GZIP_TEXT_BYTES)


def test_gzip_bomb_reads_as_too_large_without_inflating_it(tmp_path: Path) -> None:
    bomb = gzip.compress(bytes(64 * MAX_GZIP_TEXT_BYTES))
    root = make_root(tmp_path, {"/proc/config.gz": bomb})

    with pytest.raises(TooLarge, match="decompresses to more than"):
        HostTree.from_root(root).read_gzip_text("/proc/config.gz")

    assert len(bomb) < 512 * 1024


GZIP_CONFIGS = {
    "bomb": (gzip.compress(bytes(MAX_GZIP_TEXT_BYTES + 1)), {"FALLBACK": "y"}),
    "exactly-the-bound": (gzip.compress(at_bound("CONFIG_A=y\n")), {"A": "y"}),
    "two-members": (
        gzip.compress(b"CONFIG_A=y\n") + gzip.compress(b"CONFIG_B=m\n"),
        {"A": "y", "B": "m"},
    ),
    "cut-short": (gzip.compress(b"CONFIG_A=y\n")[:-6], {"FALLBACK": "y"}),
    "empty": (b"", {"FALLBACK": "y"}),
    "not-gzip": (b"CONFIG_A=y\n", {"FALLBACK": "y"}),
}


@pytest.mark.parametrize("name", GZIP_CONFIGS)
def test_config_gz_that_is_not_whole_or_too_large_falls_through_to_the_next(
    tmp_path: Path, name: str
) -> None:
    data, expected = GZIP_CONFIGS[name]
    root = make_root(
        tmp_path / "root",
        {
            "/proc/sys/kernel/osrelease": "6.1.0\n",
            "/proc/config.gz": data,
            "/boot/config-6.1.0": "CONFIG_FALLBACK=y\n",
        },
    )

    from_root = discover_host(HostTree.from_root(root)).features
    from_probe = discover_host(parse_probe_output(run_local_probe(str(root)), name))

    assert from_root.attributes["kernel.config"] == expected
    assert from_probe.features == from_root


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory any user may reach (pytest's own temporary base is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="fleetcompat-"))
    path.chmod(0o755)
    yield path
    for below, dirs, _ in os.walk(path):
        for name in dirs:
            os.chmod(os.path.join(below, name), 0o755)
    shutil.rmtree(path)


AS_OTHER_USER = """
import json, os, sys
from fleetcompat.discovery import discover_host
from fleetcompat.hosttree import HostTree, Unreadable
from fleetcompat.probe import parse_probe_output, probe_script, run_local_probe

probe_script()
if os.geteuid() == 0:
    os.setgroups([])
    os.setgid(int(sys.argv[2]))
    os.setuid(int(sys.argv[2]))
tree = HostTree.from_root(sys.argv[1])


def outcome(call, *args):
    try:
        return call(*args)
    except Unreadable:
        return "Unreadable"


probe = parse_probe_output(run_local_probe(sys.argv[1]), "probe")
print(json.dumps({
    "read_optional": outcome(tree.read_optional, "/sys/x/y"),
    "read_text": outcome(tree.read_text, "/sys/x/y"),
    "exists": outcome(tree.exists, "/sys/x/y"),
    "is_dir": outcome(tree.is_dir, "/sys/x/z"),
    "read_link": outcome(tree.read_link, "/sys/x/y"),
    "list_dir": outcome(tree.list_dir, "/sys/x/z"),
    "list_dir_itself": outcome(tree.list_dir, "/sys/x"),
    "same_features": discover_host(tree).features == discover_host(probe).features,
    "pci_note": [n for n in discover_host(tree).notes if n.startswith("pci:")],
}))
"""


def run_as_other_user(root: Path) -> dict[str, object]:
    """AS_OTHER_USER's findings on `root`, as nobody (or this user, if not root).

    The child drops root itself once Python is loaded: the interpreter may live
    where nobody cannot reach.
    """
    done = subprocess.run(
        [sys.executable, "-c", AS_OTHER_USER, str(root), str(NOBODY)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert isinstance(result, dict)
    return result


def test_path_behind_an_unsearchable_directory_is_unreadable_not_an_error(
    public_dir: Path,
) -> None:
    root = make_root(
        public_dir / "root",
        {
            "/sys/x/y": "1\n",
            "/sys/bus/pci/devices/0000:00:01.0/class": "0x030000\n",
            "/proc/sys/kernel/osrelease": "6.1.0\n",
        },
    )
    (root / "sys" / "x").chmod(0)
    (root / "sys" / "bus" / "pci").chmod(0)

    found = run_as_other_user(root)

    assert found == {
        "read_optional": None,
        "read_text": "Unreadable",
        "exists": True,
        "is_dir": False,
        "read_link": None,
        "list_dir": "Unreadable",
        "list_dir_itself": "Unreadable",
        "same_features": True,
        "pci_note": [
            "pci: /sys/bus/pci/devices cannot be listed (Permission denied); left out"
        ],
    }


def test_live_proc_sysctl_reads_through_a_root_of_slash() -> None:
    import os

    from fleetcompat.hosttree import HostTree

    tree = HostTree.from_root("/")

    release = tree.read_text("/proc/sys/kernel/osrelease")

    assert release is not None and release.strip() == os.uname().release

"""The probe's fork-free paths: what it reads with the shell alone, as Python reads it.

On a live host the probe reads the small files of /sys with the shell's own `read`,
tells an absent path from one behind an unsearchable directory without readlink,
and reads CPU lists that answer a one-byte read with nothing through one `head` for
all CPUs. Every record those paths write must be what fleetcompat's own reader of
the same files reports.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fleetcompat.hosttree import HostTree, Record, RecordTree, Unreadable
from fleetcompat.probe import parse_probe_output, probe_script
from tests.discovery_support import make_root

MAXFILE = 1024 * 1024
SHELLS = {"dash": "/bin/sh", "busybox": shutil.which("busybox") or "/bin/busybox"}
MAIN_PART = b"# First line: the format and what produced it.\n"


def shell_command(shell: str) -> list[str]:
    """The command line running a script from stdin under a named shell."""
    path = SHELLS[shell]
    if not os.path.exists(path):
        pytest.skip(f"{shell} is not installed")
    return [path, "sh", "-s"] if shell == "busybox" else [path, "-s"]


def probe_functions() -> bytes:
    """The probe script up to its first record: settings and functions only."""
    script = probe_script()
    assert MAIN_PART in script
    return script[: script.index(MAIN_PART)]


def run_functions(shell: str, calls: str, root: Path | None = None) -> RecordTree:
    """Records from the probe's functions called as `calls` says, under `shell`."""
    env = {k: v for k, v in os.environ.items() if k != "FLEETCOMPAT_ROOT"}
    if root is not None:
        env["FLEETCOMPAT_ROOT"] = str(root)
    script = (
        probe_functions()
        + b"printf '#fleetcompat-probe v1\\n'\n"
        + calls.encode()
        + b"\nprintf '#end 0\\n'\n"
    )
    done = subprocess.run(
        shell_command(shell), input=script, capture_output=True, env=env, check=True
    )
    return parse_probe_output(done.stdout, shell)


def python_record(tree: HostTree, path: str) -> Record:
    """What fleetcompat's reader makes of a path, as a probe record."""
    try:
        text = tree.read_text(path)
    except Unreadable:
        return Record("unreadable")
    if text is None:
        return Record("absent")
    if len(text.encode()) > MAXFILE:
        return Record("file", text.encode()[:MAXFILE].decode(), truncated=True)
    return Record("file", text)


def assert_records_match(records: RecordTree, tree: HostTree, prefix: str) -> int:
    """Every file-like record under `prefix` equals the reader's; their number."""
    checked = 0
    for path, record in records.records.items():
        if not path.startswith(prefix) or record.kind not in (
            "file",
            "unreadable",
            "absent",
        ):
            continue
        assert record == python_record(tree, path), path
        checked += 1
    return checked


@pytest.mark.parametrize("shell", ["dash", "busybox"])
def test_live_sys_files_read_by_the_shell_are_what_python_reads(shell: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "FLEETCOMPAT_ROOT"}
    done = subprocess.run(
        shell_command(shell),
        input=probe_script(),
        capture_output=True,
        env=env,
        check=True,
    )
    records = parse_probe_output(done.stdout, shell)
    live = HostTree.from_root("/")

    assert assert_records_match(records, live, "/sys/") > 0
    assert assert_records_match(records, live, "/proc/sys/kernel/") == 2


EDGE_CONTENTS: dict[str, Any] = {
    "bios_date": "no trailing newline",
    "bios_vendor": "",
    "bios_version": "one\ntwo\nthree\n",
    "board_asset_tag": "  leading and trailing \t \n",
    "board_name": "back\\slash \\n \\\\\n",
    "board_vendor": "crlf\r\nline\r\n",
    "board_version": "\n",
    "chassis_asset_tag": "\n\n\n",
    "chassis_type": "x" * MAXFILE,
    "chassis_vendor": "y" * (MAXFILE + 1),
    "chassis_version": "z" * (MAXFILE - 1) + "\n",
    "product_family": "\t",
    "product_name": "last\n\n",
    "product_sku": "==> /sys/fake <==\n",
    "product_version": "a" * 5000 + "\n" + "b" * 10,
    "sys_vendor": "v" * MAXFILE + "\n",
}
DMI = "/sys/devices/virtual/dmi/id"


def edge_tree(root: Path) -> Path:
    """A tree whose DMI files hold every content shape a small file may take."""
    files = {f"{DMI}/{name}": text for name, text in EDGE_CONTENTS.items()}
    files["/proc/sys/kernel/osrelease"] = " \t6.1.0-edge\r\f \n"
    files["/boot/config-6.1.0-edge"] = "CONFIG_EDGE=y\n"
    return make_root(root, files)


SHELLREAD_CALLS = """
for f in '{base}'/*; do
\tif ! shellread "$f" "$MAXFILE"; then emit "U $f"
\telif [ -n "$c" ]; then emit "F ${{#c}} $f" && emit "$c"
\telse emit "E $f"
\tfi
done
"""
"""Calls recording what the shell's own read makes of each file (E: left to head)."""


@pytest.mark.parametrize("shell", ["dash", "busybox"])
def test_the_shell_reads_small_files_of_every_shape_exactly(
    tmp_path: Path, shell: str
) -> None:
    base = make_root(tmp_path / "files", EDGE_CONTENTS)
    (base / "missing").symlink_to("none")

    records = run_functions(shell, SHELLREAD_CALLS.format(base=base)).records

    assert records[f"{base}/missing"].kind == "unreadable"
    for name, text in EDGE_CONTENTS.items():
        record = records[f"{base}/{name}"]
        if 0 < len(text.encode()) <= 4096:
            assert record == Record("file", text), name
        else:
            assert record.kind == "exists", name


@pytest.mark.parametrize("shell", ["dash", "busybox"])
def test_file_contents_of_every_shape_are_recorded_exactly(
    tmp_path: Path, shell: str
) -> None:
    root = edge_tree(tmp_path / "root")
    (root / "files").symlink_to(DMI.lstrip("/"))

    calls = "".join(f"file {DMI}/{name}\n" for name in EDGE_CONTENTS)
    captured = run_functions(shell, calls, root)
    calls = "".join(f"file {root}/files/{name}\n" for name in EDGE_CONTENTS)
    live = run_functions(shell, calls)

    checked = assert_records_match(captured, HostTree.from_root(root), DMI)
    assert checked == len(EDGE_CONTENTS)
    checked = assert_records_match(live, HostTree.from_root("/"), f"{root}/files")
    assert checked == len(EDGE_CONTENTS)
    assert captured.records[f"{DMI}/chassis_type"].truncated is False
    assert captured.records[f"{DMI}/chassis_vendor"].truncated is True


@pytest.mark.parametrize("shell", ["dash", "busybox"])
def test_release_is_trimmed_of_all_white_space(tmp_path: Path, shell: str) -> None:
    root = edge_tree(tmp_path / "root")
    env = {"PATH": os.environ["PATH"], "FLEETCOMPAT_ROOT": str(root)}

    done = subprocess.run(
        shell_command(shell), input=probe_script(), capture_output=True, env=env
    )
    records = parse_probe_output(done.stdout, shell).records

    assert records["/boot/config-6.1.0-edge"].text == "CONFIG_EDGE=y\n"
    assert records["/usr/src/linux-6.1.0-edge/.config"].kind == "absent"


def live_paths(base: Path) -> tuple[Path, list[str]]:
    """A live tree of links and absent names, and the paths to look up in it."""
    base.mkdir()
    (base / "dir" / "sub").mkdir(parents=True)
    (base / "dir" / "file").write_text("f\n")
    links = {
        "abs": str(base / "dir"),
        "rel": "dir/sub",
        "chain": "abs",
        "dots": "./dir/../dir/./sub/..",
        "up": "../" + base.name + "/dir",
        "tofile": "dir/file",
        "broken": "dir/none",
        "brokenabs": str(base / "nowhere" / "x"),
        "self": "self",
        "ping": "pong",
        "pong": "ping",
        "under": "under/x",
    }
    for name, target in links.items():
        (base / name).symlink_to(target)
    names = [
        "dir",
        "dir/file",
        "dir/none",
        "dir/none/deeper/still",
        "dir/file/child",
        "nowhere/at/all",
        *links,
        *(f"{name}/x" for name in links),
        *(f"{name}/sub/x" for name in links),
        "rel/x/y",
        "chain/sub",
    ]
    return base, [f"{base}/{name}" for name in names]


def lookup(tree: HostTree, path: str) -> str:
    """The reader's answer for a path: exists, absent, or unreadable (unreachable)."""
    if not tree.exists(path):
        return "absent"
    if tree.is_dir(path):
        return "exists"
    try:
        tree.read_bytes(path)
    except Unreadable:
        return "unreadable"
    return "exists"


def resolve_calls(paths: list[str]) -> str:
    """Probe calls recording each path's existence, as `exists` does."""
    return "".join(f"exists '{path}'\n" for path in paths)


@pytest.mark.parametrize("shell", ["dash", "busybox"])
def test_live_lookups_tell_absent_from_present_as_python_does(
    tmp_path: Path, shell: str
) -> None:
    base, paths = live_paths(tmp_path / "live")

    records = run_functions(shell, resolve_calls(paths)).records

    live = HostTree.from_root("/")
    assert {path: records[path].kind for path in paths} == {
        path: lookup(live, path) for path in paths
    }


@pytest.mark.skipif(os.geteuid() == 0, reason="root searches any directory")
@pytest.mark.parametrize("shell", ["dash", "busybox"])
def test_live_lookups_behind_an_unsearchable_directory_are_unreadable(
    tmp_path: Path, shell: str
) -> None:
    base, paths = live_paths(tmp_path / "live")
    (base / "dir" / "sub" / "in").write_text("x\n")
    (base / "locked").symlink_to("dir/sub")
    paths += [f"{base}/dir/sub/in", f"{base}/locked/in", f"{base}/locked/none/x"]
    (base / "dir" / "sub").chmod(0o644)
    try:
        records = run_functions(shell, resolve_calls(paths)).records
        expected = {path: lookup(HostTree.from_root("/"), path) for path in paths}
    finally:
        (base / "dir" / "sub").chmod(0o755)

    assert {path: records[path].kind for path in paths} == expected
    assert expected[f"{base}/locked/in"] == "unreadable"


def cpu_tree(base: Path, contents: dict[str, str]) -> Path:
    """Directories shaped like /sys/bus/cpu/devices, one list file in each."""
    for cpu, text in contents.items():
        (base / cpu / "topology").mkdir(parents=True)
        (base / cpu / "topology" / "thread_siblings_list").write_text(text)
    return base


BATCH_CALLS = """
shellread() {{ c=; return 0; }}
batch '{base}' topology/thread_siblings_list
[ "$BN" -gt 0 ] && printf '#note batched\\n'
for cpu in {cpus}; do file '{base}'/$cpu/topology/thread_siblings_list; done
"""
"""Calls reading CPU lists as the one-byte-read lists of /sys would be read."""


NEXT = "==> {base}/cpu1/topology/thread_siblings_list <=="
"""The header head writes before the second CPU's list, when it is not content."""


@pytest.mark.parametrize(
    ("contents", "batched"),
    [
        ({"cpu0": "0-1\n", "cpu1": "", "cpu2": "2", "cpu3": "3\n\n"}, True),
        ({"cpu0": "0\n", "cpu1": "x\n==> y <==\n1\n", "cpu2": "2\n"}, False),
        ({"cpu0": f"0\n{NEXT}\n", "cpu1": "1\n"}, False),
        ({"cpu0": f"0\n\n{NEXT}", "cpu1": "1\n"}, False),
        ({"cpu0": "0\n", "cpu1": "==> z <==", "cpu2": "2\n"}, False),
        ({"cpu0": "0\n==> ", "cpu1": "==> z <", "cpu2": "x0"}, True),
    ],
    ids=[
        "plain",
        "header-inside",
        "next-header",
        "next-header-last",
        "header-alone",
        "near-headers",
    ],
)
@pytest.mark.parametrize("shell", ["dash", "busybox"])
def test_lists_read_in_one_batch_are_split_exactly(
    tmp_path: Path, shell: str, contents: dict[str, str], batched: bool
) -> None:
    base = tmp_path / "cpus"
    contents = {cpu: text.format(base=base) for cpu, text in contents.items()}
    cpu_tree(base, contents)
    calls = BATCH_CALLS.format(base=base, cpus=" ".join(contents))

    env = {k: v for k, v in os.environ.items() if k != "FLEETCOMPAT_ROOT"}
    done = subprocess.run(
        shell_command(shell),
        input=probe_functions() + calls.encode(),
        capture_output=True,
        env=env,
        check=True,
    )
    output = b"#fleetcompat-probe v1\n" + done.stdout + b"#end 0\n"
    records = parse_probe_output(output, shell)

    assert (b"#note batched\n" in done.stdout) is batched
    checked = assert_records_match(records, HostTree.from_root("/"), str(base))
    assert checked == len(contents)

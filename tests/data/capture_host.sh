#!/bin/sh
# Capture, from this machine, exactly the files the probe reads, as a host tree.
#
#   sh tests/data/capture_host.sh [DEST]      (default tests/data/hosts/this-machine)
#
# It runs collectors/probe.sh and writes each record back as a file under DEST:
# file contents as files, /proc/config.gz gzipped again, /proc/self/auxv as the
# bytes the probe's od printed, listed directory entries
# that hold nothing the probe read as empty files, and paths that only had to
# exist as directories holding a .keep file (git drops empty directories, so an
# empty listed directory reads as absent from a checkout; for the directories the
# probe lists, NFD treats both alike). Unreadable paths are left out. Review the result
# before committing it: it holds this machine's DMI strings and os-release.
set -eu
here=$(cd "$(dirname "$0")/../.." && pwd)
dest=${1:-$here/tests/data/hosts/this-machine}
python=${PYTHON:-$here/.venv/bin/python}

rm -rf "$dest"
mkdir -p "$dest"
sh "$here/collectors/probe.sh" >"$dest.probe"
"$python" - "$dest.probe" "$dest" <<'PY'
import gzip, sys
from pathlib import Path
from fleetcompat.probe import parse_probe_output

tree = parse_probe_output(Path(sys.argv[1]).read_bytes(), sys.argv[1])
dest = Path(sys.argv[2])
records = {k: v for k, v in tree.records.items() if "\0" not in k}
for path, record in sorted(records.items()):
    target = dest / path.lstrip("/")
    if record.kind == "hex":
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(bytes.fromhex("".join(record.text.split())))
    elif record.kind in ("file", "gzip"):
        target.parent.mkdir(parents=True, exist_ok=True)
        data = record.text.encode()
        target.write_bytes(gzip.compress(data, mtime=0) if record.kind == "gzip" else data)
    elif record.kind == "dir":
        target.mkdir(parents=True, exist_ok=True)
    elif record.kind == "exists":
        target.mkdir(parents=True, exist_ok=True)
        (target / ".keep").touch()  # git keeps no empty directory
for path, record in sorted(records.items()):
    for name in record.entries:
        entry = dest / path.lstrip("/") / name
        if not entry.exists():
            entry.touch()
PY
rm -f "$dest.probe"
du -sh "$dest"

"""Features carried in by hand, stored exactly like collected snapshots.

Three kinds of file are read, told apart by their content:

- NodeFeature objects: one, or a `kind: List` (as `kubectl get nodefeatures -A -o
  yaml` prints), one snapshot per node, named by the node;
- bare features, as `nfd export features` prints them, named by `host` or the
  file's stem;
- probe output (`sh probe.sh > host.probe`, optionally gzipped): a "probe archive",
  turned into features by the same discovery as a collection run, named by `host`
  or the file's stem.

Each file is read and checked whole before any of its snapshots is saved; a bad
file becomes one error line naming it, and the other files are still imported.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetcompat.documents import parse_text
from fleetcompat.errors import FleetcompatError, InputError
from fleetcompat.features import Features, iter_node_features
from fleetcompat.probe import MAX_OUTPUT_BYTES, is_probe_output, parse_probe_output
from fleetcompat.store import Host, Store

SOURCE_IMPORT = "import"
SOURCE_PROBE_ARCHIVE = "probe-archive"


@dataclass(frozen=True)
class Imported:
    """One snapshot an import saved."""

    path: str
    host: str
    source: str
    feature_set: str | None


@dataclass(frozen=True)
class ImportSummary:
    """What an import run saved, and the files it could not read."""

    run_id: int
    imported: tuple[Imported, ...]
    errors: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """The summary as one JSON-ready document."""
        return {
            "run": self.run_id,
            "imported": [vars(i) for i in self.imported],
            "errors": list(self.errors),
        }


def import_files(
    paths: list[Path] | list[str], store: Store, *, host: str | None = None
) -> ImportSummary:
    """Import every file as snapshots of source "import" or "probe-archive".

    `host` names the snapshot of a file that does not name its node (a bare
    features file or probe output); NodeFeature objects keep their own names.
    """
    run_id = store.start_run("import", {"files": len(paths), "host": host or ""})
    imported: list[Imported] = []
    errors: list[str] = []
    for path in map(Path, paths):
        try:
            found = read_file(path, host)
        except FleetcompatError as exc:
            errors.append(str(exc))
            continue
        for name, source, features in found:
            snapshot = store.save_snapshot(
                Host(name),
                run_id=run_id,
                source=source,
                features=features,
                node_name=name,
            )
            imported.append(Imported(str(path), name, source, snapshot.feature_set))

    counts = {"imported": len(imported), "failed": len(errors)}
    status = "ok" if not errors else ("partial" if imported else "failed")
    store.finish_run(run_id, status, counts)
    return ImportSummary(run_id, tuple(imported), tuple(errors))


def read_file(path: Path, host: str | None = None) -> list[tuple[str, str, Features]]:
    """The (host, source, features) of every node a file holds.

    Raises an InputError naming the file when it cannot be read or is none of the
    kinds above.
    """
    data = _read_bounded(path)
    if data[:2] == b"\x1f\x8b":
        data = _gunzip(data, path)
    if is_probe_output(data):
        from fleetcompat.discovery import check_host_root, discover

        name = host or _stem(path)
        tree = parse_probe_output(data, str(path))
        check_host_root(tree, str(path))
        return [(name, SOURCE_PROBE_ARCHIVE, discover(tree, node_name=name))]

    document = parse_text(data, str(path))
    nodes = iter_node_features(document, str(path))
    if not nodes:
        raise InputError(f"{path}: holds no NodeFeature")
    found = []
    for node in nodes:
        name = node.node or host or _stem(path)
        found.append((name, SOURCE_IMPORT, node.features))
    names = [n for n, _, _ in found]
    if len(set(names)) != len(names):
        raise InputError(f"{path}: names a node twice ({', '.join(sorted(names))})")
    return found


def _read_bounded(path: Path) -> bytes:
    """A file's bytes, refusing one larger than probe output may be."""
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_OUTPUT_BYTES + 1)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_OUTPUT_BYTES:
        raise InputError(f"{path}: larger than {MAX_OUTPUT_BYTES} bytes")
    return data


def _gunzip(data: bytes, path: Path) -> bytes:
    """A gzip file's content, bounded like the file itself."""
    try:
        inflater = zlib.decompressobj(wbits=31)
        out = inflater.decompress(data, MAX_OUTPUT_BYTES + 1)
    except (zlib.error, gzip.BadGzipFile) as exc:
        raise InputError(f"{path}: bad gzip data: {exc}") from None
    if len(out) > MAX_OUTPUT_BYTES:
        raise InputError(f"{path}: decompresses to more than {MAX_OUTPUT_BYTES} bytes")
    return out


def _stem(path: Path) -> str:
    """A file's name without its extensions (`gpu-07.probe.gz` -> `gpu-07`)."""
    name = path.name
    for suffix in (".gz", ".probe", ".json", ".yaml", ".yml", ".txt", ".out"):
        name = name.removesuffix(suffix)
    return name or path.name

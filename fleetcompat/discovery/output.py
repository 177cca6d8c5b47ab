"""Where discovery reads a host from, and how its features are printed.

`discover_source` picks the host tree for a `--root` argument (a captured directory,
a probe output file, or this machine through the probe); `render_features` prints
features the way NFD's tools do.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from pathlib import Path
from typing import Any

import yaml

from fleetcompat.discovery import Discovery, check_host_root, discover_host
from fleetcompat.errors import FeaturesError
from fleetcompat.features import NODE_NAME_LABEL, NODEFEATURE_API, Features
from fleetcompat.hosttree import HostTree
from fleetcompat.probe import (
    MAX_OUTPUT_BYTES,
    is_probe_output,
    parse_probe_output,
    run_local_probe,
)

NFD_NAMESPACE = "node-feature-discovery"


def load_tree(root: str | Path | None) -> HostTree:
    """The host tree for a captured directory, a probe output file (gzipped or
    not), or this machine.

    Raises FeaturesError when a file is not probe output or cannot be read.
    """
    if root is None:
        return parse_probe_output(run_local_probe(), "local probe")
    path = Path(root)
    if path.is_dir():
        return HostTree.from_root(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_OUTPUT_BYTES + 1)
    except OSError as exc:
        raise FeaturesError(f"{path}: cannot read: {exc.strerror}") from None
    if data.startswith(b"\x1f\x8b"):
        data = _gunzip(data, path)
    if not is_probe_output(data):
        raise FeaturesError(f"{path}: neither a directory nor fleetcompat probe output")
    return parse_probe_output(data, str(path))


def _gunzip(data: bytes, path: Path) -> bytes:
    """A gzipped probe output, decompressed within the output bound."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            return stream.read(MAX_OUTPUT_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise FeaturesError(f"{path}: not a readable gzip file: {exc}") from None


def discover_source(root: str | Path | None, node_name: str = "") -> Discovery:
    """Discover the host `root` names (see `load_tree`), keeping the notes.

    Raises FeaturesError for a tree that is not a host's root (`check_host_root`).
    """
    tree = load_tree(root)
    check_host_root(tree, str(root) if root is not None else "local probe")
    return discover_host(tree, node_name)


def node_feature(features: Features, node_name: str) -> dict[str, Any]:
    """A NodeFeature object carrying `features`, as nfd-worker writes one."""
    name = node_name or "node"
    return {
        "apiVersion": NODEFEATURE_API,
        "kind": "NodeFeature",
        "metadata": {
            "labels": {NODE_NAME_LABEL: name},
            "name": name,
            "namespace": NFD_NAMESPACE,
        },
        "spec": {"features": features.to_nfd(), "labels": {}},
    }


def render_features(features: Features, output: str, node_name: str = "") -> str:
    """Features as text: json (nfd export features), yaml, or a NodeFeature."""
    if output == "json":
        return go_json(features.to_nfd()) + "\n"
    if output == "yaml":
        return yaml.safe_dump(features.to_nfd(), sort_keys=True)
    if output == "nodefeature":
        return yaml.safe_dump(node_feature(features, node_name), sort_keys=False)
    raise ValueError(f"unknown output format {output!r}")


def go_json(data: Any) -> str:
    """JSON as Go's json.MarshalIndent(v, "", "    ") writes it (HTML-escaped)."""
    text = json.dumps(data, indent=4, ensure_ascii=False)
    for char, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e")):
        text = text.replace(char, escaped)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")

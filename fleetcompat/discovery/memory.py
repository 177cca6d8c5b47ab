"""NFD's memory source: numa, swap, nv, hugepages."""

from __future__ import annotations

from fleetcompat.features import Features
from fleetcompat.hosttree import HostTree, Unreadable

HUGEPAGES = "/sys/kernel/mm/hugepages"
BINARY_SUFFIXES = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")


def discover(tree: HostTree, notes: list[str]) -> Features:
    """The memory.* features NFD's worker would report for this host."""
    features = Features()

    nodes = _list(tree, "/sys/bus/node/devices")
    if nodes is not None:
        features.attributes["memory.numa"] = {
            "is_numa": str(len(nodes) > 1).lower(),
            "node_count": str(len(nodes)),
        }
    swaps = tree.read_optional("/proc/swaps")
    if swaps is not None:
        lines = [line for line in swaps.split("\n") if line.strip()]
        features.attributes["memory.swap"] = {"enabled": str(len(lines) > 1).lower()}
    nv = nv_devices(tree)
    if nv is not None:
        features.instances["memory.nv"] = nv
    hugepages = detect_hugepages(tree)
    if hugepages is not None:
        features.attributes["memory.hugepages"] = hugepages
    return features


def nv_devices(tree: HostTree) -> list[dict[str, str]] | None:
    """memory.nv: one instance per NVDIMM bus device; None when unlistable."""
    base = "/sys/bus/nd/devices"
    try:
        devices = tree.list_dir(base)
    except Unreadable:
        return None
    instances = []
    for name in devices or []:
        attrs = {"name": name}
        for attr in ("devtype", "mode"):
            value = tree.read_optional(f"{base}/{name}/{attr}")
            if value is not None:
                attrs[attr] = value.strip()
        instances.append(attrs)
    return instances


def detect_hugepages(tree: HostTree) -> dict[str, str] | None:
    """memory.hugepages: enabled, and the page count per size as a k8s quantity."""
    attrs = {"enabled": "false"}
    try:
        sizes = tree.list_dir(HUGEPAGES)
    except Unreadable:
        return None
    for entry in sizes or []:
        if not tree.is_dir(f"{HUGEPAGES}/{entry}"):
            continue
        count = (tree.read_optional(f"{HUGEPAGES}/{entry}/nr_hugepages") or "").strip()
        size = entry.removeprefix("hugepages-").rstrip("kB")
        if not size.isdigit():
            continue
        attrs["hugepages-" + binary_quantity(int(size) * 1024)] = count
        if count.isdigit() and int(count) > 0:
            attrs["enabled"] = "true"
    return attrs


def binary_quantity(size: int) -> str:
    """A byte count as Kubernetes writes a binary quantity (2097152 -> 2Mi)."""
    index = 0
    while size and size % 1024 == 0 and index < len(BINARY_SUFFIXES) - 1:
        size //= 1024
        index += 1
    return f"{size}{BINARY_SUFFIXES[index]}"


def _list(tree: HostTree, path: str) -> list[str] | None:
    """A directory's entries, None when absent or unreadable (both errors to NFD)."""
    try:
        return tree.list_dir(path)
    except Unreadable:
        return None

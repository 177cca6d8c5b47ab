"""Feature discovery: a host's files to the features NFD's worker reports.

One pure function per NFD feature source reads a `HostTree` (a captured root, or
what the probe gathered over SSH, locally, or by hand) and returns that source's
features under NFD's names. `discover` runs them all, in NFD's source order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from fleetcompat.discovery import cpu, devices, kernel, local, memory, system
from fleetcompat.errors import FeaturesError
from fleetcompat.features import Features
from fleetcompat.hosttree import ABSENT, HostTree, RecordTree

__all__ = ["Discovery", "check_host_root", "discover", "discover_host"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Discovery:
    """A host's features, with notes on what could not be known from its files."""

    features: Features
    notes: tuple[str, ...] = ()


def discover(tree: HostTree, node_name: str = "") -> Features:
    """The features NFD's worker would report for the host `tree` describes."""
    return discover_host(tree, node_name).features


def discover_host(
    tree: HostTree, node_name: str = "", now: datetime | None = None
) -> Discovery:
    """Like `discover`, keeping the notes; `now` decides local feature expiry.

    Reads any tree, even one with a single file (as the feature tests build);
    callers handed a whole host check it with `check_host_root` first.
    """
    notes: list[str] = []
    features = Features()

    features.merge(cpu.discover(tree, notes))
    features.merge(kernel.discover(tree, notes))
    features.merge(local.discover(tree, notes, now))
    features.merge(memory.discover(tree, notes))
    features.merge(devices.network(tree, notes))
    features.merge(devices.pci(tree, notes))
    features.merge(devices.storage(tree, notes))
    features.merge(system.discover(tree, node_name, notes))
    features.merge(devices.usb(tree, notes))

    for note in notes:
        log.debug("discovery: %s", note)
    return Discovery(features, tuple(notes))


def check_host_root(tree: HostTree, source: str) -> None:
    """Refuse a tree with neither /proc nor /sys: it is not a host's root.

    An empty or mistyped root would otherwise read as a host with almost no
    features, and be kept as that host's latest good snapshot. `source` names
    the tree in the message. Raises FeaturesError.
    """
    if isinstance(tree, RecordTree):
        found = any(
            path.startswith(("/proc/", "/sys/")) and record.kind != ABSENT
            for path, record in tree.records.items()
        )
    else:
        found = tree.exists("/proc") or tree.exists("/sys")
    if not found:
        raise FeaturesError(f"{source}: no /proc and no /sys: not a host root")

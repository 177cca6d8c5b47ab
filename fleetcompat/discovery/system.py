"""NFD's system source: osrelease, name, dmiid."""

from __future__ import annotations

import re

from fleetcompat.features import Features
from fleetcompat.hosttree import HostTree

DMI = "/sys/devices/virtual/dmi/id"
DMI_NAMES = (
    "bios_date",
    "bios_vendor",
    "bios_version",
    "board_asset_tag",
    "board_name",
    "board_vendor",
    "board_version",
    "chassis_asset_tag",
    "chassis_type",
    "chassis_vendor",
    "chassis_version",
    "product_family",
    "product_name",
    "product_sku",
    "product_version",
    "sys_vendor",
)

_LINE = re.compile(r"^([0-9A-Za-z_]+)=(.+)")
_VERSION_ID = re.compile(r"^([0-9]+)(\.([0-9]+))?(\..*)?$")


def discover(tree: HostTree, node_name: str, notes: list[str]) -> Features:
    """The system.* features NFD's worker would report for this host."""
    features = Features()
    features.attributes["system.name"] = {"nodename": node_name}

    text = tree.read_optional("/etc/os-release")
    if text is not None:
        features.attributes["system.osrelease"] = parse_os_release(text)
    else:
        notes.append("system: /etc/os-release unreadable or absent; osrelease left out")

    dmi = {}
    for name in DMI_NAMES:
        value = tree.read_optional(f"{DMI}/{name}")
        if value is not None:
            dmi[name] = value.strip()
    if dmi:
        features.attributes["system.dmiid"] = dmi
    return features


def parse_os_release(text: str) -> dict[str, str]:
    """os-release as NFD reads it: KEY=value lines, quotes trimmed, VERSION_ID split."""
    release: dict[str, str] = {}
    for line in text.split("\n"):
        line = line.removesuffix("\r")
        match = _LINE.match(line)
        if match:
            release[match.group(1)] = match.group(2).strip("\"'")

    version = _VERSION_ID.match(release.get("VERSION_ID", ""))
    if version:
        release["VERSION_ID.major"] = version.group(1)
        if version.group(3):
            release["VERSION_ID.minor"] = version.group(3)
    return release

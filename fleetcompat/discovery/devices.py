"""NFD's device sources: network (device, virtual), pci, usb and storage (block).

NFD's worker fails the whole discovery when one of these sysfs directories cannot be
listed. We do not abort: the source's features are left out (the feature is then
missing to rules, as it is on a worker whose source failed) and a note says why.
An absent directory counts the same as an unreadable one, because NFD's `ReadDir`
fails on both.
"""

from __future__ import annotations

from fleetcompat.features import Features
from fleetcompat.hosttree import HostTree, Unreadable

NET = "/sys/class/net"
PCI = "/sys/bus/pci/devices"
USB = "/sys/bus/usb/devices"
BLOCK = "/sys/block"

PCI_MANDATORY = ("class", "vendor", "device", "subsystem_vendor", "subsystem_device")
PCI_OPTIONAL = ("sriov_totalvfs", "iommu_group/type", "iommu/intel-iommu/version")
USB_FILES = {
    "class": "bDeviceClass",
    "vendor": "idVendor",
    "device": "idProduct",
    "serial": "serial",
}
BLOCK_QUEUE = ("dax", "rotational", "nr_zones", "zoned")
DEVICE_FILES = (
    "operstate",
    "speed",
    "device/sriov_numvfs",
    "device/sriov_totalvfs",
    "mtu",
)
VIRTUAL_FILES = ("operstate", "speed", "mtu")


def network(tree: HostTree, notes: list[str]) -> Features:
    """network.device (with a `device` link) and network.virtual instances."""
    features = Features()
    names = _entries(tree, NET, "network", notes)
    if names is None:
        return features

    devices, virtual = [], []
    for name in names:
        if name == "bonding_masters":
            continue
        base = f"{NET}/{name}"
        if tree.exists(f"{base}/device"):
            devices.append(_read_attrs(tree, base, name, DEVICE_FILES))
        else:
            virtual.append(_read_attrs(tree, base, name, VIRTUAL_FILES))
    features.instances["network.device"] = devices
    features.instances["network.virtual"] = virtual
    return features


def pci(tree: HostTree, notes: list[str]) -> Features:
    """pci.device: one instance per device that has every mandatory attribute."""
    features = Features()
    names = _entries(tree, PCI, "pci", notes)
    if names is None:
        return features

    instances = []
    for name in names:
        base = f"{PCI}/{name}"
        attrs: dict[str, str] = {}
        for attr in PCI_MANDATORY + PCI_OPTIONAL:
            value = tree.read_optional(f"{base}/{attr}")
            if value is None and attr in PCI_MANDATORY:
                break
            if value is not None:
                attrs[attr] = pci_value(attr, value)
        else:
            instances.append(attrs)
    features.instances["pci.device"] = instances
    return features


def pci_value(attr: str, raw: str) -> str:
    """A sysfs PCI attribute as NFD stores it: 0x stripped, class cut to 4 digits."""
    value = raw.removeprefix("0x").strip()
    return value[:4] if attr == "class" else value


def usb(tree: HostTree, notes: list[str]) -> Features:
    """usb.device: one instance per device, or per interface when its class is 00."""
    features = Features()
    try:
        names = tree.list_dir(USB) or []
    except Unreadable:
        names = []  # NFD globs; a directory it cannot list simply matches nothing

    instances: list[dict[str, str]] = []
    for name in names:
        base = f"{USB}/{name}"
        if not tree.exists(f"{base}/idProduct"):
            continue
        try:
            instances.extend(_usb_device(tree, base))
        except Unreadable:
            notes.append(f"usb: {base}: an interface class is unreadable; skipped")
    features.instances["usb.device"] = instances
    return features


def _usb_device(tree: HostTree, base: str) -> list[dict[str, str]]:
    """The instances of one USB device."""
    attrs = {}
    for attr, file in USB_FILES.items():
        value = (tree.read_optional(f"{base}/{file}") or "").strip()
        if value:
            attrs[attr] = value
    if attrs.get("class") != "00":
        return [attrs]

    instances = []
    for entry in tree.list_dir(base) or []:
        path = f"{base}/{entry}/bInterfaceClass"
        if not tree.exists(path):
            continue
        interface_class = tree.read_text(path) or ""
        instances.append(attrs | {"class": interface_class.strip()})
    return instances


def storage(tree: HostTree, notes: list[str]) -> Features:
    """storage.block: one instance per /sys/block entry with its queue attributes."""
    features = Features()
    names = _entries(tree, BLOCK, "storage", notes)
    if names is None:
        return features

    files = tuple(f"queue/{attr}" for attr in BLOCK_QUEUE)
    features.instances["storage.block"] = [
        _read_attrs(tree, f"{BLOCK}/{name}", name, files) for name in names
    ]
    return features


def _entries(
    tree: HostTree, path: str, source: str, notes: list[str]
) -> list[str] | None:
    """A device directory's entries; None (with a note) where NFD would fail."""
    try:
        names = tree.list_dir(path)
    except Unreadable as exc:
        notes.append(f"{source}: {path} cannot be listed ({exc.reason}); left out")
        return None
    if names is None:
        notes.append(f"{source}: {path} is absent; left out")
    return names


def _read_attrs(
    tree: HostTree, base: str, name: str, files: tuple[str, ...]
) -> dict[str, str]:
    """An instance: `name`, plus each readable file keyed by its base name."""
    attrs = {"name": name}
    for file in files:
        value = tree.read_optional(f"{base}/{file}")
        if value is not None:
            attrs[file.rsplit("/", 1)[-1]] = value.strip()
    return attrs

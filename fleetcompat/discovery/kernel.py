"""NFD's kernel source: version, config, loadedmodule, enabledmodule, selinux, kvm."""

from __future__ import annotations

import re

from fleetcompat.features import Features
from fleetcompat.hosttree import HostTree, Unreadable

OSRELEASE = "/proc/sys/kernel/osrelease"

_UNSAFE = re.compile(r"[^-A-Za-z0-9_.]")
_VERSION = re.compile(r"^([0-9]+)(\.([0-9]+))?(\.([0-9]+))?(-.*)?$")


def discover(tree: HostTree, notes: list[str]) -> Features:
    """The kernel.* features NFD's worker would report for this host."""
    features = Features()
    release = kernel_release(tree)

    if release is not None:
        features.attributes["kernel.version"] = parse_version(release)
    config = read_config(tree, release)
    if config is not None:
        features.attributes["kernel.config"] = config
    else:
        notes.append("kernel: no readable kernel config; kernel.config left out")

    loaded = loaded_modules(tree)
    if loaded is not None:
        features.flags["kernel.loadedmodule"] = set(loaded)
    builtin = builtin_modules(tree, release)
    if builtin is not None:
        features.flags["kernel.enabledmodule"] = set(loaded or []) | set(builtin)

    selinux = selinux_enabled(tree)
    if selinux is not None:
        features.attributes["kernel.selinux"] = {"enabled": str(selinux).lower()}
    features.attributes["kernel.kvm"] = {
        "enabled": str(tree.exists("/sys/devices/virtual/misc/kvm")).lower()
    }
    return features


def kernel_release(tree: HostTree) -> str | None:
    """The running kernel's release (uname -r), trimmed, or None when unreadable."""
    text = tree.read_optional(OSRELEASE)
    return None if text is None else text.strip()


def parse_version(release: str) -> dict[str, str]:
    """kernel.version: `full` made label-safe, and major/minor/revision if it parses."""
    full = _UNSAFE.sub("_", release).strip("-_.")
    version = {"full": full}
    match = _VERSION.match(full)
    if match:
        version["major"] = match.group(1)
        version["minor"] = match.group(3) or ""
        version["revision"] = match.group(5) or ""
    return version


def config_paths(release: str | None) -> list[str]:
    """Where NFD looks for the kernel config, in its order (first readable wins)."""
    if release is None:
        return ["/proc/config.gz", "/usr/src/linux/.config"]
    return [
        "/proc/config.gz",
        f"/usr/src/linux-{release}/.config",
        f"/usr/src/linux-rt-{release}/.config",
        "/usr/src/linux/.config",
        f"/usr/lib/modules/{release}/config",
        f"/usr/lib/ostree-boot/config-{release}",
        f"/usr/lib/kernel/config-{release}",
        f"/usr/src/linux-headers-{release}/.config",
        f"/lib/modules/{release}/build/.config",
        f"/usr/src/linux-rt-headers-{release}/.config",
        f"/boot/config-{release}",
    ]


def read_config(tree: HostTree, release: str | None) -> dict[str, str] | None:
    """kernel.config from the first readable config file, or None if there is none.

    A config.gz that decompresses past MAX_GZIP_TEXT_BYTES is passed over like an
    unreadable one; NFD would read it whole, however large.
    """
    for path in config_paths(release):
        try:
            if path.endswith(".gz"):
                text = tree.read_gzip_text(path)
            else:
                text = tree.read_text(path)
        except Unreadable:
            continue
        if text is not None:
            return parse_config(text)
    return None


def parse_config(text: str) -> dict[str, str]:
    """Every `CONFIG_X=value` line as X -> value with surrounding quotes removed."""
    config: dict[str, str] = {}
    for line in text.split("\n"):
        if not line.startswith("CONFIG_"):
            continue
        name, sep, value = line.partition("=")
        if sep:
            config[name[len("CONFIG_") :]] = value.strip('"')
    return config


def loaded_modules(tree: HostTree) -> list[str] | None:
    """The first field of every /proc/modules line, or None when unreadable."""
    text = tree.read_optional("/proc/modules")
    if text is None:
        return None
    return [line.split()[0] for line in text.split("\n") if line.strip()]


def builtin_modules(tree: HostTree, release: str | None) -> list[str] | None:
    """Module names from modules.builtin, or None when it cannot be read."""
    if release is None:
        return None
    text = tree.read_optional(f"/lib/modules/{release}/modules.builtin")
    if text is None:
        return None
    names = []
    for line in text.split("\n"):
        line = line.strip()
        if line.endswith(".ko"):
            names.append(line.rsplit("/", 1)[-1][: -len(".ko")])
    return names


def selinux_enabled(tree: HostTree) -> bool | None:
    """Whether SELinux enforces; None where NFD fails (no /sys/fs, unreadable)."""
    if not tree.exists("/sys/fs"):
        return None
    try:
        status = tree.read_text("/sys/fs/selinux/enforce")
    except Unreadable:
        return None
    return status is not None and status.startswith("1")

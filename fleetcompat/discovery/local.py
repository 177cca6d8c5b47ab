"""NFD's local source: feature files in features.d, with their directives."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from fleetcompat.features import Features
from fleetcompat.hosttree import HostTree, TooLarge, Unreadable

FEATURES_DIR = "/etc/kubernetes/node-feature-discovery/features.d"
MAX_FILE_BYTES = 65536
DIRECTIVE = "# +"

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)


def discover(tree: HostTree, notes: list[str], now: datetime | None = None) -> Features:
    """local.feature and local.label from every feature file, files in name order."""
    now = now or datetime.now(UTC)
    features: dict[str, str] = {}
    labels: dict[str, str] = {}
    try:
        names = tree.list_dir(FEATURES_DIR) or []
    except Unreadable as exc:
        notes.append(f"local: {FEATURES_DIR} cannot be listed ({exc.reason})")
        names = []

    for name in names:
        if name.startswith("."):
            continue
        path = f"{FEATURES_DIR}/{name}"
        if tree.is_dir(path):
            continue
        try:
            text = tree.read_text(path, limit=MAX_FILE_BYTES)
        except TooLarge:
            notes.append(f"local: {path} is larger than 64 KiB; skipped, as NFD does")
            continue
        except Unreadable as exc:
            notes.append(f"local: {path}: {exc.reason}; skipped")
            continue
        if text is None:
            continue
        file_features, file_labels = parse_feature_file(text, now)
        features.update(file_features)
        labels.update(file_labels)

    return Features(attributes={"local.feature": features, "local.label": labels})


def parse_feature_file(
    text: str, now: datetime
) -> tuple[dict[str, str], dict[str, str]]:
    """The features and labels one file sets at time `now`, directives applied."""
    features: dict[str, str] = {}
    labels: dict[str, str] = {}
    expiry = now
    skip_label = skip_feature = False

    for raw in text.split("\n"):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            expiry, skip_label, skip_feature = _directive(
                line, expiry, skip_label, skip_feature
            )
            continue
        if expiry < now:
            continue
        key, sep, value = line.partition("=")
        value = value if sep else "true"
        if skip_feature:
            features.pop(key, None)
        else:
            features[key] = value
        if skip_label:
            labels.pop(key, None)
        else:
            labels[key] = value
        skip_label = skip_feature = False
    return features, labels


def _directive(
    line: str, expiry: datetime, skip_label: bool, skip_feature: bool
) -> tuple[datetime, bool, bool]:
    """Apply one comment line; unknown or malformed directives change nothing."""
    if not line.startswith(DIRECTIVE):
        return expiry, skip_label, skip_feature
    key, sep, value = line[len(DIRECTIVE) :].partition("=")
    if key == "expiry-time" and sep:
        parsed = parse_rfc3339(value.strip())
        if parsed is not None:
            expiry = parsed
    elif key == "no-feature":
        skip_feature = True
    elif key == "no-label":
        skip_label = True
    return expiry, skip_label, skip_feature


def parse_rfc3339(text: str) -> datetime | None:
    """A time in Go's RFC 3339 layout, or None when it does not parse."""
    if not _RFC3339.match(text):
        return None
    try:
        return datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        return None

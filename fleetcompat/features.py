"""NFD's feature model: flag, attribute and instance feature sets of one host.

The shape is NFD's `Features` (api/nfd/v1alpha1/types.go): feature names are
`<source>.<feature>`, every value is a string, and one name may hold several kinds at
once (`cpu.cpuid` has flags and, on x86, attributes). A feature present with no
elements is different from an absent one, and both round-trip.

This module also reads the files NFD users have: a NodeFeature object, a `kind: List`
of them (as `kubectl get nodefeatures -A -o yaml` prints), a bare features object, and
`nfd export features` output (which is a bare features object).
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetcompat.documents import load_source
from fleetcompat.errors import FeaturesError, InputError

NODEFEATURE_API = "nfd.k8s-sigs.io/v1alpha1"
NODE_NAME_LABEL = "nfd.node.kubernetes.io/node-name"


@dataclass
class Features:
    """The features of one host, as NFD's worker reports them.

    Treat an instance as a value once built: the store and the evaluator share
    instances between hosts whose features are equal.
    """

    flags: dict[str, set[str]] = field(default_factory=dict)
    attributes: dict[str, dict[str, str]] = field(default_factory=dict)
    instances: dict[str, list[dict[str, str]]] = field(default_factory=dict)

    def names(self) -> set[str]:
        """Every feature name present, of any kind."""
        return set(self.flags) | set(self.attributes) | set(self.instances)

    def merge(self, other: Features) -> None:
        """Add `other`'s features to these; `other` wins on conflicting values."""
        for name, flags in other.flags.items():
            self.flags.setdefault(name, set()).update(flags)
        for name, attrs in other.attributes.items():
            self.attributes.setdefault(name, {}).update(attrs)
        for name, instances in other.instances.items():
            self.instances.setdefault(name, []).extend(dict(i) for i in instances)

    def copy(self) -> Features:
        """A deep copy that can be changed without touching this one."""
        return Features(
            flags={k: set(v) for k, v in self.flags.items()},
            attributes={k: dict(v) for k, v in self.attributes.items()},
            instances={k: [dict(i) for i in v] for k, v in self.instances.items()},
        )

    def to_nfd(self) -> dict[str, Any]:
        """NFD's JSON shape, as `nfd export features` prints it (keys sorted)."""
        return {
            "flags": {
                name: {"elements": {element: {} for element in sorted(elements)}}
                for name, elements in sorted(self.flags.items())
            },
            "attributes": {
                name: {"elements": dict(sorted(elements.items()))}
                for name, elements in sorted(self.attributes.items())
            },
            "instances": {
                name: {
                    "elements": [
                        {"attributes": dict(sorted(instance.items()))}
                        for instance in instances
                    ]
                }
                for name, instances in sorted(self.instances.items())
            },
        }

    def canonical_json(self) -> bytes:
        """A byte form equal exactly for equal feature sets.

        Instance order is kept: NFD's templates see instances in discovery order
        (which is stable per machine), so two hosts listing the same devices in
        another order may get other results and must not share one.
        """
        return json.dumps(self.to_nfd(), sort_keys=True, separators=(",", ":")).encode()

    def digest(self) -> str:
        """The sha256 of the canonical form, in hex: the feature set's identity."""
        return hashlib.sha256(self.canonical_json()).hexdigest()

    @classmethod
    def from_nfd(cls, data: Any, source: str = "features") -> Features:
        """Build from NFD's JSON shape; raises FeaturesError naming the bad spot."""
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise FeaturesError(f"{source}: features must be a mapping")

        features = cls()
        for name, fset in _sets(data, "flags", source):
            elements = _elements(fset, f"{source}: flags.{name}", dict)
            features.flags[name] = set(elements)
        for name, fset in _sets(data, "attributes", source):
            where = f"{source}: attributes.{name}"
            elements = _elements(fset, where, dict)
            features.attributes[name] = {
                str(k): _string(v, f"{where}.{k}") for k, v in elements.items()
            }
        for name, fset in _sets(data, "instances", source):
            where = f"{source}: instances.{name}"
            items = _elements(fset, where, list)
            features.instances[name] = [
                _instance(item, f"{where}[{i}]") for i, item in enumerate(items)
            ]
        return features


@dataclass(frozen=True)
class NodeFeatures:
    """Features read from a file, with the node name the file gives, if any."""

    node: str | None
    features: Features
    labels: dict[str, str] = field(default_factory=dict)


def load_features(
    src: str | Path | dict[str, Any], node: str | None = None
) -> Features:
    """Read one host's features from a path, a YAML/JSON string, or parsed data.

    Accepts a NodeFeature, a `kind: List` of NodeFeatures (pick one with `node`; a
    list of one needs no name), a bare features object, or `nfd export features`
    output. Raises FeaturesError (an InputError) when the input is none of these.
    """
    return read_node_features(src, node).features


def read_node_features(
    src: str | Path | dict[str, Any], node: str | None = None
) -> NodeFeatures:
    """Like `load_features`, keeping the node name and labels the file gives."""
    name = str(src) if isinstance(src, str | Path) and "\n" not in str(src) else None
    source = name or "features"
    if name and _is_probe_file(name):
        raise FeaturesError(
            f"{name}: this is probe output, not features: `fleetcompat import` "
            "stores it, `fleetcompat discover --root` turns it into features"
        )
    try:
        data = load_source(src, "features", stream_as_list=True)
    except FeaturesError:
        raise
    except InputError as exc:
        raise FeaturesError(str(exc)) from None

    nodes = iter_node_features(data, source)
    if node is not None:
        chosen = [n for n in nodes if n.node == node]
        if not chosen:
            names = ", ".join(sorted(str(n.node) for n in nodes)) or "none"
            raise FeaturesError(f"{source}: no node named {node!r} (has: {names})")
        return chosen[0]
    if len(nodes) != 1:
        names = ", ".join(sorted(str(n.node) for n in nodes))
        raise FeaturesError(
            f"{source}: holds {len(nodes)} nodes ({names}); choose one with --node"
        )
    return nodes[0]


def _is_probe_file(path: str) -> bool:
    """Whether a file holds probe output (plain or gzipped)."""
    from fleetcompat.probe import is_probe_output

    try:
        with open(path, "rb") as stream:
            head = stream.read(4096)
        if head[:2] == b"\x1f\x8b":
            head = zlib.decompressobj(wbits=31).decompress(head, 64)
    except (OSError, zlib.error):
        return False
    return is_probe_output(head)


def iter_node_features(data: Any, source: str) -> list[NodeFeatures]:
    """Every node's features in a parsed document, whatever of the shapes it is."""
    if not isinstance(data, dict):
        raise FeaturesError(f"{source}: expected a mapping, found {_kind(data)}")

    kind = data.get("kind")
    if kind == "List" or kind == "NodeFeatureList":
        items = data.get("items") or []
        if not isinstance(items, list):
            raise FeaturesError(f"{source}: items must be a list")
        found = []
        for i, item in enumerate(items):
            if isinstance(item, dict) and item.get("kind") not in (None, "NodeFeature"):
                continue  # a List may mix kinds; only NodeFeatures hold features
            found.append(_node_feature(item, f"{source}: items[{i}]"))
        return found
    if kind == "NodeFeature":
        return [_node_feature(data, source)]
    if kind is not None:
        raise FeaturesError(
            f"{source}: kind {kind!r} holds no features "
            "(expected NodeFeature, List, or a bare features object)"
        )
    if data and not set(data) <= {"flags", "attributes", "instances"}:
        unknown = ", ".join(sorted(set(data) - {"flags", "attributes", "instances"}))
        raise FeaturesError(
            f"{source}: not a features object (unexpected keys: {unknown})"
        )
    return [NodeFeatures(None, Features.from_nfd(data, source))]


def _node_feature(item: Any, source: str) -> NodeFeatures:
    """One NodeFeature object: its node name, features and labels."""
    if not isinstance(item, dict):
        raise FeaturesError(f"{source}: expected a NodeFeature mapping")
    metadata = item.get("metadata") or {}
    spec = item.get("spec") or {}
    if not isinstance(metadata, dict) or not isinstance(spec, dict):
        raise FeaturesError(f"{source}: metadata and spec must be mappings")
    labels = metadata.get("labels") or {}
    node = (labels.get(NODE_NAME_LABEL) if isinstance(labels, dict) else None) or (
        metadata.get("name")
    )
    spec_labels = spec.get("labels") or {}
    if not isinstance(spec_labels, dict):
        raise FeaturesError(f"{source}: spec.labels must be a mapping")
    features = Features.from_nfd(spec.get("features"), f"{source}: spec.features")
    return NodeFeatures(
        str(node) if node is not None else None,
        features,
        {str(k): str(v) for k, v in spec_labels.items()},
    )


def _sets(data: dict[str, Any], kind: str, source: str) -> list[tuple[str, Any]]:
    """The (name, feature set) pairs of one kind, checked to be a mapping."""
    sets = data.get(kind)
    if sets is None:
        return []
    if not isinstance(sets, dict):
        raise FeaturesError(f"{source}: {kind} must be a mapping")
    return [(str(name), fset) for name, fset in sets.items()]


def _elements(fset: Any, where: str, kind: type) -> Any:
    """A feature set's `elements`, which Go reads as nil when null or missing."""
    if fset is None:
        return kind()
    if not isinstance(fset, dict):
        raise FeaturesError(f"{where}: expected a mapping with 'elements'")
    elements = fset.get("elements")
    if elements is None:
        return kind()
    if not isinstance(elements, kind):
        raise FeaturesError(f"{where}.elements: expected a {kind.__name__}")
    return elements


def _instance(item: Any, where: str) -> dict[str, str]:
    """One instance's attributes."""
    if not isinstance(item, dict):
        raise FeaturesError(f"{where}: expected a mapping with 'attributes'")
    attrs = item.get("attributes") or {}
    if not isinstance(attrs, dict):
        raise FeaturesError(f"{where}.attributes: expected a mapping")
    return {str(k): _string(v, f"{where}.{k}") for k, v in attrs.items()}


def _string(value: Any, where: str) -> str:
    """A feature value: NFD's are strings; Go would refuse anything else."""
    if not isinstance(value, str):
        raise FeaturesError(f"{where}: value must be a string, found {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    """A short name for a parsed value's type, for messages."""
    if value is None:
        return "null"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )

"""NFD's feature model: the file shapes NFD users have, and canonical identity."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetcompat.errors import FeaturesError
from fleetcompat.features import Features, load_features, read_node_features

NODEFEATURE = """
apiVersion: nfd.k8s-sigs.io/v1alpha1
kind: NodeFeature
metadata:
  name: nfd-worker-abc
  labels:
    nfd.node.kubernetes.io/node-name: node-1
spec:
  features:
    flags:
      cpu.cpuid:
        elements: {AVX: {}, AVX2: {}}
    attributes:
      cpu.cstate:
        elements: {}
      kernel.version:
        elements: {full: "6.1.0", major: "6"}
    instances:
      pci.device:
        elements:
          - attributes: {class: "0200", vendor: "8086"}
  labels:
    cpu-cpuid.AVX: "true"
"""


def test_nodefeature_is_read_with_node_name_from_label() -> None:
    node = read_node_features(NODEFEATURE)

    assert node.node == "node-1"
    assert node.features.flags == {"cpu.cpuid": {"AVX", "AVX2"}}
    assert node.features.attributes["kernel.version"]["full"] == "6.1.0"
    assert node.features.instances["pci.device"] == [
        {"class": "0200", "vendor": "8086"}
    ]
    assert node.labels == {"cpu-cpuid.AVX": "true"}


def test_empty_feature_is_kept_distinct_from_absent() -> None:
    features = load_features(NODEFEATURE)

    assert features.attributes["cpu.cstate"] == {}
    assert "cpu.pstate" not in features.attributes
    assert features.to_nfd()["attributes"]["cpu.cstate"] == {"elements": {}}


def test_list_needs_node_choice_when_it_holds_several() -> None:
    doc = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {"kind": "NodeFeature", "metadata": {"name": "a"}, "spec": {}},
            {"kind": "NodeFeature", "metadata": {"name": "b"}, "spec": {}},
        ],
    }

    with pytest.raises(FeaturesError, match="holds 2 nodes"):
        load_features(doc)
    assert load_features(doc, node="b") == Features()
    with pytest.raises(FeaturesError, match="no node named 'c'"):
        load_features(doc, node="c")


def test_bare_features_round_trip_through_nfd_shape() -> None:
    features = load_features(NODEFEATURE)

    again = Features.from_nfd(features.to_nfd())

    assert again == features


def test_digest_keeps_instance_order_which_templates_see() -> None:
    a = Features(instances={"pci.device": [{"v": "1"}, {"v": "2"}]})
    b = Features(instances={"pci.device": [{"v": "2"}, {"v": "1"}]})

    assert a.digest() != b.digest()
    assert a.digest() == Features.from_nfd(a.to_nfd()).digest()
    assert a.digest() != Features(instances={"pci.device": [{"v": "1"}]}).digest()


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        pytest.param(
            {"attributes": {"kernel.version": {"elements": {"major": 6}}}},
            "attributes.kernel.version.major: value must be a string",
            id="number-value",
        ),
        pytest.param(
            {"flags": {"cpu.cpuid": {"elements": ["AVX"]}}},
            "flags.cpu.cpuid.elements: expected a dict",
            id="flags-as-list",
        ),
        pytest.param(
            {"kind": "NodeFeatureRule", "spec": {}},
            "kind 'NodeFeatureRule' holds no features",
            id="wrong-kind",
        ),
        pytest.param({"nodes": []}, "unexpected keys: nodes", id="unknown-shape"),
    ],
)
def test_malformed_features_name_the_spot(doc: dict[str, object], message: str) -> None:
    with pytest.raises(FeaturesError, match=message):
        load_features(doc)


def test_nfd_example_nodefeature_loads(corpus: Path) -> None:
    path = corpus / "nfd-objects" / "examples" / "nodefeature.yaml"

    node = read_node_features(path)

    assert node.node == "example-node"
    assert node.features.attributes["kernel.version"] == {
        "full": "6.3.13-linuxkit",
        "major": "6",
        "minor": "3",
        "revision": "13",
    }
    assert node.features.attributes["cpu.cstate"] == {}


def test_probe_output_handed_as_features_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "host.probe"
    path.write_bytes(b"#fleetcompat-probe v1\nF 3 /x\nabc\n#end 0\n")

    with pytest.raises(FeaturesError, match="this is probe output, not features"):
        load_features(str(path))

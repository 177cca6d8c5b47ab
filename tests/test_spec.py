"""Reading specs as NFD does, untrusted YAML, and the feature projection."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetcompat import FleetcompatError, SpecError, load_features, load_spec
from fleetcompat.features import Features
from fleetcompat.goyaml import go_float32, go_yaml_scalar
from fleetcompat.spec import Spec, parse_spec, project_features
from fleetcompat.validate import to_nfd, validate

DATA = Path(__file__).parent / "data" / "rules"


def one_term(expressions: str) -> str:
    return f"""
compatibilities:
- rules:
  - name: r
    matchFeatures:
    - feature: a.b
      matchExpressions:
        {expressions}
"""


def expression(spec: Spec) -> Any:
    term = spec.compatibilities[0].rules[0].match_features[0]
    assert term.match_expressions is not None
    return term.match_expressions[0][1]


def test_example_spec_from_nfd_loads(corpus: Path) -> None:
    spec = load_spec(corpus / "nfd-objects/examples/image-compatibility.yaml")

    assert spec.version == "v1alpha1"
    assert [r.name for r in spec.rules()] == ["kernel and cpu", "one of available nics"]
    assert spec.feature_references()["cpu.cpuid"] is None


def test_node_feature_group_is_a_rule_source(corpus: Path) -> None:
    spec = load_spec(corpus / "nfd-objects/examples/nodefeaturegroup.yaml")
    host = load_features(corpus / "nfd-objects/examples/nodefeature.yaml")

    results = validate(spec, host)

    assert results[0].description == "NodeFeatureGroup node-feature-group-example"
    assert results[0].rules[0].is_match is True


def test_sample_node_feature_rules_run_on_the_example_node(corpus: Path) -> None:
    host = load_features(corpus / "nfd-objects/examples/nodefeature.yaml")
    samples = sorted(
        (corpus / "nfd-objects/deployment/nodefeaturerule/samples").glob("*.yaml")
    )

    verdicts = {
        path.name: validate(load_spec(path), host)[0].is_match for path in samples
    }

    assert len(verdicts) == 10


@pytest.mark.parametrize(
    ("written", "value"),
    [
        ("[1.0]", ("1",)),
        ("[2.50]", ("2.5",)),
        ("[y, off]", ("true", "false")),
        ("[0x10, 012, 0o17, 0b11]", ("16", "10", "15", "3")),
        ("[1e3, 1_000]", ("1000", "1000")),
        ("[1:20]", ("1:20",)),
        ("[5.15.0-91-generic]", ("5.15.0-91-generic",)),
        ("[2024-1-2]", ("2024-01-02T00:00:00Z",)),
        ('["1.0", "y"]', ("1.0", "y")),
        ("[1234567.0]", ("1.234567e+06",)),
        ("null", ()),
    ],
)
def test_yaml_scalars_become_strings_as_go_prints_them(
    written: str, value: tuple[str, ...]
) -> None:
    spec = load_spec(one_term(f"x: {{op: In, value: {written}}}"))

    assert expression(spec).value == value


def test_unknown_fields_ignored_and_names_match_any_case() -> None:
    spec = load_spec(one_term("x: {Op: Gt, VALUE: ['1'], extra: 1}"))

    assert (expression(spec).op, expression(spec).value) == ("Gt", ("1",))


def test_null_op_is_the_match_any_op() -> None:
    assert expression(load_spec(one_term("x: {op: null}"))).op == ""


def test_absent_and_empty_expression_sets_differ() -> None:
    absent = load_spec(
        "compatibilities:\n- rules:\n  - matchFeatures:\n    - feature: a.b\n"
    )
    empty = load_spec(
        one_term("{}").replace("matchExpressions:\n        {}", "matchExpressions: {}")
    )

    assert absent.rules()[0].match_features[0].match_expressions is None
    assert empty.rules()[0].match_features[0].match_expressions == ()


def test_expression_order_is_the_specs() -> None:
    spec = load_spec(one_term("z: {op: Exists}\n        a: {op: Exists}"))
    term = spec.rules()[0].match_features[0]

    assert term.match_expressions is not None
    assert [name for name, _ in term.match_expressions] == ["z", "a"]


def test_json_spec_and_parsed_dict_are_accepted() -> None:
    text = '{"compatibilities": [{"weight": 90.0, "rules": [{"name": "r"}]}]}'

    from_text = load_spec(text)
    from_dict = load_spec(
        {"compatibilities": [{"weight": 90, "rules": [{"name": "r"}]}]}
    )

    assert from_text == from_dict
    assert from_text.compatibilities[0].weight == 90


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            "compatibilities:\n- rules:\n  - {}\n  - matchFeatures:\n    - feature: a\n"
            "      matchExpressions:\n        AVX512F: {op: In, value: x}\n",
            "compatibilities[0].rules[1].matchFeatures[0].matchExpressions.AVX512F.value:"
            " expected a list",
        ),
        ("compatibilities: {}\n", "compatibilities: expected a list"),
        (
            "compatibilities:\n- weight: '5'\n",
            "compatibilities[0].weight: expected an integer",
        ),
        (
            "compatibilities:\n- weight: 1.5\n",
            "compatibilities[0].weight: expected an integer",
        ),
        ("compatibilities:\n- tag: [a]\n", "compatibilities[0].tag: expected a string"),
        (
            "compatibilities:\n- rules:\n  - vars: [a]\n",
            "rules[0].vars: expected a mapping",
        ),
        (
            "compatibilities:\n- rules:\n  - matchFeatures:\n    - matchExpressions:\n"
            "        x: null\n",
            "matchExpressions.x: expected an expression, found null",
        ),
        (
            "compatibilities:\n- rules:\n  - matchAny:\n    - matchFeatures:\n"
            "      - matchName: [Exists]\n",
            "matchAny[0].matchFeatures[0].matchName: expected a mapping",
        ),
        ("- a\n- b\n", "expected a mapping, found a list"),
        ("compatibilities: [\n", "line"),
    ],
)
def test_malformed_specs_give_one_line_naming_the_spot(
    document: str, message: str, tmp_path: Path
) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(document)

    with pytest.raises(SpecError) as caught:
        load_spec(path)

    text = str(caught.value)
    assert text.startswith(f"{path}: ")
    assert message in text
    assert "\n" not in text


def test_empty_document_is_an_empty_spec(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("")

    assert load_spec(path) == Spec()


def test_yaml_alias_bomb_is_refused() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for level in range(1, 9):
        prev = chr(ord("a") + level - 1)
        name = chr(ord("a") + level)
        bomb += f"{name}: &{name} [{', '.join(['*' + prev] * 10)}]\n"
    bomb += "compatibilities: []\n"

    with pytest.raises(SpecError, match="alias bomb"):
        load_spec(bomb)


def test_oversized_document_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"# " + b"x" * (16 * 1024 * 1024) + b"\n")

    with pytest.raises(SpecError, match="bytes, more than"):
        load_spec(path)


def test_spec_error_is_a_fleetcompat_error() -> None:
    assert issubclass(SpecError, FleetcompatError)


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.1, "0.1"), (1e-5, "1e-05"), (-0.0, "-0"), (1e39, "+Inf"), (123456.0, "123456")],
)
def test_floats_print_as_go_float32(value: float, text: str) -> None:
    assert go_float32(value) == text


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("n", False),
        ("NULL", None),
        ("08", 8.0),
        ("1.2.3", "1.2.3"),
        (".inf", float("inf")),
    ],
)
def test_plain_scalars_resolve_as_go_yaml_v2(text: str, value: Any) -> None:
    assert go_yaml_scalar(text) == value


# The projection property: evaluating on the projected features gives the same
# verdict and the same per-expression results as on the full features.


def _specs(corpus_dir: Path | None) -> list[Spec]:
    documents: list[Any] = []
    validator = yaml.safe_load((DATA / "nfd_node_validator.yaml").read_text())
    documents += [case["spec"] for case in validator["cases"]]
    rules = yaml.safe_load((DATA / "nfd_rules.yaml").read_text())
    for case in rules["steps"] + rules["templating"]:
        documents.append({"compatibilities": [{"rules": [case["rule"]]}]})
    specs = [parse_spec(d) for d in documents]
    specs += [_mixed_spec()]
    if corpus_dir is not None:
        objects = corpus_dir / "nfd-objects"
        specs.append(load_spec(objects / "examples/image-compatibility.yaml"))
        specs += [
            load_spec(p)
            for p in sorted(objects.glob("deployment/nodefeaturerule/samples/*.yaml"))
        ]
    return specs


def _mixed_spec() -> Spec:
    """Every op, back-references, matchAny and matchName over a small vocabulary."""
    return load_spec(
        """
compatibilities:
- rules:
  - name: ops
    vars: {seen: "yes"}
    matchFeatures:
    - feature: dom.multi
      matchExpressions:
        e1: {op: Exists}
        e2: {op: DoesNotExist}
        e3: {op: In, value: ["1", "true"]}
        e4: {op: NotIn, value: ["2"]}
        e5: {op: InRegexp, value: ["^1"]}
        e6: {op: Gt, value: ["0"]}
        e7: {op: GeLe, value: ["1", "3"]}
        e8: {op: IsTrue}
        e9: {op: Ge, value: ["1.0"], type: version}
    - feature: dom.multi
      matchExpressions: {e1: {op: Exists}}
  - name: back reference
    matchAny:
    - matchFeatures:
      - feature: rule.matched
        matchExpressions: {seen: {op: In, value: ["yes"]}}
    - matchFeatures:
      - feature: DOM.Other
        matchExpressions: {e1: {op: ""}, e2: {op: NotIn, value: ["x"]}}
      - feature: dom.named
        matchName: {op: InRegexp, value: ["^e"]}
- tag: second
  rules:
  - name: template reads what no expression names
    varsTemplate: |
      {{range .dom.inst}}v{{index . "noise"}}=1
      {{end}}
    matchFeatures:
    - feature: dom.inst
      matchExpressions: {e1: {op: Exists}}
  - name: uses the template's output
    matchFeatures:
    - feature: rule.matched
      matchName: {op: InRegexp, value: ["^v."]}
  - name: empty set
    matchFeatures:
    - feature: dom.other
      matchExpressions: {}
"""
    )


VALUES = ["1", "2", "3", "true", "false", "x", "1.0", "2.5.1", "0", "-1", "yes", "10"]


def _random_features(rng: random.Random, spec: Spec) -> Features:
    """Random hosts over the spec's vocabulary, plus noise the spec does not read."""
    host = Features()
    for name, elements in spec.feature_references().items():
        vocabulary = sorted(elements or ()) + ["noise", "e1", "e2"]
        for feature in (name, name.upper()):
            if rng.random() < 0.3:
                host.flags[feature] = {e for e in vocabulary if rng.random() < 0.5}
            if rng.random() < 0.4:
                host.attributes[feature] = {
                    e: rng.choice(VALUES) for e in vocabulary if rng.random() < 0.5
                }
            if rng.random() < 0.3:
                host.instances[feature] = [
                    {e: rng.choice(VALUES) for e in vocabulary if rng.random() < 0.6}
                    for _ in range(rng.randrange(4))
                ]
    host.flags["unrelated.feature"] = {"a"}
    return host


def _outcome(spec: Spec, host: Features) -> Any:
    try:
        return to_nfd(validate(spec, host))
    except FleetcompatError as exc:
        return ("error", str(exc))


def _has_templates(spec: Spec) -> bool:
    """Whether a rule renders a template: evaluate then keeps duplicate instances."""
    return any(rule.vars_template or rule.labels_template for rule in spec.rules())


def _dedup_allowed(specs: list[Spec], dedup: bool) -> list[Spec]:
    """The specs evaluate would project with `dedup` (on only without templates)."""
    return [spec for spec in specs if not (dedup and _has_templates(spec))]


def _check_projection(specs: list[Spec], rounds: int, dedup: bool) -> int:
    rng = random.Random(20261203)
    checked = 0
    for spec in _dedup_allowed(specs, dedup):
        references = spec.feature_references()
        for _ in range(rounds):
            host = _random_features(rng, spec)

            full = _outcome(spec, host)
            cut = project_features(host, references, dedup=dedup)

            assert _outcome(spec, cut) == full
            checked += 1
    return checked


DEDUP = pytest.mark.parametrize("dedup", [False, True], ids=["kept", "dedup"])


@DEDUP
def test_projected_features_give_the_same_results(dedup: bool) -> None:
    specs = _specs(None)

    checked = _check_projection(specs, 40, dedup)

    assert checked == 40 * len(_dedup_allowed(specs, dedup)) >= 40 * 40


@DEDUP
def test_projection_is_exact_for_nfd_sample_rules(corpus: Path, dedup: bool) -> None:
    specs = _specs(corpus)[-11:]
    host = load_features(corpus / "nfd-objects/examples/nodefeature.yaml")

    checked = _check_projection(specs, 40, dedup)

    assert checked == 40 * len(_dedup_allowed(specs, dedup)) > 0
    for spec in _dedup_allowed(specs, dedup):
        projected = project_features(host, spec.feature_references(), dedup=dedup)
        assert _outcome(spec, projected) == _outcome(spec, host)


def test_projection_keeps_kinds_present_and_drops_the_rest() -> None:
    host = Features(
        flags={"a.b": {"x", "y"}, "c.d": {"z"}},
        attributes={"a.b": {"k": "v"}},
        instances={"a.b": [{"x": "1", "q": "2"}, {"q": "3"}]},
    )

    projected = project_features(host, {"a.b": frozenset({"x"})}, dedup=False)

    assert projected.flags == {"a.b": {"x"}}
    assert projected.attributes == {"a.b": {}}
    assert projected.instances == {"a.b": [{"x": "1"}, {}]}


def test_projection_keeps_instance_order_unless_dedup() -> None:
    host = Features(
        instances={"a.b": [{"x": "2", "q": "1"}, {"x": "1"}, {"x": "2", "q": "2"}]}
    )
    references = {"a.b": frozenset({"x"})}

    kept = project_features(host, references, dedup=False)
    deduplicated = project_features(host, references, dedup=True)

    assert kept.instances == {"a.b": [{"x": "2"}, {"x": "1"}, {"x": "2"}]}
    assert deduplicated.instances == {"a.b": [{"x": "1"}, {"x": "2"}]}


def test_projection_of_a_template_read_feature_keeps_every_instance_in_order() -> None:
    host = Features(instances={"a.b": [{"x": "2"}, {"x": "1"}, {"x": "2"}]})

    projected = project_features(host, {"a.b": None}, dedup=False)

    assert projected.instances == host.instances


def test_a_list_of_rule_objects_gives_a_set_per_object() -> None:
    listing = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "kind": "NodeFeatureRule",
                "metadata": {"name": "one"},
                "spec": {"rules": [{"name": "a"}]},
            },
            {
                "kind": "NodeFeatureGroup",
                "metadata": {"name": "two"},
                "spec": {"featureGroupRules": [{"name": "b"}]},
            },
        ],
    }

    spec = load_spec(listing)

    assert [c.description for c in spec.compatibilities] == [
        "NodeFeatureRule one",
        "NodeFeatureGroup two",
    ]
    assert [r.name for r in spec.rules()] == ["a", "b"]


def test_a_list_of_other_kinds_is_refused() -> None:
    with pytest.raises(SpecError, match=r"items\[0\]: expected a NodeFeatureRule"):
        load_spec({"kind": "List", "items": [{"kind": "Pod"}]})


def test_stream_of_rule_objects_gives_a_set_per_object() -> None:
    from fleetcompat.spec import load_spec

    text = (
        "apiVersion: nfd.k8s-sigs.io/v1alpha1\nkind: NodeFeatureRule\n"
        "metadata: {name: one}\nspec:\n  rules:\n  - name: a\n"
        "    matchFeatures: [{feature: cpu.cpuid}]\n"
        "---\n"
        "apiVersion: nfd.k8s-sigs.io/v1alpha1\nkind: NodeFeatureGroup\n"
        "metadata: {name: two}\nspec:\n  featureGroupRules:\n  - name: b\n"
        "    matchFeatures: [{feature: kernel.version}]\n"
    )

    spec = load_spec(text)

    assert [c.description for c in spec.compatibilities] == [
        "NodeFeatureRule one",
        "NodeFeatureGroup two",
    ]

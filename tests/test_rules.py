"""NFD's rule execution: its rule and group-rule tables, templates, and quirks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetcompat.errors import RuleError
from fleetcompat.features import Features
from fleetcompat.rules.engine import execute_rule
from fleetcompat.rules.template import compile_template
from fleetcompat.spec import GroupRule, parse_spec

DATA = yaml.safe_load((Path(__file__).parent / "data/rules/nfd_rules.yaml").read_text())
STATIC = {"static": "true", "empty": ""}


def features(shape: dict[str, Any]) -> Features:
    """A feature set from the test tables' compact shape (flags as lists)."""
    return Features(
        flags={k: set(v) for k, v in (shape.get("flags") or {}).items()},
        attributes={k: dict(v) for k, v in (shape.get("attributes") or {}).items()},
        instances={
            k: [dict(i) for i in v] for k, v in (shape.get("instances") or {}).items()
        },
    )


def rule(data: dict[str, Any], kind: str = "rule") -> GroupRule:
    """A rule parsed as NFD would read it from a NodeFeatureRule or NodeFeatureGroup."""
    if kind == "rule":
        obj = {"kind": "NodeFeatureRule", "spec": {"rules": [data]}}
    else:
        obj = {"kind": "NodeFeatureGroup", "spec": {"featureGroupRules": [data]}}
    return parse_spec(obj).compatibilities[0].rules[0]


def _ids(case: dict[str, Any]) -> str:
    return str(case["id"])


@pytest.mark.parametrize("fail_fast", [True, False], ids=["failfast", "full"])
@pytest.mark.parametrize("case", DATA["steps"], ids=_ids)
def test_nfd_rule_steps_give_labels(case: dict[str, Any], fail_fast: bool) -> None:
    host = features(DATA["features"][case["features"]])
    labelled = rule({**case["rule"], "labels": STATIC})

    output = execute_rule(labelled, host, fail_fast=fail_fast)

    expected = STATIC if case["out"] == "static" else None
    assert output.status.is_match is (expected is not None)
    if fail_fast or expected is not None:
        assert output.labels == expected


@pytest.mark.parametrize("case", DATA["steps"], ids=_ids)
def test_nfd_group_rule_steps_give_vars(case: dict[str, Any]) -> None:
    host = features(DATA["features"][case["features"]])
    group = rule({**case["rule"], "vars": STATIC}, "group")

    output = execute_rule(group, host, fail_fast=True)

    assert output.vars == (STATIC if case["out"] == "static" else None)


@pytest.mark.parametrize("case", DATA["templating"], ids=_ids)
def test_nfd_templating(case: dict[str, Any]) -> None:
    host = features(DATA["features"][case["features"]])
    parsed = rule(case["rule"], case["kind"])

    if case.get("error"):
        with pytest.raises(RuleError):
            execute_rule(parsed, host, fail_fast=True)
        return
    output = execute_rule(parsed, host, fail_fast=True)

    if "labels" in case:
        assert output.labels == case["labels"]
    if "vars" in case:
        assert output.vars == case["vars"]


def test_group_rule_ignores_labels() -> None:
    group = rule({"labels": {"a": "b"}, "labelsTemplate": "{{"}, "group")

    output = execute_rule(group, Features(), fail_fast=True)

    assert output.status.is_match
    assert output.labels == {}


def test_missing_feature_is_false_never_an_error() -> None:
    broken = rule(
        {
            "matchFeatures": [
                {"feature": "no.such", "matchExpressions": {"x": {"op": "Bogus"}}}
            ]
        }
    )

    output = execute_rule(broken, Features(), fail_fast=False)

    assert output.status.is_match is False


def test_feature_names_are_lower_cased_for_lookup() -> None:
    host = Features(flags={"cpu.cpuid": {"AVX"}, "UPPER.case": {"X"}})
    upper_term = rule(
        {
            "matchFeatures": [
                {"feature": "CPU.CpuId", "matchExpressions": {"AVX": {"op": "Exists"}}}
            ]
        }
    )
    upper_feature = rule(
        {"matchFeatures": [{"feature": "UPPER.case", "matchExpressions": {}}]}
    )

    assert execute_rule(upper_term, host, fail_fast=True).status.is_match
    assert not execute_rule(upper_feature, host, fail_fast=True).status.is_match


def test_element_names_are_case_sensitive() -> None:
    host = Features(flags={"cpu.cpuid": {"AVX"}})
    lower = rule(
        {
            "matchFeatures": [
                {"feature": "cpu.cpuid", "matchExpressions": {"avx": {"op": "Exists"}}}
            ]
        }
    )

    assert not execute_rule(lower, host, fail_fast=True).status.is_match


def test_empty_expression_set_on_instances_only_needs_an_instance() -> None:
    term = {"feature": "pci.device", "matchExpressions": {}}
    none = Features(instances={"pci.device": []})
    one = Features(instances={"pci.device": [{"class": "0200"}]})

    assert not execute_rule(rule({"matchFeatures": [term]}), none, True).status.is_match
    assert execute_rule(rule({"matchFeatures": [term]}), one, True).status.is_match


def test_error_names_rule_feature_and_element() -> None:
    host = Features(attributes={"kernel.version": {"major": "x"}})
    bad = rule(
        {
            "name": "kernel",
            "matchFeatures": [
                {
                    "feature": "kernel.version",
                    "matchExpressions": {"major": {"op": "Gt", "value": ["4"]}},
                }
            ],
        }
    )

    with pytest.raises(RuleError) as caught:
        execute_rule(bad, host, fail_fast=False)

    message = str(caught.value)
    assert "'kernel'" in message
    assert "'kernel.version'" in message
    assert "'major'" in message
    assert 'not a number "x"' in message


def test_bad_expression_on_absent_element_is_no_error() -> None:
    host = Features(attributes={"kernel.version": {"minor": "1"}})
    bad = rule(
        {
            "matchFeatures": [
                {
                    "feature": "kernel.version",
                    "matchExpressions": {"major": {"op": "Gt"}},
                }
            ]
        }
    )

    assert not execute_rule(bad, host, fail_fast=False).status.is_match


def test_template_error_only_when_rule_matches() -> None:
    host = Features(flags={"a.b": {"x"}})
    never = rule(
        {
            "varsTemplate": "{{",
            "matchFeatures": [
                {"feature": "a.b", "matchExpressions": {"y": {"op": "Exists"}}}
            ],
        }
    )
    always = rule(
        {
            "varsTemplate": "{{",
            "matchFeatures": [
                {"feature": "a.b", "matchExpressions": {"x": {"op": "Exists"}}}
            ],
        }
    )

    assert execute_rule(never, host, fail_fast=False).vars is None
    with pytest.raises(RuleError, match="failed to parse template"):
        execute_rule(always, host, fail_fast=False)


def test_matchany_only_rule_that_fails_still_gives_static_vars_without_failfast() -> (
    None
):
    host = Features(flags={"a.b": {"x"}})
    group = rule(
        {
            "vars": {"v": "1"},
            "matchAny": [
                {
                    "matchFeatures": [
                        {"feature": "a.b", "matchExpressions": {"y": {"op": "Exists"}}}
                    ]
                }
            ],
        },
        "group",
    )

    full = execute_rule(group, host, fail_fast=False)
    fast = execute_rule(group, host, fail_fast=True)

    assert (full.status.is_match, full.vars) == (False, {"v": "1"})
    assert (fast.status.is_match, fast.vars) == (False, None)


def test_matchname_after_a_failed_term_is_not_evaluated() -> None:
    host = Features(flags={"a.b": {"x"}, "c.d": {"y"}})
    group = rule(
        {
            "matchFeatures": [
                {"feature": "a.b", "matchExpressions": {"nope": {"op": "Exists"}}},
                {"feature": "c.d", "matchName": {"op": "In"}},
            ]
        }
    )

    output = execute_rule(group, host, fail_fast=False)

    assert output.status.is_match is False
    assert output.status.features is not None
    assert output.status.features.matched_terms == []


TEMPLATE_DATA = {
    "cpu": {"cpuid": [{"Name": "AVX"}, {"Name": "SSE"}]},
    "kernel": {"config": [{"Name": "X86", "Value": "y"}]},
    "pci": {"device": [{"class": "0200", "vendor": "8086"}]},
    "memory": {"nv": []},
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{range .cpu.cpuid}}{{.Name}},{{end}}", "AVX,SSE,"),
        ("a  {{- .kernel.config }} -", "a[map[Name:X86 Value:y]] -"),
        ("{{ range .pci.device }}{{ .class }}-{{ .vendor }}{{ end }}", "0200-8086"),
        ("{{ if gt (len .memory.nv ) 0 }}present{{ else }}absent{{ end }}", "absent"),
        ("{{range .memory.nv}}x{{else}}none{{end}}", "none"),
        ("x {{- /* note */ -}} y", "xy"),
        ('{{ index .pci.device 0 "class" }}', "0200"),
        ('{{ range .pci.device }}{{ index . "missing" }}!{{ end }}', "!"),
        ("{{ range .cpu.cpuid }}{{ .Name | lower }}{{ end }}", "avxsse"),
        ('{{ if eq "a" "b" "a" }}yes{{ end }}', "yes"),
        ("{{ with .kernel.config }}{{ len . }}{{ end }}", "1"),
    ],
)
def test_template_subset_renders_as_go(source: str, expected: str) -> None:
    assert compile_template(source).render(TEMPLATE_DATA) == expected


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ .nope.x }}", 'map has no entry for key "nope"'),
        ("{{ range .cpu.cpuid }}{{ .Value }}{{ end }}", 'no entry for key "Value"'),
        ("{{ range .pci.device }}{{ .Name }}{{ end }}", 'no entry for key "Name"'),
        ("{{ $x := 1 }}", "variables are not supported"),
        ('{{ env "PATH" }}', 'function "env" not defined'),
        ('{{ template "x" }}', "not supported"),
        ("{{ range .cpu.cpuid }}", "unexpected EOF"),
        ("{{ end }}", "unexpected"),
    ],
)
def test_template_errors_are_rule_errors(source: str, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        compile_template(source).render(TEMPLATE_DATA)


def test_oversized_template_is_refused() -> None:
    with pytest.raises(RuleError, match="maximum allowed size"):
        compile_template("a" * (64 * 1024 + 1)).render({})


def test_broken_expressions_are_reported_in_the_order_written() -> None:
    host = Features(attributes={"a.b": {"x": "1", "y": "1"}})
    broken = rule(
        {
            "name": "r",
            "matchFeatures": [
                {
                    "feature": "a.b",
                    "matchExpressions": {
                        "y": {"op": "Gt", "value": ["1", "2"]},
                        "x": {"op": "In"},
                    },
                }
            ],
        }
    )

    with pytest.raises(RuleError, match="element 'y'"):
        execute_rule(broken, host, fail_fast=True)

"""NFD's rule execution: its rule and group-rule tables, templates, and quirks."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

import fleetcompat
from fleetcompat.errors import RuleError
from fleetcompat.features import Features
from fleetcompat.rules import engine
from fleetcompat.rules.engine import execute_rule
from fleetcompat.rules.template import compile_template
from fleetcompat.spec import GroupRule, parse_spec

DATA = yaml.safe_load((Path(__file__).parent / "data/rules/nfd_rules.yaml").read_text())
STATIC = {"static": "true", "empty": ""}
PACKAGE = Path(fleetcompat.__file__).parent


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
        ("{{ with .memory.nv }}a{{ else with .cpu.cpuid }}{{ len . }}{{ end }}", "2"),
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
        ('{{ env "PATH" }}', 'function "env" not defined'),
        ('{{ template "x" }}', "not supported"),
        ("{{ range .cpu.cpuid }}", "unexpected EOF"),
        ("{{ end }}", "unexpected"),
    ],
)
def test_template_errors_are_rule_errors(source: str, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        compile_template(source).render(TEMPLATE_DATA)


VARIABLE_DATA = {
    "cpu": {"cpuid": [{"Name": "AVX"}, {"Name": "SSE"}]},
    "kernel": {"config": [{"Name": "X86", "Value": "y"}], "version": []},
    "pci": {"device": [{"class": "0200", "vendor": "8086"}, {"class": "0300"}]},
    "memory": {"nv": []},
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param(
            "{{range $i, $d := .pci.device}}{{$i}}:{{$d.class}} {{end}}",
            "0:0200 1:0300 ",
            id="range-two-vars-bind-index-and-element",
        ),
        pytest.param(
            "{{range $c := .cpu.cpuid}}{{$c.Name}}{{end}}",
            "AVXSSE",
            id="range-one-var-binds-the-element",
        ),
        pytest.param(
            "{{range $k, $v := .kernel}}{{$k}}={{len $v}};{{end}}",
            "config=1;version=0;",
            id="range-over-a-map-binds-sorted-keys",
        ),
        pytest.param("{{range $i := 3}}{{$i}}{{end}}", "012", id="range-over-an-int"),
        pytest.param(
            "{{range $i, $d := .memory.nv}}x{{else}}empty{{end}}",
            "empty",
            id="range-with-vars-runs-else-when-empty",
        ),
        pytest.param(
            "{{$x := .cpu.cpuid}}{{len $x}}", "2", id="declaration-prints-nothing"
        ),
        pytest.param(
            "{{$x := 1}}{{if true}}{{$x := 2}}{{$x}}{{end}}{{$x}}",
            "21",
            id="inner-declaration-shadows-until-end",
        ),
        pytest.param(
            "{{$x := 1}}{{if true}}{{$x = 2}}{{end}}{{$x}}",
            "2",
            id="assignment-reaches-the-outer-variable",
        ),
        pytest.param(
            "{{range .cpu.cpuid}}{{.Name}}{{len $.pci.device}}{{end}}",
            "AVX2SSE2",
            id="dollar-is-the-root-data",
        ),
        pytest.param('{{index $ "pci" | len}}', "1", id="dollar-alone-as-an-argument"),
        pytest.param(
            "{{with $c := .kernel.config}}{{len $c}}{{len .}}{{end}}",
            "11",
            id="with-declares-and-sets-dot",
        ),
        pytest.param(
            "{{if $n := len .memory.nv}}{{$n}}{{else}}none{{$n}}{{end}}",
            "none0",
            id="if-variable-is-visible-in-else",
        ),
        pytest.param(
            "{{range $i, $e := .cpu.cpuid}}{{if eq $i 1}}{{$e.Name}}{{end}}{{end}}",
            "SSE",
            id="variables-as-function-arguments",
        ),
        pytest.param(
            "{{$n := 0}}{{range .pci.device}}{{$n = len $.cpu.cpuid}}{{end}}{{$n}}",
            "2",
            id="assignment-inside-range-outlives-the-iteration",
        ),
        pytest.param(
            "{{ range $i, $d := .pci.device -}}\n{{ $d.class }}\n{{- end }}",
            "02000300",
            id="trimming-around-declarations",
        ),
    ],
)
def test_template_variables_run_as_go(source: str, expected: str) -> None:
    assert compile_template(source).render(VARIABLE_DATA) == expected


@pytest.mark.parametrize(
    ("source", "message"),
    [
        pytest.param("{{$x}}", 'undefined variable "\\$x"', id="undeclared"),
        pytest.param(
            "{{range .cpu.cpuid}}{{$x := 1}}{{end}}{{$x}}",
            'undefined variable "\\$x"',
            id="scope-ends-at-end",
        ),
        pytest.param(
            "{{if $y := 1}}{{end}}{{$y}}",
            'undefined variable "\\$y"',
            id="control-variable-scope-ends-at-end",
        ),
        pytest.param(
            "{{$a, $b := 1}}", "too many declarations in command", id="two-in-action"
        ),
        pytest.param(
            "{{range $a, $b, $c := .cpu.cpuid}}{{end}}",
            "too many declarations in range",
            id="three-in-range",
        ),
        pytest.param(
            "{{$x = 1}}", "undefined variable: \\$x", id="assign-to-undeclared"
        ),
        pytest.param(
            "{{range $i, $e := 3}}{{end}}",
            "can't use 3 to iterate over more than one variable",
            id="int-range-with-two-vars",
        ),
        pytest.param(
            "{{$x := 1}}{{$x 2}}", "can't give argument", id="variable-with-args"
        ),
        pytest.param("{{$.nope}}", 'no entry for key "nope"', id="missing-key"),
        pytest.param('{{define "x"}}{{end}}', "not supported", id="define"),
        pytest.param('{{block "x" .}}{{end}}', "not supported", id="block"),
        pytest.param(
            '{{$x := env "PATH"}}', 'function "env" not defined', id="unknown-func"
        ),
    ],
)
def test_template_variable_errors_are_rule_errors(source: str, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        compile_template(source).render(VARIABLE_DATA)


def test_template_variables_in_a_rule_give_vars() -> None:
    host = Features(instances={"pci.device": [{"vendor": "8086"}, {"vendor": "10de"}]})
    parsed = rule(
        {
            "name": "devices",
            "varsTemplate": "{{range $i, $d := .pci.device}}dev{{$i}}={{$d.vendor}}\n"
            "{{end}}",
            "matchFeatures": [
                {
                    "feature": "pci.device",
                    "matchExpressions": {"vendor": {"op": "Exists"}},
                }
            ],
        },
        "group",
    )

    output = execute_rule(parsed, host, fail_fast=True)

    assert output.vars == {"dev0": "8086", "dev1": "10de"}


def test_unsupported_template_error_names_the_rule() -> None:
    host = Features(flags={"a.b": {"x"}})
    parsed = rule(
        {
            "name": "uses define",
            "varsTemplate": '{{define "t"}}x=1{{end}}',
            "matchFeatures": [
                {"feature": "a.b", "matchExpressions": {"x": {"op": "Exists"}}}
            ],
        },
        "group",
    )

    with pytest.raises(RuleError, match="rule 'uses define'.*not supported"):
        execute_rule(parsed, host, fail_fast=True)


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


def test_every_public_engine_function_is_called_or_kept_for_nfd_tables() -> None:
    sources = "\n".join(p.read_text() for p in PACKAGE.rglob("*.py"))
    public = [
        (name, function)
        for name, function in inspect.getmembers(engine, inspect.isfunction)
        if not name.startswith("_") and function.__module__ == engine.__name__
    ]

    unused = [
        name
        for name, function in public
        if len(re.findall(rf"\b{name}\(", sources)) < 2
        and "NFD's test tables" not in (function.__doc__ or "")
    ]

    assert public
    assert unused == []

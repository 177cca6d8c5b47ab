"""validate: NFD's node-validator cases and JSON, its quirks, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from fleetcompat import RuleError, load_spec, validate
from fleetcompat.cli.main import main
from fleetcompat.features import Features
from fleetcompat.validate import go_json, to_nfd, to_nfd_json

DATA = yaml.safe_load(
    (Path(__file__).parent / "data/rules/nfd_node_validator.yaml").read_text()
)


def fake_features() -> Features:
    shape = DATA["features"]
    return Features(
        flags={k: set(v) for k, v in shape["flags"].items()},
        attributes={k: dict(v) for k, v in shape["attributes"].items()},
        instances={k: [dict(i) for i in v] for k, v in shape["instances"].items()},
    )


def nfd_text(data: Any) -> str:
    """What Go prints for data with no characters that need HTML escaping."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


@pytest.mark.parametrize("case", DATA["cases"], ids=lambda c: c["id"])
def test_nfd_node_validator_cases(case: dict[str, Any]) -> None:
    spec = load_spec(case["spec"])

    results = validate(spec, fake_features(), case.get("tags"))

    assert to_nfd(results) == case["output"]
    assert to_nfd_json(results) == nfd_text(case["output"])


@pytest.mark.parametrize("case", DATA["cases"], ids=lambda c: c["id"])
def test_cli_json_is_nfds_output(case: dict[str, Any], tmp_path: Path) -> None:
    features = tmp_path / "features.json"
    features.write_text(json.dumps(fake_features().to_nfd()))
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(case["spec"]))
    tags = ["--tags", ",".join(case["tags"])] if case.get("tags") else []

    result = CliRunner().invoke(
        main,
        ["validate", "--features", str(features), "--spec", str(spec), "-o", "json"]
        + tags,
    )

    assert result.exit_code == 0, result.output
    assert result.output == nfd_text(case["output"]) + "\n"


def run(spec: str, features: Features, tags: list[str] | None = None) -> Any:
    return to_nfd(validate(load_spec(spec), features, tags))


def test_upper_case_feature_name_shows_fail_rows_on_a_matching_rule() -> None:
    host = Features(flags={"cpu.cpuid": {"AVX"}})
    spec = """
compatibilities:
- rules:
  - name: r
    matchFeatures:
    - feature: CPU.cpuid
      matchExpressions: {AVX: {op: Exists}}
"""

    rule = run(spec, host)[0]["rules"][0]

    assert rule["isMatch"] is True
    assert rule["matchedExpressions"][0]["isMatch"] is False


def test_equal_expressions_on_one_feature_share_their_status() -> None:
    host = Features(attributes={"a.b": {"x": "1"}}, flags={"c.d": {"y"}})
    spec = """
compatibilities:
- rules:
  - name: r
    matchAny:
    - matchFeatures:
      - feature: a.b
        matchExpressions: {x: {op: In, value: ["1"]}}
      - feature: c.d
        matchExpressions: {gone: {op: Exists}}
    - matchFeatures:
      - feature: a.b
        matchExpressions: {x: {op: In, value: ["1"]}}
"""

    rows = [
        e["matchedExpressions"] for e in run(spec, host)[0]["rules"][0]["matchedAny"]
    ]

    assert [r["isMatch"] for r in rows[0]] == [True, False]
    assert [r["isMatch"] for r in rows[1]] == [True]


def test_rule_matched_exists_empty_after_first_rule() -> None:
    host = Features(flags={"a.b": {"x"}})
    first = """
  - name: first
    matchFeatures:
    - feature: a.b
      matchExpressions: {nope: {op: Exists}}"""
    second = """
  - name: second
    matchFeatures:
    - feature: rule.matched
      matchExpressions: {anything: {op: DoesNotExist}}"""

    after_first = run("compatibilities:\n- rules:" + first + second, host)
    alone = run("compatibilities:\n- rules:" + second, host)

    assert after_first[0]["rules"][1]["isMatch"] is True
    assert alone[0]["rules"][0]["isMatch"] is False


def test_rule_vars_are_visible_to_later_rules_and_sets() -> None:
    host = Features(flags={"pci.present": {"10de"}})
    spec = """
compatibilities:
- rules:
  - name: gpu
    vars: {gpu: "nvidia"}
    matchFeatures:
    - feature: pci.present
      matchExpressions: {10de: {op: Exists}}
  - name: uses gpu
    matchFeatures:
    - feature: rule.matched
      matchExpressions: {gpu: {op: In, value: [nvidia]}}
- rules:
  - name: next set sees it too
    matchFeatures:
    - feature: rule.matched
      matchExpressions: {gpu: {op: Exists}}
"""

    results = run(spec, host)

    assert [r["isMatch"] for r in results[0]["rules"]] == [True, True]
    assert results[1]["rules"][0]["isMatch"] is True
    assert "rule.matched" not in host.attributes


def test_template_vars_become_back_references() -> None:
    host = Features(attributes={"kernel.version": {"major": "6"}})
    spec = """
compatibilities:
- rules:
  - name: kernel
    varsTemplate: "{{range .kernel.version}}kernel-{{.Name}}={{.Value}}{{end}}"
    matchFeatures:
    - feature: kernel.version
      matchExpressions: {major: {op: Exists}}
  - name: reuse
    matchFeatures:
    - feature: rule.matched
      matchExpressions: {kernel-major: {op: Gt, value: ["5"]}}
"""

    assert [r["isMatch"] for r in run(spec, host)[0]["rules"]] == [True, True]


def test_tags_keep_untagged_sets_only_when_asked() -> None:
    spec = (
        "compatibilities:\n- description: untagged\n- tag: a\n  description: tagged\n"
    )

    assert [r["description"] for r in run(spec, Features())] == ["untagged", "tagged"]
    assert [r["description"] for r in run(spec, Features(), ["a"])] == ["tagged"]
    assert [r["description"] for r in run(spec, Features(), ["", "b"])] == ["untagged"]


def test_empty_spec_and_empty_rules_print_as_nfd() -> None:
    assert to_nfd_json(validate(load_spec("compatibilities: []\n"), Features())) == "[]"
    assert (
        to_nfd_json(validate(load_spec("compatibilities:\n- rules: []\n"), Features()))
        == '[{"rules":null}]'
    )
    empty_any = "compatibilities:\n- rules:\n  - name: r\n    matchAny: [{}]\n"
    assert to_nfd_json(validate(load_spec(empty_any), Features())) == (
        '[{"rules":[{"name":"r","isMatch":true,'
        '"matchedAny":[{"matchedExpressions":null}]}]}]'
    )


def test_json_escapes_like_go() -> None:
    text = go_json({"d": "<a> & b\u2028", "t": 'tab\tquote"back\\', "u": "é"})

    assert text == (
        '{"d":"\\u003ca\\u003e \\u0026 b\\u2028","t":"tab\\tquote\\"back\\\\","u":"é"}'
    )


def test_version_type_is_kept_in_json() -> None:
    host = Features(attributes={"kernel.version": {"full": "6.1.0"}})
    spec = """
compatibilities:
- rules:
  - name: r
    matchFeatures:
    - feature: kernel.version
      matchExpressions: {full: {op: Ge, value: ["5.4"], type: version}}
"""

    row = run(spec, host)[0]["rules"][0]["matchedExpressions"][0]

    assert row["expression"] == {"op": "Ge", "value": ["5.4"], "type": "version"}
    assert row["isMatch"] is True


def test_rule_error_aborts_the_check() -> None:
    host = Features(attributes={"a.b": {"x": "1"}})
    spec = """
compatibilities:
- rules:
  - name: broken
    matchFeatures:
    - feature: a.b
      matchExpressions: {x: {op: Gt, value: ["1", "2"]}}
"""

    with pytest.raises(RuleError, match="'broken'.*'a.b'.*'x'"):
        validate(load_spec(spec), host)


def _write(tmp_path: Path, spec: str) -> list[str]:
    features = tmp_path / "f.json"
    features.write_text(json.dumps(fake_features().to_nfd()))
    path = tmp_path / "s.yaml"
    path.write_text(spec)
    return ["validate", "--features", str(features), "--spec", str(path)]


FAILING = """
compatibilities:
- description: needs what is not there
  tag: t
  weight: 5
  rules:
  - name: missing flag
    matchFeatures:
    - feature: fake.flag
      matchExpressions: {flag_9: {op: Exists}}
"""


def test_cli_exit_status_is_zero_unless_asked(tmp_path: Path) -> None:
    args = _write(tmp_path, FAILING)

    plain = CliRunner().invoke(main, args)
    strict = CliRunner().invoke(main, [*args, "--fail-on-incompatible"])

    assert plain.exit_code == 0
    assert strict.exit_code == 4


def test_cli_table_carries_nfds_information(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, _write(tmp_path, FAILING))

    assert "COMPATIBILITY SET #1 Weight: 5; Tag: t" in result.output
    assert "Description: needs what is not there" in result.output
    assert "RULE: MISSING FLAG - FAIL" in result.output
    assert "fake.flag.flag_9" in result.output
    assert '{op: "Exists"}' in result.output


MARKUP_LIKE = """
compatibilities:
- description: "needs [/b] thing [bold]"
  tag: "[red]t"
  rules:
  - name: "[b]regex"
    matchFeatures:
    - feature: fake.attribute
      matchExpressions:
        "[i]a": {op: InRegexp, value: ["^[a-z]+$"]}
"""


def test_cli_table_prints_spec_text_literally_not_as_markup(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, _write(tmp_path, MARKUP_LIKE))

    assert result.exit_code == 0, result.output
    assert "Description: needs [/b] thing [bold]" in result.output
    assert "Tag: [red]t" in result.output
    assert "RULE: [B]REGEX - FAIL" in result.output
    assert "fake.attribute.[i]a" in result.output
    assert '["^[a-z]+$"]' in result.output


def test_cli_rule_error_is_one_line_and_exit_2(tmp_path: Path) -> None:
    spec = FAILING.replace("{op: Exists}", "{op: Exists, value: [x]}").replace(
        "flag_9", "flag_1"
    )

    result = CliRunner().invoke(main, _write(tmp_path, spec))

    assert result.exit_code == 2
    assert result.output.count("\n") == 1
    assert "'missing flag'" in result.output and "'flag_1'" in result.output


def test_cli_picks_a_node_from_a_list(tmp_path: Path) -> None:
    node = {
        "apiVersion": "nfd.k8s-sigs.io/v1alpha1",
        "kind": "NodeFeature",
        "metadata": {"name": "n2"},
        "spec": {"features": fake_features().to_nfd()},
    }
    listing = tmp_path / "nodes.yaml"
    listing.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "List",
                "items": [{**node, "metadata": {"name": "n1"}, "spec": {}}, node],
            }
        )
    )
    spec = tmp_path / "s.yaml"
    spec.write_text(FAILING.replace("flag_9", "flag_1"))

    result = CliRunner().invoke(
        main,
        [
            "validate",
            "--features",
            str(listing),
            "--node",
            "n2",
            "--spec",
            str(spec),
            "-o",
            "json",
            "--fail-on-incompatible",
        ],
    )

    assert result.exit_code == 0, result.output
    assert json.loads(result.output)[0]["rules"][0]["isMatch"] is True


def test_cli_tags_may_repeat_and_hold_commas(tmp_path: Path) -> None:
    spec = "compatibilities:\n- tag: a\n- tag: b\n- tag: c\n- {}\n"
    args = _write(tmp_path, spec) + ["-o", "json"]

    repeated = CliRunner().invoke(main, [*args, "--tags", "a", "--tags", "b,c"])
    empty = CliRunner().invoke(main, [*args, "--tags", ""])

    assert [s["tag"] for s in json.loads(repeated.output)] == ["a", "b", "c"]
    assert len(json.loads(empty.output)) == 4


def test_cli_table_prints_terminal_escapes_from_a_spec_as_question_marks(
    tmp_path: Path,
) -> None:
    yaml_escapes = "clear\\e[2J\\e]0;owned\\a screen"  # YAML's \e is ESC, \a BEL
    spec = MARKUP_LIKE.replace("needs [/b] thing", yaml_escapes)

    result = CliRunner().invoke(main, _write(tmp_path, spec))

    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "clear?[2J?]0;owned? screen" in result.output

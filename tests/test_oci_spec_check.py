"""`check_spec`: what NFD would fail on when evaluating a spec, found up front.

`attach` refuses such a spec unless --force, and `images` lists the problems of
an artifact carrying one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from fleetcompat.cli.main import ExitCode, main
from fleetcompat.errors import RuleError
from fleetcompat.features import Features
from fleetcompat.rules.engine import execute_rule
from fleetcompat.spec import check_spec, load_spec
from tests.helpers.oci_layouts import LayoutBuilder, spec_text


def spec_with(element: str, expression: str, feature: str = "kernel.version") -> str:
    """A one-set, one-rule spec with one expression."""
    return f"""
compatibilities:
- tag: gpu
  rules:
  - name: kernel
    matchFeatures:
    - feature: {feature}
      matchExpressions:
        {element}: {expression}
"""


def run(*args: str) -> tuple[int, str, str]:
    """Run the CLI in-process; return exit code, stdout and stderr."""
    result = CliRunner().invoke(main, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


BAD = [
    ("unclosed-regexp", r"{op: InRegexp, value: ['^6\.(1']}", "valid regexps"),
    ("unknown-op", "{op: Bigger, value: ['1']}", 'invalid Op "Bigger"'),
    ("gt-two-values", "{op: Gt, value: ['1', '2']}", "exactly one element"),
    ("gtlt-one-value", "{op: GtLt, value: ['1']}", "exactly two elements"),
    ("in-no-value", "{op: In}", "must be non-empty"),
    ("exists-with-value", "{op: Exists, value: ['1']}", "must be empty"),
    ("gt-non-integer", "{op: Gt, value: ['5.1']}", 'not a number "5.1"'),
    ("gt-bad-version", "{op: Gt, value: ['x.y'], type: version}", "not a version"),
    ("unknown-type", "{op: Gt, value: ['1'], type: number}", "'type' field"),
    ("empty-range", "{op: GtLt, value: ['5', '5']}", "less than"),
]


@pytest.mark.parametrize(
    ("expression", "wanted"),
    [pytest.param(e, w, id=name) for name, e, w in BAD],
)
def test_check_spec_reports_what_evaluation_would_raise(
    expression: str, wanted: str
) -> None:
    spec = load_spec(spec_with("major", expression))
    host = Features(attributes={"kernel.version": {"major": "6"}})

    problems = check_spec(spec)

    assert len(problems) == 1
    assert problems[0].startswith(
        "compatibilities[0] (tag 'gpu'): rule 'kernel': feature kernel.version: "
        "element 'major': "
    )
    assert wanted in problems[0]
    with pytest.raises(RuleError, match="element 'major'"):
        execute_rule(spec.rules()[0], host, fail_fast=True)


GOOD = [
    ("regexp", r"{op: InRegexp, value: ['^6\.1']}"),
    ("gt-integer", "{op: Gt, value: ['5']}"),
    ("gt-version", "{op: Gt, value: ['5.1'], type: version}"),
    ("in", "{op: In, value: ['6']}"),
    ("exists", "{op: Exists}"),
    ("is-true", "{op: IsTrue}"),
    ("range", "{op: GeLe, value: ['1', '9']}"),
]


@pytest.mark.parametrize("expression", [pytest.param(e, id=name) for name, e in GOOD])
def test_check_spec_finds_nothing_in_a_sound_expression(expression: str) -> None:
    assert check_spec(load_spec(spec_with("major", expression))) == []


def test_check_spec_reports_a_template_that_does_not_parse() -> None:
    text = spec_with("major", "{op: Exists}").replace(
        "  - name: kernel\n", "  - name: kernel\n    varsTemplate: '{{ range .x }'\n"
    )

    problems = check_spec(load_spec(text))

    assert len(problems) == 1
    assert "rule 'kernel': varsTemplate: failed to parse template" in problems[0]


def test_check_spec_reports_a_bad_match_name() -> None:
    text = spec_with("major", "{op: Exists}").replace(
        "      matchExpressions:", "      matchName: {op: In}\n      matchExpressions:"
    )

    problems = check_spec(load_spec(text))

    assert problems == [
        "compatibilities[0] (tag 'gpu'): rule 'kernel': feature kernel.version: "
        "matchName: invalid expression, 'value' field must be non-empty for Op \"In\""
    ]


@pytest.fixture
def layout(tmp_path: Path) -> LayoutBuilder:
    builder = LayoutBuilder(tmp_path / "layout")
    builder.tag(builder.image(), "app:1.0")
    return builder


def test_attach_refuses_a_spec_nfd_would_fail_on_listing_the_problems(
    layout: LayoutBuilder, tmp_path: Path
) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(spec_with("full", r"{op: InRegexp, value: ['^6\.(1']}"))
    before = (layout.root / "index.json").read_bytes()

    code, _, err = run("attach", "app:1.0", str(spec), "--oci-layout", str(layout.root))

    assert code == ExitCode.USAGE
    assert "bad.yaml" in err and "element 'full'" in err and "--force" in err
    assert (layout.root / "index.json").read_bytes() == before


def test_attach_with_force_attaches_a_spec_with_problems(
    layout: LayoutBuilder, tmp_path: Path
) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(spec_with("major", "{op: Gt, value: ['5.1']}"))

    code, out, _ = run(
        "attach", "app:1.0", str(spec), "--oci-layout", str(layout.root), "--force"
    )

    assert code == ExitCode.OK
    assert out.strip().startswith("sha256:")


def test_images_lists_spec_problems_as_problems_of_the_artifact(
    layout: LayoutBuilder,
) -> None:
    image = layout.tag(layout.image(marker="b"), "bad:1.0")
    layout.tag(layout.artifact(image, spec_with("major", "{op: Gt, value: ['5.1']}")))

    code, out, _ = run("images", "--oci-layout", str(layout.root), "-o", "json")

    problems = {
        tuple(i["references"]): i["problems"] for i in json.loads(out)["images"]
    }
    assert code == ExitCode.PARTIAL
    assert problems[("app:1.0",)] == []
    assert len(problems[("bad:1.0",)]) == 1
    assert "element 'major': not a number \"5.1\"" in problems[("bad:1.0",)][0]


def test_validate_command_still_mirrors_nfd_laziness(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(spec_with("major", "{op: Gt, value: ['5.1']}", "cpu.cpuid"))
    features = tmp_path / "features.yaml"
    features.write_text("flags:\n  cpu.cpuid:\n    elements: {AVX: {}}\n")

    code, out, _ = run("validate", "--features", str(features), "--spec", str(spec))

    assert check_spec(load_spec(spec))
    assert code == ExitCode.OK, out


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        pytest.param("2026-02-03T04:05:06Z", "2026-02-03T04:05:06Z", id="utc"),
        pytest.param("2026-02-03T04:05:06+02:00", "2026-02-03T02:05:06Z", id="offset"),
    ],
)
def test_attach_created_takes_the_forms_its_help_names(
    layout: LayoutBuilder, tmp_path: Path, given: str, stored: str
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text("cli"))

    code, _, _ = run(
        "attach",
        "app:1.0",
        str(spec),
        "--oci-layout",
        str(layout.root),
        "--created",
        given,
    )
    _, help_text, _ = run("attach", "--help")

    assert code == ExitCode.OK
    assert given in " ".join(help_text.split())
    assert "%Y" not in help_text and "--created TIMESTAMP" in help_text
    index = json.loads((layout.root / "index.json").read_text())
    assert (
        index["manifests"][-1]["annotations"]["org.opencontainers.image.created"]
        == stored
    )

"""`fleetcompat validate`: one host's features against one spec, as NFD checks it."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table
from rich.text import Text

from fleetcompat.cli.main import (
    ExitCode,
    fail,
    output_option,
    verbosity_options,
)
from fleetcompat.cli.main import console as make_console
from fleetcompat.errors import RuleError
from fleetcompat.probing import printable
from fleetcompat.validate import CompatibilityResult, ExpressionResult, RuleResult


@click.command()
@click.option(
    "--features",
    "features_file",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="NodeFeature, kind: List of them, bare features, or `nfd export features`.",
)
@click.option(
    "--spec",
    "spec_file",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Image-compatibility spec (YAML/JSON), NodeFeatureRule or NodeFeatureGroup.",
)
@click.option("--node", help="The node to take from a file holding several.")
@click.option(
    "--tags",
    multiple=True,
    help="Keep only the compatibility sets with these tags (comma-separated, "
    "repeatable).",
)
@output_option("table", "json")
@click.option(
    "--fail-on-incompatible",
    is_flag=True,
    help="Exit 4 when a compatibility set does not match (NFD always exits 0).",
)
@verbosity_options
def validate(
    features_file: Path,
    spec_file: Path,
    node: str | None,
    tags: tuple[str, ...],
    output: str,
    fail_on_incompatible: bool,
) -> None:
    """Check one host's features against one image-compatibility spec.

    Gives the verdicts `nfd compat validate-node` would give on that host, offline:
    per compatibility set, per rule OK or FAIL, and the status of every
    expression. `--output json` prints exactly the JSON array NFD prints with
    `--output-json`.

    \b
    Examples:
      fleetcompat validate --features node.yaml --spec spec.yaml
      fleetcompat validate --features nodefeatures.yaml --node worker-3 \\
          --spec spec.yaml --tags prefered --output json

    Exits 0 when the check ran, whatever the verdict (as NFD); with
    --fail-on-incompatible, 4 when any set kept does not match. A rule NFD
    would reject (bad op, value count, regex, number, template) exits 2.
    """
    from fleetcompat import load_features, load_spec
    from fleetcompat import validate as check
    from fleetcompat.validate import to_nfd_json

    features = load_features(features_file, node)
    spec = load_spec(spec_file)
    wanted = [tag for option in tags if option for tag in option.split(",")]
    try:
        results = check(spec, features, wanted or None)
    except RuleError as exc:
        fail(f"{spec_file}: {exc}", ExitCode.USAGE)
        return

    if output == "json":
        click.echo(to_nfd_json(results))
    else:
        _print_results(results)
    if fail_on_incompatible and not all(r.is_match for r in results):
        raise SystemExit(int(ExitCode.INCOMPATIBLE))


def _print_results(results: list[CompatibilityResult]) -> None:
    """NFD's table output: a header per set, a table per rule.

    Spec text (descriptions, names, values such as `^[a-z]+$`) goes to rich as
    `Text`, never as markup, so brackets in it print as written; control
    characters in it (terminal escapes) print as `?`.
    """
    console = make_console(highlight=False)
    if not results:
        console.print("No compatibility set to check.")
    for number, result in enumerate(results, start=1):
        header = Text(f"COMPATIBILITY SET #{number} ", style="bold cyan")
        header.append(f"Weight: {result.weight}", style="cyan")
        if result.tag:
            header.append(f"; Tag: {printable(result.tag)}", style="cyan")
        console.print(header)
        console.print(Text(f"Description: {printable(result.description)}"))
        for rule in result.rules:
            console.print(_rule_table(rule))
        console.print()


def _rule_table(rule: RuleResult) -> Table:
    """One rule as a table: Feature | Expression | Matcher Type | Status."""
    verdict = "OK" if rule.is_match else "FAIL"
    style = "bold green" if rule.is_match else "bold red"
    table = Table(
        title=Text(f"RULE: {printable(rule.name.upper())} - {verdict}", style=style),
        title_justify="left",
    )
    table.add_column("#", justify="right")
    for column in ("Feature", "Expression", "Matcher Type", "Status"):
        table.add_column(column, overflow="fold")

    count = 0
    groups = [rule.matched_expressions, *(rows or [] for rows in rule.matched_any)]
    for index, rows in enumerate(groups):
        if index > 0:
            table.add_section()
        for row in rows:
            count += 1
            table.add_row(Text(str(count)), *_cells(row))
    return table


def _cells(row: ExpressionResult) -> tuple[Text, Text, Text, Text]:
    """The four cells NFD prints for one expression, as plain text."""
    status = Text("OK", style="green") if row.is_match else Text("FAIL", style="red")
    label, expression = printable(row.label), printable(_expression_text(row))
    return Text(label), Text(expression), Text(row.matcher_type), status


def _expression_text(row: ExpressionResult) -> str:
    """NFD's `{op: "In", value: ["a" "b"]}` form (type is not shown, as in NFD)."""
    return str(row.expression)


COMMANDS = [validate]

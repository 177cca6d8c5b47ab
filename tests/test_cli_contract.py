"""The command line users script against (shared/CLI.md) and the README stay true."""

from __future__ import annotations

import re

import click
import pytest
from click.testing import CliRunner

from fleetcompat.cli.main import main
from tests.conftest import REPO

# The contract, as CLI.md writes it: command -> options it must accept.
CONTRACT = {
    "collect": ["-i", "--db", "--limit", "--concurrency", "--timeout", "--output"],
    "import": ["--db"],
    "discover": ["--root", "--output"],
    "hosts": ["--db", "--output"],
    "images": ["--oci-layout", "--output"],
    "attach": ["--oci-layout"],
    "mirror": ["--oci-layout", "--plain-http"],
    "validate": ["--features", "--spec", "--node", "--tags", "--output"],
    "evaluate": ["--oci-layout", "--db", "--output"],
    "report": ["--db", "--run", "--out"],
    "audit": ["-i", "--oci-layout", "--db", "--out", "--fail-on"],
}


def option_names(command: click.Command) -> set[str]:
    """Every option string a command accepts."""
    names: set[str] = set()
    for param in command.params:
        names.update(param.opts)
        names.update(param.secondary_opts)
    return names


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_command_accepts_the_documented_options(name: str) -> None:
    command = main.commands.get(name)

    assert command is not None, f"fleetcompat {name} is missing"
    missing = set(CONTRACT[name]) - option_names(command)
    assert not missing, f"fleetcompat {name} lacks {sorted(missing)}"
    assert {"-v", "-q"} <= option_names(command)


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_help_teaches_with_an_example(name: str) -> None:
    result = CliRunner().invoke(main, [name, "--help"])

    assert result.exit_code == 0, result.output
    assert f"fleetcompat {name}" in result.output.split("Options:")[0]


def test_every_command_in_the_readme_exists() -> None:
    readme = (REPO / "README.md").read_text()

    named = set(re.findall(r"`fleetcompat ([a-z]+)", readme))

    assert named, "README names no commands"
    assert named <= set(main.commands), named - set(main.commands)
    assert set(CONTRACT) <= named, set(CONTRACT) - named


def test_readme_opens_with_the_two_commands() -> None:
    readme = (REPO / "README.md").read_text()

    first_block = readme.split("```")[1]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()]
    commands = [c for c in commands if c and c not in ("sh", "bash")]

    assert commands == ["bash scripts/demo.sh", "bash scripts/test.sh"]
    assert "scripts/test.sh" in (REPO / ".ci" / "run").read_text()

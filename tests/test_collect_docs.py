"""The collector's documentation names every outcome and every setting it has."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from fleetcompat.cli.main import main
from fleetcompat.collect import OUTCOMES
from fleetcompat.inventory import SETTINGS
from tests.conftest import REPO

DOC = (REPO / "docs" / "collect.md").read_text()
EXAMPLE = (REPO / "inventory.example.yaml").read_text()


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_every_outcome_is_documented_and_in_the_help(outcome: str) -> None:
    help_text = CliRunner().invoke(main, ["collect", "--help"]).output

    assert f"| `{outcome}` |" in DOC
    assert outcome in re.sub(r"-\s+", "-", help_text)


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_every_fleetcompat_setting_is_documented_and_shown_in_the_example(
    setting: str,
) -> None:
    assert f"`{setting}`" in DOC
    assert setting in EXAMPLE

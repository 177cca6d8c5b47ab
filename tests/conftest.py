"""Shared test settings: where the real-machine corpus lives, and tools' presence."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent


def fixtures_dir() -> Path | None:
    """The shared real-machine corpus, from FLEETCOMPAT_FIXTURES or ../shared."""
    configured = os.environ.get("FLEETCOMPAT_FIXTURES")
    path = Path(configured) if configured else REPO.parent / "shared" / "fixtures"
    return path if path.is_dir() else None


@pytest.fixture(autouse=True)
def _fleetcompat_logger_restored() -> Iterator[None]:
    """Undo what a CLI run in this process did to the `fleetcompat` logger.

    The CLI gives the logger its own stderr handler and stops propagation; left
    so, a later test's caplog would see none of the library's records.
    """
    logger = logging.getLogger("fleetcompat")
    saved = (logger.handlers[:], logger.propagate, logger.level)
    yield
    logger.handlers[:], logger.propagate, logger.level = saved


@pytest.fixture
async def started() -> AsyncIterator[list[Any]]:
    """Misbehaving peers (tests.sshd.Peer) a test started, closed after it."""
    running: list[Any] = []
    yield running
    for peer in running:
        peer.close()


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The real-machine fixtures; skipped when absent, a failure under CI."""
    path = fixtures_dir()
    if path is None:
        message = (
            "real-machine fixtures not found: set FLEETCOMPAT_FIXTURES to the "
            "shared/fixtures folder (default ../shared/fixtures beside the repo)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path

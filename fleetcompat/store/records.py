"""The records the store hands out: runs, hosts, snapshots, evaluation rows."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

OK = "ok"
"""The status of a snapshot that holds features."""


def utcnow() -> str:
    """The current time as an ISO 8601 UTC string with seconds."""
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Run:
    """One run of a command that writes to the store (collect, import, evaluate)."""

    id: int
    kind: str
    started_at: str
    finished_at: str | None
    status: str
    settings: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Host:
    """A host as the inventory (or an import) names it; no secrets are kept."""

    name: str
    address: str = ""
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    """What one or more attempts learned of a host's features, good or failed.

    `run_id` and `taken_at` are those of the latest attempt that gave this result;
    `first_run_id` and `first_taken_at` those of the first (equal when only one did).
    """

    id: int
    host: str
    run_id: int | None
    taken_at: str
    source: str
    status: str
    error: str = ""
    feature_set: str | None = None
    node_name: str = ""
    duration_ms: int | None = None
    first_run_id: int | None = None
    first_taken_at: str = ""

    @property
    def ok(self) -> bool:
        """Whether this snapshot holds features."""
        return self.status == OK


@dataclass(frozen=True)
class HostStatus:
    """A host with its newest snapshot and its newest good one."""

    host: Host
    latest: Snapshot | None
    latest_good: Snapshot | None


def monotonic_ms() -> int:
    """Milliseconds on a monotonic clock, for durations."""
    return int(time.monotonic() * 1000)


# Records of evaluation runs (see fleetcompat.store.evaluations)


@dataclass(frozen=True)
class EvalHost:
    """A host as one evaluation run saw it: its snapshot and its subject index.

    `subject` numbers the distinct feature sets of the run (-1 when the host has no
    good snapshot); hosts with equal subjects were evaluated together.
    """

    idx: int
    host: str
    groups: tuple[str, ...]
    snapshot_id: int | None
    taken_at: str
    feature_set: str | None
    subject: int
    arch: str
    node_name: str
    status: str
    reason: str = ""


@dataclass(frozen=True)
class EvalImage:
    """An image and platform of one evaluation run, with its chosen artifact.

    `sets` holds each compatibility set's tag, weight and description; `references`
    the feature names the spec reads; `per_host` that the spec reads `system.name`,
    so its pairs list host indices instead of subjects.
    """

    idx: int
    image: str
    platform: str
    artifact: str | None
    status: str
    reason: str = ""
    sets: tuple[dict[str, Any], ...] = ()
    references: tuple[str, ...] = ()
    per_host: bool = False


@dataclass(frozen=True)
class EvalPair:
    """One distinct evaluation of a run: an image row, a projection, its members."""

    image_idx: int
    projection: str
    artifact: str
    members: tuple[int, ...]


@dataclass(frozen=True)
class EvalResult:
    """The result of one spec against one projection, shared by every host with it.

    `verdict` is compatible, incompatible or error; `set_verdicts` one letter per
    compatibility set (C, I, E); `detail` the failing rules and expressions with the
    host's actual values and plain explanations (see fleetcompat.evaluate).
    """

    projection: str
    artifact: str
    verdict: str
    set_verdicts: str
    blocker: str
    error: str
    detail: dict[str, Any]

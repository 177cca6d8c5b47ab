"""The SQLite store: runs, hosts, snapshots and content-addressed feature sets.

One file holds a fleet's history. Its invariants:

- A feature set is stored once, under the sha256 of its canonical form, however many
  hosts and snapshots share it. `system.name` is left out of the stored set, because
  NFD fills it from the node's own name, which would make every host's set unique;
  it is put back from the snapshot's node name when a snapshot's features are read.
- A snapshot lands in one transaction with its feature set, or not at all; a failed
  attempt is a snapshot with a status and an error and no feature set, and never
  touches an earlier good one.
- History costs what changes, not what repeats: a good attempt whose features equal
  those of the host's newest snapshot confirms that snapshot in place (its run and
  time move forward; where it was first seen stays) instead of adding a row. So the
  snapshots of a host are its changes of outcome or features, and a nightly run
  over an unchanged fleet adds next to nothing.
- The database runs in WAL mode with full sync, so a killed writer leaves it intact
  with every committed host in it.

sqlite-utils is used here and nowhere else; the rest of the code sees the records
below.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from fleetcompat.errors import StoreError
from fleetcompat.features import Features

SCHEMA_VERSION = 4
APPLICATION_ID = 0x46434D50  # "FCMP": marks the file as ours

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


class Store:
    """A fleetcompat database, opened (and created or upgraded) at `path`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            self.db = sqlite_utils.Database(conn)
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot open database: {exc}") from None
        self._feature_cache: dict[str, Features] = {}
        self._packed_cache: dict[int, tuple[Features, tuple[str, bytes, int]]] = {}

    def close(self) -> None:
        """Close the connection; the store cannot be used afterwards."""
        self.db.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction: everything inside lands together or not at all."""
        conn = self.db.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # Schema

    def _migrate(self) -> None:
        """Create the tables of a new file, or check that an old one is ours."""
        conn = self.db.conn
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = set(self.db.table_names())
        if app_id not in (0, APPLICATION_ID) or (app_id == 0 and tables):
            raise StoreError(f"{self.path}: not a fleetcompat database")
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: written by a newer fleetcompat (schema {version}); "
                "upgrade fleetcompat to read it"
            )
        if version == SCHEMA_VERSION:
            return

        with self.transaction():
            if version < 1:
                self._create_tables()
            if version < 2:
                self._create_eval_tables()
            if version < 3:
                self._create_artifact_table()
            if version < 4:
                self._add_snapshot_confirmation()
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _create_tables(self) -> None:
        """The schema, version 1."""
        db = self.db
        db.table("runs").create(
            {
                "id": int,
                "kind": str,
                "started_at": str,
                "finished_at": str,
                "status": str,
                "settings": str,
                "counts": str,
            },
            pk="id",
            not_null={"kind", "started_at", "status"},
        )
        db.table("hosts").create(
            {
                "name": str,
                "address": str,
                "groups": str,
                "first_seen": str,
                "last_seen": str,
            },
            pk="name",
        )
        db.table("feature_sets").create(
            {"digest": str, "data": bytes, "size": int, "first_seen": str},
            pk="digest",
        )
        db.table("snapshots").create(
            {
                "id": int,
                "host": str,
                "run_id": int,
                "taken_at": str,
                "source": str,
                "status": str,
                "error": str,
                "feature_set": str,
                "node_name": str,
                "duration_ms": int,
            },
            pk="id",
            foreign_keys=[
                ("host", "hosts", "name"),
                ("run_id", "runs", "id"),
                ("feature_set", "feature_sets", "digest"),
            ],
            not_null={"host", "taken_at", "source", "status"},
        )
        db.table("snapshots").create_index(["host", "id"])
        db.table("snapshots").create_index(["run_id"])
        db.table("snapshots").create_index(["feature_set"])

    def _add_snapshot_confirmation(self) -> None:
        """Where an unchanged snapshot was first seen (schema version 4 adds it)."""
        snapshots = self.db.table("snapshots")
        snapshots.add_column("first_run_id", int)
        snapshots.add_column("first_taken_at", str)

    # Runs

    def start_run(self, kind: str, settings: dict[str, Any] | None = None) -> int:
        """Record the start of a run and return its id."""
        with self.transaction():
            table = self.db.table("runs")
            table.insert(
                {
                    "kind": kind,
                    "started_at": utcnow(),
                    "status": "running",
                    "settings": json.dumps(settings or {}, sort_keys=True),
                    "counts": "{}",
                }
            )
            run_id = table.last_pk
            assert isinstance(run_id, int)
            return run_id

    def finish_run(self, run_id: int, status: str, counts: dict[str, int]) -> None:
        """Record the end of a run, its final status and its counts."""
        with self.transaction():
            self.db.table("runs").update(
                run_id,
                {
                    "finished_at": utcnow(),
                    "status": status,
                    "counts": json.dumps(counts, sort_keys=True),
                },
            )

    def runs(self, kind: str | None = None, limit: int | None = None) -> list[Run]:
        """Runs, newest first, optionally of one kind."""
        where = "kind = ?" if kind else None
        rows = self.db.table("runs").rows_where(
            where, [kind] if kind else [], order_by="id desc", limit=limit
        )
        return [_run(row) for row in rows]

    def run(self, run_id: int) -> Run:
        """One run by id; StoreError when there is none."""
        try:
            return _run(self.db.table("runs").get(run_id))
        except sqlite_utils.db.NotFoundError:
            raise StoreError(f"{self.path}: no run {run_id}") from None

    # Hosts and snapshots

    def save_snapshot(
        self,
        host: Host,
        *,
        run_id: int | None,
        source: str,
        status: str = OK,
        error: str = "",
        features: Features | None = None,
        node_name: str = "",
        duration_ms: int | None = None,
        taken_at: str | None = None,
    ) -> Snapshot:
        """Store one snapshot of a host, with its feature set, in one transaction.

        A good snapshot (status "ok") needs features; a failed one has none. The
        feature set is stored once by digest, without `system.name`.
        """
        if (status == OK) != (features is not None):
            raise ValueError("a snapshot has features exactly when its status is ok")

        digest = None
        if features is not None:
            digest, packed, size = self._packed(features)
        now = utcnow()
        taken_at = taken_at or now

        with self.transaction():
            self._upsert_host(host, now)
            if digest is not None:
                self.db.execute(
                    "INSERT OR IGNORE INTO feature_sets (digest, data, size, "
                    "first_seen) VALUES (?, ?, ?, ?)",
                    [digest, packed, size, now],
                )
                unchanged = self._unchanged_snapshot(host.name, digest, node_name)
                if unchanged is not None:
                    self.db.execute(
                        "UPDATE snapshots SET first_run_id = coalesce(first_run_id, "
                        "run_id), first_taken_at = coalesce(first_taken_at, "
                        "taken_at), run_id = ?, taken_at = ?, source = ?, "
                        "duration_ms = ? WHERE id = ?",
                        [run_id, taken_at, source, duration_ms, unchanged],
                    )
                    return self._snapshot_by_id(unchanged)
            cursor = self.db.execute(
                "INSERT INTO snapshots (host, run_id, taken_at, source, status, "
                "error, feature_set, node_name, duration_ms, first_run_id, "
                "first_taken_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    host.name,
                    run_id,
                    taken_at,
                    source,
                    status,
                    error,
                    digest,
                    node_name,
                    duration_ms,
                    run_id,
                    taken_at,
                ],
            )
            snapshot_id = int(cursor.lastrowid or 0)

        return Snapshot(
            snapshot_id,
            host.name,
            run_id,
            taken_at,
            source,
            status,
            error,
            digest,
            node_name,
            duration_ms,
            run_id,
            taken_at,
        )

    def _unchanged_snapshot(
        self, host: str, digest: str, node_name: str
    ) -> int | None:
        """The id of the host's newest snapshot if it is good with these features."""
        row = self.db.execute(
            "SELECT id, status, feature_set, node_name FROM snapshots "
            "WHERE host = ? ORDER BY id DESC LIMIT 1",
            [host],
        ).fetchone()
        if row is None or row[1] != OK or row[2] != digest or row[3] != node_name:
            return None
        return int(row[0])

    def _snapshot_by_id(self, snapshot_id: int) -> Snapshot:
        """One snapshot by id."""
        return _snapshot(self.db.table("snapshots").get(snapshot_id))

    def _packed(self, features: Features) -> tuple[str, bytes, int]:
        """A feature set's digest, compressed canonical form and size.

        The last few are remembered by identity: a `Features` is a value once
        built, and a collection run saves one instance for many equal hosts.
        """
        hit = self._packed_cache.get(id(features))
        if hit is not None and hit[0] is features:
            return hit[1]
        digest, blob = _feature_blob(features)
        packed = (digest, zlib.compress(blob, 6), len(blob))
        if len(self._packed_cache) >= 64:
            self._packed_cache.pop(next(iter(self._packed_cache)))
        self._packed_cache[id(features)] = (features, packed)
        return packed

    def _upsert_host(self, host: Host, now: str) -> None:
        """Insert a host or refresh its address and groups (empty ones keep the old)."""
        self.db.execute(
            "INSERT INTO hosts (name, address, groups, first_seen, last_seen) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
            "address = coalesce(nullif(excluded.address, ''), address), "
            "groups = CASE WHEN excluded.groups = '[]' THEN groups "
            "ELSE excluded.groups END, "
            "last_seen = excluded.last_seen",
            [host.name, host.address, json.dumps(list(host.groups)), now, now],
        )

    def features(self, snapshot: Snapshot) -> Features:
        """The features of a good snapshot, with `system.name` put back."""
        if snapshot.feature_set is None:
            raise StoreError(f"snapshot {snapshot.id} of {snapshot.host} has none")
        features = self.feature_set(snapshot.feature_set).copy()
        features.attributes["system.name"] = {"nodename": snapshot.node_name}
        return features

    def feature_set(self, digest: str) -> Features:
        """A stored feature set by digest (without `system.name`); cached, shared."""
        cached = self._feature_cache.get(digest)
        if cached is not None:
            return cached
        row = self.db.execute(
            "SELECT data FROM feature_sets WHERE digest = ?", [digest]
        ).fetchone()
        if row is None:
            raise StoreError(f"{self.path}: no feature set {digest}")
        data = json.loads(zlib.decompress(row[0]))
        features = Features.from_nfd(data, f"feature set {digest[:12]}")
        self._feature_cache[digest] = features
        return features

    def hosts(self) -> list[HostStatus]:
        """Every host with its newest snapshot and its newest good one."""
        latest = {s.host: s for s in self._latest(good_only=False)}
        good = {s.host: s for s in self._latest(good_only=True)}
        rows = self.db.execute(
            "SELECT name, address, groups FROM hosts ORDER BY name"
        ).fetchall()
        return [
            HostStatus(
                Host(name, address or "", tuple(json.loads(groups or "[]"))),
                latest.get(name),
                good.get(name),
            )
            for name, address, groups in rows
        ]

    def latest_good_snapshots(self) -> list[Snapshot]:
        """The newest good snapshot of every host that has one, by host name."""
        return self._latest(good_only=True)

    def _latest(self, *, good_only: bool) -> list[Snapshot]:
        """The newest snapshot per host, optionally among good ones only."""
        where = "WHERE status = 'ok'" if good_only else ""
        cursor = self.db.execute(
            f"SELECT s.* FROM snapshots s JOIN (SELECT host, max(id) AS id "
            f"FROM snapshots {where} GROUP BY host) m ON s.id = m.id ORDER BY s.host"
        )
        columns = [c[0] for c in cursor.description]
        return [_snapshot(dict(zip(columns, row, strict=True))) for row in cursor]

    def snapshots(self, host: str) -> list[Snapshot]:
        """Every snapshot of one host, newest first."""
        rows = self.db.table("snapshots").rows_where("host = ?", [host], order_by="id desc")
        return [_snapshot(row) for row in rows]

    def prune(self, keep: int) -> int:
        """Keep each host's `keep` newest snapshots (and always its newest good one).

        Feature sets no snapshot refers to any more are removed too. Returns the
        number of snapshots removed.
        """
        if keep < 1:
            raise ValueError("keep at least one snapshot per host")
        with self.transaction():
            cursor = self.db.execute(
                "DELETE FROM snapshots WHERE id IN (SELECT id FROM (SELECT id, "
                "row_number() OVER (PARTITION BY host ORDER BY id DESC) AS n "
                "FROM snapshots) WHERE n > ?) AND id NOT IN (SELECT max(id) FROM "
                "snapshots WHERE status = 'ok' GROUP BY host)",
                [keep],
            )
            removed = cursor.rowcount
            self.db.execute(
                "DELETE FROM feature_sets WHERE digest NOT IN (SELECT feature_set "
                "FROM snapshots WHERE feature_set IS NOT NULL)"
            )
        return int(removed)

    # Evaluation runs and results
    #
    # A run of `evaluate` stores what it looked at, not every cell: its hosts (each
    # pointing at a subject, the distinct feature set it was evaluated with), its
    # images (image and platform -> artifact), and its pairs (artifact, projection
    # digest -> the subjects that share that evaluation). Results are keyed by
    # (projection digest, artifact digest) and shared across hosts and across runs,
    # so 10,000 hosts x 1,000 images cost rows per distinct evaluation, and a cell
    # is a join: host -> subject -> pair -> result.

    def _create_eval_tables(self) -> None:
        """The evaluation tables (schema version 2 adds them)."""
        db = self.db
        db.table("eval_results").create(
            {
                "projection": str,
                "artifact": str,
                "verdict": str,
                "set_verdicts": str,
                "blocker": str,
                "error": str,
                "detail": bytes,
                "created_at": str,
            },
            pk=("projection", "artifact"),
            not_null={"projection", "artifact", "verdict"},
        )
        db.table("eval_hosts").create(
            {
                "run_id": int,
                "idx": int,
                "host": str,
                "groups": str,
                "snapshot_id": int,
                "taken_at": str,
                "feature_set": str,
                "subject": int,
                "arch": str,
                "node_name": str,
                "status": str,
                "reason": str,
            },
            pk=("run_id", "idx"),
            foreign_keys=[("run_id", "runs", "id")],
        )
        db.table("eval_images").create(
            {
                "run_id": int,
                "idx": int,
                "image": str,
                "platform": str,
                "artifact": str,
                "status": str,
                "reason": str,
                "sets": str,
                "references_": str,
                "per_host": int,
            },
            pk=("run_id", "idx"),
            foreign_keys=[("run_id", "runs", "id")],
        )
        db.table("eval_pairs").create(
            {
                "run_id": int,
                "image_idx": int,
                "projection": str,
                "artifact": str,
                "members": str,
            },
            foreign_keys=[("run_id", "runs", "id")],
        )
        db.table("eval_pairs").create_index(["run_id", "image_idx"])

    def _create_artifact_table(self) -> None:
        """What each spec reads, by artifact digest (schema version 3 adds it).

        Parsing a spec is most of a cold run's time; a warm run whose results
        are all cached needs only what the spec reads, kept here.
        """
        self.db.table("eval_artifacts").create(
            {"artifact": str, "info": str, "created_at": str}, pk="artifact"
        )

    def artifact_infos(self, artifacts: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The stored spec information of these artifacts, by digest."""
        found: dict[str, dict[str, Any]] = {}
        wanted = sorted(set(artifacts))
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            rows = self.db.execute(
                "SELECT artifact, info FROM eval_artifacts "
                f"WHERE artifact IN ({marks})",
                chunk,
            )
            found.update((artifact, json.loads(info)) for artifact, info in rows)
        return found

    def save_artifact_infos(self, infos: dict[str, dict[str, Any]]) -> None:
        """Store spec information by artifact digest (JSON-ready dicts)."""
        now = utcnow()
        with self.transaction():
            self.db.conn.executemany(
                "INSERT OR REPLACE INTO eval_artifacts (artifact, info, created_at) "
                "VALUES (?, ?, ?)",
                [(a, json.dumps(i, sort_keys=True), now) for a, i in infos.items()],
            )

    def cached_result_keys(self, artifacts: Iterable[str]) -> set[tuple[str, str]]:
        """The (projection, artifact) keys already evaluated for these artifacts."""
        keys: set[tuple[str, str]] = set()
        wanted = sorted(set(artifacts))
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            rows = self.db.execute(
                "SELECT projection, artifact FROM eval_results "
                f"WHERE artifact IN ({marks})",
                chunk,
            )
            keys.update((p, a) for p, a in rows)
        return keys

    def save_eval_results(self, results: Iterable[EvalResult]) -> None:
        """Store evaluation results by (projection, artifact), in one transaction."""
        now = utcnow()
        rows = [
            (
                r.projection,
                r.artifact,
                r.verdict,
                r.set_verdicts,
                r.blocker,
                r.error,
                zlib.compress(json.dumps(r.detail, sort_keys=True).encode(), 6),
                now,
            )
            for r in results
        ]
        with self.transaction():
            self.db.conn.executemany(
                "INSERT OR REPLACE INTO eval_results (projection, artifact, verdict, "
                "set_verdicts, blocker, error, detail, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def save_evaluation(
        self,
        run_id: int,
        hosts: Iterable[EvalHost],
        images: Iterable[EvalImage],
        pairs: Iterable[EvalPair],
    ) -> None:
        """Store what one evaluation run looked at, in one transaction."""
        conn = self.db.conn
        with self.transaction():
            conn.executemany(
                "INSERT INTO eval_hosts (run_id, idx, host, groups, snapshot_id, "
                "taken_at, feature_set, subject, arch, node_name, status, reason) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        run_id,
                        h.idx,
                        h.host,
                        json.dumps(list(h.groups)),
                        h.snapshot_id,
                        h.taken_at,
                        h.feature_set,
                        h.subject,
                        h.arch,
                        h.node_name,
                        h.status,
                        h.reason,
                    )
                    for h in hosts
                ],
            )
            conn.executemany(
                "INSERT INTO eval_images (run_id, idx, image, platform, artifact, "
                "status, reason, sets, references_, per_host) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        run_id,
                        i.idx,
                        i.image,
                        i.platform,
                        i.artifact,
                        i.status,
                        i.reason,
                        json.dumps(list(i.sets)),
                        json.dumps(list(i.references)),
                        int(i.per_host),
                    )
                    for i in images
                ],
            )
            conn.executemany(
                "INSERT INTO eval_pairs (run_id, image_idx, projection, artifact, "
                "members) VALUES (?, ?, ?, ?, ?)",
                [
                    (
                        run_id,
                        p.image_idx,
                        p.projection,
                        p.artifact,
                        json.dumps(list(p.members), separators=(",", ":")),
                    )
                    for p in pairs
                ],
            )

    def eval_hosts(self, run_id: int) -> list[EvalHost]:
        """The hosts of an evaluation run, in run order."""
        rows = self.db.execute(
            "SELECT idx, host, groups, snapshot_id, taken_at, feature_set, subject, "
            "arch, node_name, status, reason FROM eval_hosts WHERE run_id = ? "
            "ORDER BY idx",
            [run_id],
        )
        return [
            EvalHost(
                idx,
                host,
                tuple(json.loads(groups or "[]")),
                snapshot_id,
                taken_at or "",
                feature_set,
                subject,
                arch or "",
                node_name or "",
                status,
                reason or "",
            )
            for (
                idx,
                host,
                groups,
                snapshot_id,
                taken_at,
                feature_set,
                subject,
                arch,
                node_name,
                status,
                reason,
            ) in rows
        ]

    def eval_images(self, run_id: int) -> list[EvalImage]:
        """The images (one row per image and platform) of an evaluation run."""
        rows = self.db.execute(
            "SELECT idx, image, platform, artifact, status, reason, sets, "
            "references_, per_host FROM eval_images WHERE run_id = ? ORDER BY idx",
            [run_id],
        )
        return [
            EvalImage(
                idx,
                image,
                platform or "",
                artifact,
                status,
                reason or "",
                tuple(json.loads(sets or "[]")),
                tuple(json.loads(refs or "[]")),
                bool(per_host),
            )
            for idx, image, platform, artifact, status, reason, sets, refs, (
                per_host
            ) in rows
        ]

    def eval_pairs(self, run_id: int) -> list[EvalPair]:
        """The distinct evaluations of a run and the subjects (or hosts) in each."""
        rows = self.db.execute(
            "SELECT image_idx, projection, artifact, members FROM eval_pairs "
            "WHERE run_id = ? ORDER BY image_idx, projection",
            [run_id],
        )
        return [
            EvalPair(image_idx, projection, artifact, tuple(json.loads(members)))
            for image_idx, projection, artifact, members in rows
        ]

    def eval_verdicts(
        self, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], str]:
        """Stored verdicts by (projection, artifact), without the details."""
        wanted = sorted(set(keys))
        found: dict[tuple[str, str], str] = {}
        for start in range(0, len(wanted), 400):
            chunk = wanted[start : start + 400]
            marks = ", ".join("(?, ?)" for _ in chunk)
            rows = self.db.execute(
                "SELECT projection, artifact, verdict FROM eval_results WHERE "
                f"(projection, artifact) IN (VALUES {marks})",
                [value for key in chunk for value in key],
            )
            found.update(((p, a), v) for p, a, v in rows)
        return found

    def eval_results(
        self, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], EvalResult]:
        """Stored results by (projection, artifact); absent keys are left out."""
        wanted = sorted(set(keys))
        found: dict[tuple[str, str], EvalResult] = {}
        for start in range(0, len(wanted), 400):
            chunk = wanted[start : start + 400]
            marks = ", ".join("(?, ?)" for _ in chunk)
            params = [value for key in chunk for value in key]
            rows = self.db.execute(
                "SELECT projection, artifact, verdict, set_verdicts, blocker, error, "
                "detail FROM eval_results WHERE (projection, artifact) IN "
                f"(VALUES {marks})",
                params,
            )
            for projection, artifact, verdict, sets, blocker, error, detail in rows:
                found[(projection, artifact)] = EvalResult(
                    projection,
                    artifact,
                    verdict,
                    sets or "",
                    blocker or "",
                    error or "",
                    json.loads(zlib.decompress(detail)) if detail else {},
                )
        return found


def _feature_blob(features: Features) -> tuple[str, bytes]:
    """The digest and canonical bytes of a feature set as stored (no system.name)."""
    if "system.name" in features.attributes:
        features = features.copy()
        del features.attributes["system.name"]
    blob = features.canonical_json()
    return hashlib.sha256(blob).hexdigest(), blob


def _run(row: dict[str, Any]) -> Run:
    """A Run from its row."""
    return Run(
        id=row["id"],
        kind=row["kind"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        status=row["status"],
        settings=json.loads(row["settings"] or "{}"),
        counts=json.loads(row["counts"] or "{}"),
    )


def _snapshot(row: dict[str, Any]) -> Snapshot:
    """A Snapshot from its row."""
    return Snapshot(
        id=row["id"],
        host=row["host"],
        run_id=row["run_id"],
        taken_at=row["taken_at"],
        source=row["source"],
        status=row["status"],
        error=row["error"] or "",
        feature_set=row["feature_set"],
        node_name=row["node_name"] or "",
        duration_ms=row["duration_ms"],
        first_run_id=row.get("first_run_id"),
        first_taken_at=row.get("first_taken_at") or "",
    )


def monotonic_ms() -> int:
    """Milliseconds on a monotonic clock, for durations."""
    return int(time.monotonic() * 1000)


# Records of evaluation runs (see the "Evaluation runs and results" section of Store)


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

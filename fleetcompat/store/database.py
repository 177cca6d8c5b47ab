"""The store's database: schema, runs, hosts, snapshots and feature sets.

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
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import astuple, fields, replace
from pathlib import Path
from typing import Any

import sqlite_utils

from fleetcompat.errors import StoreError
from fleetcompat.features import Features
from fleetcompat.store.evaluations import EvaluationTables
from fleetcompat.store.records import OK, Host, HostStatus, Run, Snapshot, utcnow

SCHEMA_VERSION = 4
APPLICATION_ID = 0x46434D50  # "FCMP": marks the file as ours


class Store(EvaluationTables):
    """A fleetcompat database, opened (and created or upgraded) at `path`.

    With `create=False` a missing file is a StoreError rather than a new, empty
    database: commands that only read a fleet must not invent one from a typo.
    """

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        self.path = Path(path)
        self.readonly = False
        if not create and not self.path.exists():
            raise StoreError(
                f"{self.path}: no such database (`fleetcompat collect` or "
                "`fleetcompat import` makes one; --db names another)"
            )
        try:
            conn = self._connect()
            self.db = sqlite_utils.Database(conn)
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot open database: {exc}") from None
        self._feature_cache: dict[str, Features] = {}
        self._packed_cache: dict[int, tuple[Features, tuple[str, bytes, int]]] = {}

    def _connect(self) -> sqlite3.Connection:
        """A connection for writing or, on read-only storage, for reading only.

        A database on a read-only mount (a report carried on a USB stick, say) can
        still be listed and reported on; any write then fails with a StoreError.
        """
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            return conn
        except sqlite3.OperationalError:
            conn.close()
            if not self.path.is_file():
                raise

        self.readonly = True
        uri = self.path.resolve().as_uri()
        for options in ("mode=ro", "mode=ro&immutable=1"):
            conn = sqlite3.connect(f"{uri}?{options}", uri=True, isolation_level=None)
            try:
                conn.execute("PRAGMA user_version").fetchone()
                return conn
            except sqlite3.OperationalError:
                conn.close()
        raise StoreError(f"{self.path}: cannot open database, even for reading")

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
        if self.readonly:
            raise StoreError(f"{self.path}: the database is read-only here")
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
        if self.readonly:
            raise StoreError(
                f"{self.path}: read-only, and written by an older fleetcompat "
                f"(schema {version}); open it once where it can be written to upgrade"
            )

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

    def run_outcomes(self, run_id: int) -> dict[str, int]:
        """How many hosts this run saved with each outcome (its snapshots' status)."""
        rows = self.db.execute(
            "SELECT status, count(*) FROM snapshots WHERE run_id = ? GROUP BY status",
            [run_id],
        ).fetchall()
        return {status: count for status, count in rows}

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
            snapshot = Snapshot(
                0,
                host.name,
                run_id,
                taken_at,
                source,
                status,
                error,
                digest,
                node_name,
                duration_ms,
                first_run_id=run_id,
                first_taken_at=taken_at,
            )
            columns = [f.name for f in fields(Snapshot)][1:]
            cursor = self.db.execute(
                f"INSERT INTO snapshots ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' * len(columns))})",
                astuple(snapshot)[1:],
            )
        return replace(snapshot, id=int(cursor.lastrowid or 0))

    def _unchanged_snapshot(self, host: str, digest: str, node_name: str) -> int | None:
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
        rows = self.db.table("snapshots").rows_where(
            "host = ?", [host], order_by="id desc"
        )
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

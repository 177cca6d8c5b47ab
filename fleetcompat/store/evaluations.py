"""The evaluation tables of the store: runs of `evaluate`, shared results.

A run of `evaluate` stores what it looked at, not every cell: its hosts (each
pointing at a subject, the distinct feature set it was evaluated with), its images
(image and platform -> artifact), and its pairs (artifact, projection digest -> the
subjects that share that evaluation). Results are keyed by (projection digest,
artifact digest) and shared across hosts and across runs, so 10,000 hosts x 1,000
images cost rows per distinct evaluation, and a cell is a join: host -> subject ->
pair -> result.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any

import sqlite_utils

from fleetcompat.store.records import (
    EvalHost,
    EvalImage,
    EvalPair,
    EvalResult,
    utcnow,
)


class EvaluationTables:
    """The evaluation part of `Store`, kept apart to keep each part readable."""

    db: sqlite_utils.Database

    def transaction(self) -> AbstractContextManager[None]:
        """One write transaction (Store provides it)."""
        raise NotImplementedError

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

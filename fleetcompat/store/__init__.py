"""The SQLite store: runs, hosts, snapshots, feature sets and evaluation runs.

sqlite-utils is used in this package and nowhere else; the rest of the code sees
`Store` and the records below. `database` holds the schema and the collection side
(its docstring states the invariants), `evaluations` the evaluation side.
"""

from fleetcompat.store.database import APPLICATION_ID, SCHEMA_VERSION, Store
from fleetcompat.store.records import (
    OK,
    EvalHost,
    EvalImage,
    EvalPair,
    EvalResult,
    Host,
    HostStatus,
    Run,
    Snapshot,
    monotonic_ms,
    utcnow,
)

__all__ = [
    "APPLICATION_ID",
    "OK",
    "SCHEMA_VERSION",
    "EvalHost",
    "EvalImage",
    "EvalPair",
    "EvalResult",
    "Host",
    "HostStatus",
    "Run",
    "Snapshot",
    "Store",
    "monotonic_ms",
    "utcnow",
]

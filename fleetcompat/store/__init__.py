"""The SQLite store: runs, hosts, snapshots, feature sets and evaluation runs.

sqlite-utils is used in this package and nowhere else; the rest of the code sees
`Store` and the records below. `database` holds the schema and the collection side
(its docstring states the invariants), `evaluations` the evaluation side.
"""

import sys


def _import_sqlite_utils() -> None:
    """Import sqlite-utils without the pandas and numpy it would pull in.

    sqlite-utils imports both when they are installed, only to map their scalar
    types to column types; the store never hands it such values, and importing them
    is 0.4 s of every command's start-up (most of `fleetcompat collect`'s own).
    Where they are already loaded (a report in the same process), nothing changes.
    """
    blocked = [name for name in ("pandas", "numpy") if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import sqlite_utils  # noqa: F401
    finally:
        for name in blocked:
            del sys.modules[name]


_import_sqlite_utils()

from fleetcompat.store.database import APPLICATION_ID, SCHEMA_VERSION, Store  # noqa: E402
from fleetcompat.store.records import (  # noqa: E402
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

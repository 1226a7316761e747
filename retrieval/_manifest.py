"""The manifest: what is indexed, from which file version, with which ACL, and when.

The store stays the source of truth for *what is searchable*; the manifest records what the indexer
finished, so `--prune` knows what was indexed under a folder and users can list their index. It is
written after the store operations of a document complete: after a crash it may lag the store by
one document, and the next run (which compares against the store, not the manifest) repairs it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from retrieval._errors import StoreError

_SCHEMA = [
    # Append-only migrations, applied in order; user_version counts how many ran.
    """CREATE TABLE documents (
        source TEXT PRIMARY KEY,
        sha256 TEXT NOT NULL,
        acl TEXT NOT NULL,
        doc_type TEXT NOT NULL,
        chunks INTEGER NOT NULL,
        modified_at REAL NOT NULL,
        indexed_at REAL NOT NULL
    )""",
    # How the chunks were made (Indexer.plan_key): a file whose bytes, ACL and plan are unchanged is
    # skipped without being chunked again. Rows from before it have '' and are planned once more.
    "ALTER TABLE documents ADD COLUMN plan TEXT NOT NULL DEFAULT ''",
]


@dataclass(frozen=True)
class ManifestEntry:
    source: str
    sha256: str
    acl: list[str]
    doc_type: str
    chunks: int
    modified_at: float
    indexed_at: float
    plan: str = ""


class Manifest:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # One connection shared by the threads a server runs blocking work on; the lock serialises them.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._lock = threading.RLock()
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            for number, statement in enumerate(_SCHEMA[version:], start=version + 1):
                with self._db:
                    self._db.execute(statement)
                    self._db.execute(f"PRAGMA user_version = {number}")
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StoreError(
                f"The index manifest {path} is damaged ({exc}). It only lists what was indexed: move it "
                "aside and run `bastion index` on your folders again (unchanged chunks are kept), then "
                "`bastion index --check`."
            ) from exc

    def record(self, entry: ManifestEntry) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.source,
                    entry.sha256,
                    json.dumps(entry.acl),
                    entry.doc_type,
                    entry.chunks,
                    entry.modified_at,
                    entry.indexed_at,
                    entry.plan,
                ),
            )

    def forget(self, source: str) -> None:
        with self._lock, self._db:
            self._db.execute("DELETE FROM documents WHERE source = ?", (source,))

    def entries(self, under: str | None = None) -> Iterator[ManifestEntry]:
        query = "SELECT * FROM documents ORDER BY source"
        args: tuple[object, ...] = ()
        if under is not None:
            prefix = under.rstrip("/") + "/"
            query = "SELECT * FROM documents WHERE substr(source, 1, ?) = ? ORDER BY source"
            args = (len(prefix), prefix)
        with self._lock, closing(self._db.execute(query, args)) as cursor:
            rows = cursor.fetchall()  # read under the lock; callers may take their time iterating
        for row in rows:
            yield ManifestEntry(row[0], row[1], json.loads(row[2]), row[3], row[4], row[5], row[6], row[7])

    def close(self) -> None:
        self._db.close()


def now() -> float:
    return time.time()

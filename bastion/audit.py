"""The audit log: one record per question and answer, hash-chained so tampering shows.

Each record stores `hash = sha256(prev_hash || canonical JSON of the record)`, with its sequence number
inside the hashed JSON. `verify` recomputes the chain: an edited record breaks its own hash, a deleted
or reordered one breaks the link to its neighbour or leaves a gap in the sequence. The chain's head
hash, exported elsewhere now and then, also catches a log cut off at the end or rewritten whole.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

GENESIS = "0" * 64

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    record TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
)
"""


class AuditRecord(BaseModel):
    """What is kept about one exchange. Texts may be redacted; their hashes never are."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    time: float = Field(default_factory=time.time)
    user: str
    groups: list[str]
    key_id: str | None = None
    agent: str
    question_sha256: str
    question: str | None  # None when redacted
    chunk_ids: list[str] = Field(default_factory=list)
    model: str | None = None
    efforts: list[str] = Field(default_factory=list)  # one per model call, in order
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int | None = None
    latency_ms: float = 0.0
    answer_sha256: str
    refused: bool = False


class Verification(BaseModel):
    model_config = ConfigDict(frozen=True)

    records: int
    head: str
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _canonical(seq: int, record: dict[str, Any]) -> str:
    return json.dumps({"seq": seq, **record}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class AuditLog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def append(self, record: AuditRecord) -> str:
        """Append one record; returns its hash. Safe across threads and, via SQLite's write lock and
        BEGIN IMMEDIATE, across processes sharing the file."""
        data = record.model_dump()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                last = self._db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
                seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
                text = _canonical(seq, data)
                digest = hashlib.sha256((prev + text).encode()).hexdigest()
                self._db.execute("INSERT INTO audit VALUES (?, ?, ?, ?)", (seq, text, prev, digest))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return digest

    def records(self, *, since: float | None = None) -> Iterator[dict[str, Any]]:
        for (text,) in self._db.execute("SELECT record FROM audit ORDER BY seq"):
            record: dict[str, Any] = json.loads(text)
            if since is None or record["time"] >= since:
                yield record

    def verify(self) -> Verification:
        problems: list[str] = []
        prev, expected_seq, count = GENESIS, 1, 0
        for seq, text, stored_prev, stored_hash in self._db.execute(
            "SELECT seq, record, prev_hash, hash FROM audit ORDER BY seq"
        ):
            count += 1
            if seq != expected_seq:
                problems.append(f"record {seq}: expected sequence number {expected_seq} (records missing)")
            try:
                inner = json.loads(text).get("seq")
            except ValueError:
                inner = None
            if inner != seq:
                problems.append(f"record {seq}: its content says sequence {inner} (moved or edited)")
            if stored_prev != prev:
                problems.append(f"record {seq}: does not follow the record before it (deleted or reordered)")
            if hashlib.sha256((stored_prev + text).encode()).hexdigest() != stored_hash:
                problems.append(f"record {seq}: content does not match its hash (edited)")
            prev, expected_seq = stored_hash, seq + 1
        return Verification(records=count, head=prev, problems=problems)

"""The audit log: one record per event that touches documents, keys or answers, chained with a key.

Each record stores `hash = HMAC-SHA256(key, prev_hash || canonical JSON of the record)`, with its
sequence number inside the hashed JSON. `verify` recomputes the chain: an edited record breaks its own
hash, a deleted or reordered one breaks the link to its neighbour or leaves a gap in the sequence.
The key lives outside the database (`<data dir>/secrets/audit.key`, or BASTION_API_AUDIT_KEY), so
someone who can write the database but not read the key cannot recompute a chain they rewrote. What
a chain alone cannot show is records cut off at the end: `anchor` emits the head (sequence, hash,
time) for an append-only place elsewhere, and `verify` with those anchors finds any cut after them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bastion.errors import ConfigError
from bastion.settings import DataFiles

GENESIS = "0" * 64

AuditEvent = Literal[
    "answer",  # a chat completion answered (or declined)
    "answer_failed",  # a chat completion that failed or was cut off part-way
    "search",  # /v1/search: it returns whole chunk texts
    "upload",
    "delete",
    "reindex",
    "key_created",
    "key_revoked",
    "key_rotated",
    "auth_failed",  # rate-limited: one record per client per minute, with the count
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    record TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
)
"""


class AuditRecord(BaseModel):
    """What is kept about one event. Texts may be redacted; their hashes never are."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    time: float = Field(default_factory=time.time)
    event: AuditEvent = "answer"
    user: str | None  # None: a request no valid key stood for
    groups: list[str] = Field(default_factory=list)
    key_id: str | None = None
    agent: str | None = None
    question_sha256: str | None = None  # the question, or a search's query
    question: str | None = None  # None when redacted
    chunk_ids: list[str] = Field(default_factory=list)  # what the asker was shown
    image_sha256s: list[str] = Field(default_factory=list)  # the question's pictures (never their pixels)
    model: str | None = None
    efforts: list[str] = Field(default_factory=list)  # one per model call, in order
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int | None = None
    latency_ms: float = 0.0
    answer_sha256: str | None = None
    refused: bool = False
    target: str | None = None  # what the event acted on: a document, a key, a route
    detail: str | None = None  # e.g. how many failed attempts, or why an answer failed


class Anchor(BaseModel):
    """The head of the chain at one moment, kept somewhere the log's writer cannot rewrite."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seq: int
    hash: str
    time: float


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


def audit_key(data_dir: Path, configured: str | None = None, *, create: bool) -> bytes:
    """The chain's key: the configured one, else `<data dir>/secrets/audit.key` (made on first write,
    readable by its owner only). Reading a log needs the key that wrote it; a missing one is an error."""
    if configured:
        return configured.encode()
    path = DataFiles(data_dir).audit_key
    if not path.exists():
        if not create:
            raise ConfigError(
                f"The audit log's key {path} is missing: without it no chain can be checked. Restore it "
                "from your backup, or set BASTION_API_AUDIT_KEY to the key the log was written with."
            )
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32) + "\n")
    return path.read_text().strip().encode()


class AuditLog:
    def __init__(self, path: Path, key: bytes, *, create: bool = True) -> None:
        """`create=False` opens an existing log only: checking a log that is not there must fail, not
        create an empty one that verifies."""
        if not create and not path.exists():
            raise ConfigError(
                f"There is no audit log at {path}: nothing was recorded here, or it was removed."
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(
                f"The audit log {path} is damaged ({exc}). Keep the file for investigation, restore it "
                "from a backup, and check it with `bastion audit verify --anchor`."
            ) from exc
        self._key = key
        self._lock = threading.Lock()

    def _mac(self, prev: str, text: str) -> str:
        return hmac.new(self._key, (prev + text).encode(), hashlib.sha256).hexdigest()

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
                digest = self._mac(prev, text)
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

    def head(self) -> Anchor:
        """The chain's last record now, to be kept elsewhere (`bastion audit anchor`)."""
        last = self._db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq, digest = last if last else (0, GENESIS)
        return Anchor(seq=seq, hash=digest, time=time.time())

    def verify(self, anchors: Iterable[Anchor] = ()) -> Verification:
        """Recompute the chain with the key; with `anchors`, also check every anchored record is still
        there with the hash it had (a log cut off or rewritten after an anchor fails)."""
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
            if not hmac.compare_digest(self._mac(stored_prev, text), stored_hash):
                problems.append(
                    f"record {seq}: content does not match its keyed hash (edited, or another key)"
                )
            prev, expected_seq = stored_hash, seq + 1
        for anchor in (a for a in anchors if a.seq > 0):
            row = self._db.execute("SELECT hash FROM audit WHERE seq = ?", (anchor.seq,)).fetchone()
            if row is None:
                problems.append(
                    f"anchored record {anchor.seq} is missing: the log was cut after it (anchor of "
                    f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(anchor.time))} UTC)"
                )
            elif row[0] != anchor.hash:
                problems.append(f"record {anchor.seq} differs from its anchor: the log was rewritten")
        return Verification(records=count, head=prev, problems=problems)


def read_anchors(path: Path) -> list[Anchor]:
    """The anchors `bastion audit anchor --to FILE` appended, one JSON object per line."""
    anchors = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            anchors.append(Anchor.model_validate_json(line))
        except ValidationError as exc:
            raise ConfigError(
                f"{path}, line {number}, is not an audit anchor: {exc.errors()[0]['msg']}"
            ) from exc
    return anchors

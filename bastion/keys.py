"""API keys: the only way a request gets a Principal.

A key reads `bst_<id>_<secret>`. Only the id and a SHA-256 of the secret are stored (the secret is
256 random bits, so a slow password hash would add nothing but latency); lookups go by id and the
hash is compared in constant time. Keys are never shown again after `create`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from bastion.errors import ConfigError
from retrieval import Principal

Role = Literal["user", "admin"]
PREFIX = "bst"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    secret_sha256 TEXT NOT NULL,
    user TEXT NOT NULL,
    groups TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at REAL NOT NULL,
    revoked_at REAL
)
"""


class KeyInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    key_id: str
    user: str
    groups: list[str]
    role: Role
    created_at: float
    revoked_at: float | None = None

    @property
    def principal(self) -> Principal:
        return Principal(user=self.user, groups=frozenset(self.groups))


class KeyStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def create(self, user: str, groups: frozenset[str], *, role: Role = "user") -> tuple[str, KeyInfo]:
        """A new key for this principal: the key itself (shown once) and what is stored about it."""
        Principal(user=user, groups=groups)  # the same validation a search applies
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        info = KeyInfo(key_id=key_id, user=user, groups=sorted(groups), role=role, created_at=time.time())
        self._db.execute(
            "INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, ?, NULL)",
            (key_id, _digest(secret), user, json.dumps(info.groups), role, info.created_at),
        )
        return f"{PREFIX}_{key_id}_{secret}", info

    def authenticate(self, key: str) -> KeyInfo | None:
        """The key's record if the key is valid and not revoked, else None (never says which part failed)."""
        parts = key.strip().split("_", 2)
        if len(parts) != 3 or parts[0] != PREFIX:
            return None
        row = self._db.execute(
            "SELECT secret_sha256, user, groups, role, created_at, revoked_at FROM api_keys WHERE key_id = ?",
            (parts[1],),
        ).fetchone()
        # Compare even when the id is unknown, so timing does not tell ids apart.
        expected = row[0] if row else _digest("")
        if not hmac.compare_digest(expected, _digest(parts[2])) or row is None or row[5] is not None:
            return None
        return KeyInfo(
            key_id=parts[1], user=row[1], groups=json.loads(row[2]), role=row[3], created_at=row[4]
        )

    def list(self) -> list[KeyInfo]:
        rows = self._db.execute(
            "SELECT key_id, user, groups, role, created_at, revoked_at FROM api_keys ORDER BY created_at"
        ).fetchall()
        return [
            KeyInfo(
                key_id=r[0], user=r[1], groups=json.loads(r[2]), role=r[3], created_at=r[4], revoked_at=r[5]
            )
            for r in rows
        ]

    def revoke(self, key_id: str) -> KeyInfo:
        cursor = self._db.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
            (time.time(), key_id),
        )
        found = next((k for k in self.list() if k.key_id == key_id), None)
        if cursor.rowcount == 0:
            raise ConfigError(f"Key {key_id!r} is {'already revoked' if found else 'unknown'}.")
        assert found is not None  # the update just matched it
        return found


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()

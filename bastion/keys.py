"""API keys: the only way a request gets a Principal.

A key reads `bst_<id>_<secret>`. Only the id and a SHA-256 of the secret are stored (the secret is
256 random bits, so a slow password hash would add nothing but latency); lookups go by id and the
hash is compared in constant time. Keys are never shown again after `create` or `rotate`.

A key may expire (`expires_at`), and records when it was last used (to the minute: a write per
request would serialise the API on SQLite). The CLI's operator name is reserved: documents indexed
from the CLI without groups belong to it, so an API key standing for it would read them all.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any, Literal

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
_ADDED_COLUMNS = {"expires_at": "REAL", "last_used_at": "REAL", "replaced_by": "TEXT"}
_LAST_USED_EVERY_S = 60.0


class KeyInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    key_id: str
    user: str
    groups: list[str]
    role: Role
    created_at: float
    revoked_at: float | None = None
    expires_at: float | None = None
    last_used_at: float | None = None
    replaced_by: str | None = None  # the key that rotation made in its place

    @property
    def principal(self) -> Principal:
        return Principal(user=self.user, groups=frozenset(self.groups))


_COLUMNS = "key_id, user, groups, role, created_at, revoked_at, expires_at, last_used_at, replaced_by"


class KeyStore:
    def __init__(self, path: Path, *, reserved_users: frozenset[str] = frozenset()) -> None:
        """`reserved_users`: names no key may stand for (the CLI operator's)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)
            present = {row[1] for row in self._db.execute("PRAGMA table_info(api_keys)")}
            for column, kind in _ADDED_COLUMNS.items():
                if column not in present:  # a key store from before the column existed
                    self._db.execute(f"ALTER TABLE api_keys ADD COLUMN {column} {kind}")
        except sqlite3.DatabaseError as exc:
            raise ConfigError(
                f"The key store {path} is damaged ({exc}). Restore it from a backup, or move it aside "
                "and create the keys again (bastion keys create)."
            ) from exc
        self._reserved = reserved_users

    def close(self) -> None:
        self._db.close()

    def create(
        self,
        user: str,
        groups: frozenset[str],
        *,
        role: Role = "user",
        expires_in_s: float | None = None,
    ) -> tuple[str, KeyInfo]:
        """A new key for this principal: the key itself (shown once) and what is stored about it."""
        Principal(user=user, groups=groups)  # the same validation a search applies
        if user in self._reserved:
            raise ConfigError(
                f"{user!r} is the CLI operator's name (BASTION_USER): it owns every document indexed from "
                "the CLI without groups, so no API key may stand for it. Choose another user name."
            )
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        now = time.time()
        info = KeyInfo(
            key_id=key_id,
            user=user,
            groups=sorted(groups),
            role=role,
            created_at=now,
            expires_at=now + expires_in_s if expires_in_s is not None else None,
        )
        self._db.execute(
            f"INSERT INTO api_keys (secret_sha256, {_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, NULL, ?, NULL, NULL)",
            (_digest(secret), key_id, user, json.dumps(info.groups), role, now, info.expires_at),
        )
        return f"{PREFIX}_{key_id}_{secret}", info

    def rotate(self, key_id: str) -> tuple[str, KeyInfo]:
        """A new key for the same user, groups and role (and the same lifetime, from now); the old one
        is revoked in the same transaction, so exactly one of them works at any moment."""
        old = self.get(key_id)
        if old is None or old.revoked_at is not None:
            raise ConfigError(
                f"Key {key_id!r} is {'revoked' if old else 'unknown'}: there is nothing to rotate."
            )
        lifetime = old.expires_at - old.created_at if old.expires_at is not None else None
        self._db.execute("BEGIN IMMEDIATE")
        try:
            key, info = self.create(old.user, frozenset(old.groups), role=old.role, expires_in_s=lifetime)
            self._db.execute(
                "UPDATE api_keys SET revoked_at = ?, replaced_by = ? WHERE key_id = ?",
                (time.time(), info.key_id, key_id),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return key, info

    def get(self, key_id: str) -> KeyInfo | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
        return _info(row) if row else None

    def authenticate(self, key: str) -> KeyInfo | None:
        """The key's record if the key is valid and not revoked, else None (never says which part failed)."""
        parts = key.strip().split("_", 2)
        if len(parts) != 3 or parts[0] != PREFIX:
            return None
        row = self._db.execute(
            f"SELECT secret_sha256, {_COLUMNS} FROM api_keys WHERE key_id = ?", (parts[1],)
        ).fetchone()
        # Compare even when the id is unknown, so timing does not tell ids apart.
        expected = row[0] if row else _digest("")
        if not hmac.compare_digest(expected, _digest(parts[2])) or row is None:
            return None
        info, now = _info(row[1:]), time.time()
        if info.revoked_at is not None or (info.expires_at is not None and now >= info.expires_at):
            return None
        if info.user in self._reserved:  # made before the name was reserved: never honoured
            return None
        if info.last_used_at is None or now - info.last_used_at >= _LAST_USED_EVERY_S:
            self._db.execute("UPDATE api_keys SET last_used_at = ? WHERE key_id = ?", (now, info.key_id))
            info = info.model_copy(update={"last_used_at": now})
        return info

    def list(self) -> list[KeyInfo]:
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at").fetchall()
        return [_info(r) for r in rows]

    def revoke(self, key_id: str) -> KeyInfo:
        cursor = self._db.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
            (time.time(), key_id),
        )
        found = self.get(key_id)
        if cursor.rowcount == 0:
            raise ConfigError(f"Key {key_id!r} is {'already revoked' if found else 'unknown'}.")
        assert found is not None  # the update just matched it
        return found


def _info(row: tuple[Any, ...]) -> KeyInfo:
    key_id, user, groups, role, created, revoked, expires, used, replaced = row
    return KeyInfo(
        key_id=key_id,
        user=user,
        groups=json.loads(groups),
        role=role,
        created_at=created,
        revoked_at=revoked,
        expires_at=expires,
        last_used_at=used,
        replaced_by=replaced,
    )


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()

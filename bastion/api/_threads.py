"""OpenAI clients re-send the whole conversation on every call; Bastion keeps threads. This maps a
conversation as the client will send it next (a hash of its owner and messages) to the thread that
holds it, so the next call continues that thread — with its prefix cache — instead of starting over."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


class ConversationMap:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS conversations (key TEXT PRIMARY KEY, thread_id TEXT NOT NULL)"
        )
        self._lock = threading.Lock()

    def thread_of(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT thread_id FROM conversations WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def remember(self, key: str, thread_id: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO conversations VALUES (?, ?)", (key, thread_id))

    def close(self) -> None:
        self._db.close()

"""Wiring that picks parts by settings: the thread checkpointer (SQLite by default, real Postgres)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.errors import ConfigError
from bastion.settings import Settings
from bastion.wiring import open_checkpointer


async def test_threads_default_to_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    async with open_checkpointer(settings) as saver:
        assert type(saver).__name__ == "AsyncSqliteSaver"
    assert (tmp_path / "threads.sqlite").exists()


async def test_postgres_needs_a_url_and_a_reachable_server(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="BASTION_AGENT_POSTGRES_URL"):
        async with open_checkpointer(Settings(data_dir=tmp_path, agent={"checkpointer": "postgres"})):
            pass
    unreachable = {"checkpointer": "postgres", "postgres_url": "postgresql://nobody@127.0.0.1:9/none"}
    with pytest.raises(ConfigError, match="Cannot open the Postgres checkpointer"):
        async with open_checkpointer(Settings(data_dir=tmp_path, agent=unreachable)):
            pass


async def test_postgres_checkpointer_sets_itself_up_on_a_real_server(
    tmp_path: Path, postgres_url: str
) -> None:
    settings = Settings(data_dir=tmp_path, agent={"checkpointer": "postgres", "postgres_url": postgres_url})
    for _ in range(2):  # set-up is idempotent: a second replica starting finds the tables there
        async with open_checkpointer(settings) as saver:
            assert type(saver).__name__ == "AsyncPostgresSaver"
            assert [c async for c in saver.alist({"configurable": {"thread_id": "none"}})] == []

"""Forgetting documents in saved conversations: a QA thread keeps the text of every passage it showed,
so deleting a document must delete the threads that hold its text, not only its chunks.

The whole thread goes (every checkpoint and pending write), because LangGraph's checkpoints are
immutable snapshots: an earlier snapshot would still hold the text. The next turn of such a
conversation starts afresh; its question is answered from what the index holds now.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver


async def forget_sources(checkpointer: BaseCheckpointSaver[str], sources: Collection[str]) -> list[str]:
    """Delete every thread whose saved state holds a passage of one of `sources`; returns their ids."""
    wanted = set(sources)
    if not wanted:
        return []
    doomed: set[str] = set()
    async for saved in checkpointer.alist(None):
        thread = str(saved.config["configurable"]["thread_id"])
        if thread in doomed:
            continue
        values: dict[str, Any] = saved.checkpoint.get("channel_values") or {}
        if any(isinstance(e, dict) and e.get("source") in wanted for e in values.get("evidence") or []):
            doomed.add(thread)
    for thread in sorted(doomed):
        await checkpointer.adelete_thread(thread)
    return sorted(doomed)

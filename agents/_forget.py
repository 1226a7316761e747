"""What saved conversations must not keep: the text of deleted documents, and turns that failed.

A QA thread keeps the text of every passage it showed, so deleting a document must delete the threads
that hold its text, not only its chunks. A turn that fails (the model refused an over-long prompt,
timed out, the client went away) leaves nothing behind: the thread is put back as it was before it.

The whole thread goes (every checkpoint and pending write), because LangGraph's checkpoints are
immutable snapshots: an earlier snapshot would still hold the text. The next turn of such a
conversation starts afresh; its question is answered from what the index holds now.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple


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


@asynccontextmanager
async def kept_only_if_done(checkpointer: object, thread_id: str) -> AsyncIterator[None]:
    """Run one turn of `thread_id` under the graph's `checkpointer`; if the turn raises or is
    cancelled, the checkpoints it wrote are removed and the thread is left exactly as before the turn
    (or absent, for a new thread).

    LangGraph saves a checkpoint after every step, so a turn failing in its answer step has already
    stored its question and passages. Savers offer no "delete after" (SQLite's prune and
    delete_for_runs are not implemented), so the thread is deleted and its last good checkpoint put
    back; earlier checkpoints of the thread go with it, which nothing here reads (a thread's history
    lives in its latest state).
    """
    if not isinstance(checkpointer, BaseCheckpointSaver):  # no checkpointer: nothing is stored
        yield
        return
    config: Any = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    before = await checkpointer.aget_tuple(config)
    try:
        yield
    except BaseException:
        # Shielded: a second cancellation must not leave the thread half restored.
        await asyncio.shield(_restore(checkpointer, thread_id, before))
        raise


async def _restore(
    checkpointer: BaseCheckpointSaver[Any], thread_id: str, before: CheckpointTuple | None
) -> None:
    await checkpointer.adelete_thread(thread_id)
    if before is not None:
        checkpoint = before.checkpoint
        config: Any = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        # Every channel's version counts as new, so savers that keep values apart (Postgres's blobs)
        # write them all again.
        await checkpointer.aput(config, checkpoint, before.metadata, dict(checkpoint["channel_versions"]))

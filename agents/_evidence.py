"""What a QA turn shows the model: its hits, widened to their sections, and whole documents pinned.

The search picks the hits; with `section_tokens` each hit brings its neighbours under the same heading
(agents/_sections.py), and with a pinning budget a hit's whole document is shown when it fits, on a
first turn the next-ranked documents too (agents/_pin.py). Every chunk shown is an exact span.
"""

from __future__ import annotations

import asyncio

from agents._pin import FILL_CANDIDATES, plan_shown
from agents._sections import widen
from retrieval import Chunk, Principal, Retriever, SearchMode


async def turn_evidence(
    hits: list[Chunk],
    retriever: Retriever,
    principal: Principal,
    *,
    query: str,
    mode: SearchMode,
    section_tokens: int,
    pin_budget: int,
    first_turn: bool,
    in_window: list[Chunk],
) -> list[Chunk]:
    """The chunks to show this turn, hits first by rank; `in_window` is what the transcript window
    already shows (it counts against the pinning budget and is not shown again)."""
    store = retriever.store
    shown = hits
    if section_tokens and hits:
        shown = await asyncio.to_thread(
            widen,
            hits,
            lambda source, first, last: store.document(
                source, principal, limit=last - first + 1, positions=(first, last)
            ),
            tokens=section_tokens,
        )
    if not pin_budget or not hits:
        return shown
    also: list[str] = []
    if first_turn:
        ranked = await asyncio.to_thread(
            retriever.search_documents, query, principal, limit=FILL_CANDIDATES, mode=mode
        )
        also = [d.source for d in ranked]
    return await asyncio.to_thread(
        plan_shown,
        shown,
        lambda source, limit: store.document(source, principal, limit=limit),
        shown=in_window,
        budget=pin_budget,
        also=also,
    )

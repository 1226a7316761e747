"""Pinning whole documents into a QA thread's cached prefix.

A conversation about one contract or a policy bundle keeps asking about the same few documents.
Shown chunk by chunk, every follow-up retrieves a few passages it has not shown yet and the server
must prefill them after the cached prefix; shown whole the first time retrieval reaches them, the
documents sit in the prefix and later turns add only their question and answer (the coding
assistant packs a repository for the same reason: docs/prompt-layout.md). Retrieval still chooses:
a document is pinned when one of this turn's hits comes from it and it fits the thread's budget;
hits from documents that do not fit are shown alone, as before. A thread's first turn then fills
what is left of the budget with the next documents a document-level search ranks for its question,
so a conversation over a bundle that fits finds every document already in the prefix and its
follow-ups prefill nothing but their question and the last answer. A pinned document is its chunks
in document order, each numbered like any passage, so a citation is still an exact span.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

from retrieval import Chunk

FILL_CANDIDATES = 20
"""Documents a first turn ranks to fill its pinning budget with."""
CHARS_PER_TOKEN = 3.5
"""A cautious estimate for English prose (Mistral's and Qwen's tokenizers give about 4): the budget
is a bound on the prompt, so it should err long. Counting on the server would cost a call per document."""

MIN_CHUNK_TOKENS = 16
"""No more chunks are read for a document than the budget could hold at this size, so a long
document is refused by its chunk count without reading it whole."""


def estimated_tokens(chunks: Iterable[Chunk]) -> int:
    return math.ceil(sum(len(c.text) + len(c.title) + len(c.source) for c in chunks) / CHARS_PER_TOKEN)


def plan_shown(
    hits: list[Chunk],
    fetch: Callable[[str, int], list[Chunk] | None],
    *,
    shown: Iterable[Chunk],
    budget: int,
    also: Sequence[str] = (),
) -> list[Chunk]:
    """What this turn shows, in order: for each hit by rank, its whole document when that fits the
    budget with everything already `shown` in the transcript window (or is already shown), else the
    hit alone; then each of the documents `also` names, whole, while it fits. `fetch(source, limit)`
    reads a document's readable chunks in order, None past `limit`."""
    shown = list(shown)
    shown_ids = {c.chunk_id for c in shown}
    used = estimated_tokens(shown)
    planned: list[Chunk] = []
    seen: set[str] = set()
    documents: dict[str, list[Chunk] | None] = {}

    def add(chunk: Chunk) -> None:
        nonlocal used
        if chunk.chunk_id in seen:
            return
        seen.add(chunk.chunk_id)
        planned.append(chunk)
        if chunk.chunk_id not in shown_ids:
            used += estimated_tokens([chunk])

    def pin(source: str, *, holding: str | None = None) -> None:
        """Show `source` whole when it fits what is left of the budget (and, for a hit's document,
        still holds the hit: the document may have been re-indexed since the search)."""
        whole = fetch(source, max(1, budget // MIN_CHUNK_TOKENS))
        fits = bool(whole) and (holding is None or any(c.chunk_id == holding for c in whole or []))
        new = [c for c in whole or [] if c.chunk_id not in shown_ids and c.chunk_id not in seen]
        documents[source] = whole if fits and used + estimated_tokens(new) <= budget else None
        for chunk in documents[source] or []:
            add(chunk)

    for hit in hits:
        if hit.source not in documents:
            pin(hit.source, holding=hit.chunk_id)
        add(hit)
    for source in also:
        if source not in documents:
            pin(source)
    return planned

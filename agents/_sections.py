"""Widening a retrieved passage to its section (parent/child retrieval).

Chunks are small so that a search matches precisely (128 tokens by default), but a small chunk can
cut an answer in half: the rule in one chunk, its exception in the next. Widened, each hit is shown
with its neighbours from the same section (chunks indexed under the same header: title and heading
path, for code the enclosing definition) up to a token budget per hit, nearest first. Every neighbour
is an ordinary numbered passage, so a citation is still an exact span of the source.
"""

from __future__ import annotations

from collections.abc import Callable

from agents._pin import MIN_CHUNK_TOKENS, estimated_tokens
from retrieval import Chunk

MAX_RADIUS = 32
"""Positions read on each side of a hit at most, whatever the budget."""


def section_around(hit: Chunk, nearby: list[Chunk], tokens: int) -> list[Chunk]:
    """`hit` and its neighbours in `nearby` that share its section and are contiguous with it, taken
    one after and one before in turn while the whole stays within `tokens`; in document order."""
    same = {c.position: c for c in nearby if c.context == hit.context and c.source == hit.source}
    chosen = {hit.position: hit}
    used = estimated_tokens([hit])
    edges = {1: hit.position + 1, -1: hit.position - 1}  # the next position to try on each side
    while edges:
        for side in (1, -1):
            if side not in edges:
                continue
            neighbour = same.get(edges[side])
            cost = estimated_tokens([neighbour]) if neighbour is not None else 0
            if neighbour is None or used + cost > tokens:
                del edges[side]  # a side stops at the section's edge or at the budget, for good
                continue
            chosen[neighbour.position] = neighbour
            used += cost
            edges[side] += side
    return [chosen[p] for p in sorted(chosen)]


def widen(
    hits: list[Chunk], fetch: Callable[[str, int, int], list[Chunk] | None], *, tokens: int
) -> list[Chunk]:
    """Each hit by rank with its section around it (`section_around`), every chunk once.
    `fetch(source, first, last)` reads the readable live chunks at those positions."""
    radius = min(MAX_RADIUS, max(1, tokens // MIN_CHUNK_TOKENS))
    shown: list[Chunk] = []
    seen: set[str] = set()
    for hit in hits:
        nearby = fetch(hit.source, max(0, hit.position - radius), hit.position + radius) or []
        for chunk in section_around(hit, nearby, tokens):
            if chunk.chunk_id not in seen:
                seen.add(chunk.chunk_id)
                shown.append(chunk)
    return shown

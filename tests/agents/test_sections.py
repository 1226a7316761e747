"""A hit widened to its section (agents/_sections.py): parent/child retrieval."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agents._pin import estimated_tokens
from agents._sections import section_around, widen
from retrieval import Chunk
from tests.agents.test_pin import _chunk as pinned_chunk


def _chunk(source: str, position: int, section: str) -> Chunk:
    return pinned_chunk(source, position).model_copy(update={"context": f"{source} > {section}"})


def _document(source: str, sections: list[tuple[str, int]]) -> list[Chunk]:
    """Chunks in order: `sections` lists each section's name and how many chunks it has."""
    names = [name for name, count in sections for _ in range(count)]
    return [_chunk(source, p, name) for p, name in enumerate(names)]


def _fetcher(library: dict[str, list[Chunk]], calls: list[tuple[str, int, int]] | None = None):  # type: ignore[no-untyped-def]
    def fetch(source: str, first: int, last: int) -> list[Chunk] | None:
        if calls is not None:
            calls.append((source, first, last))
        return [c for c in library.get(source, []) if first <= c.position <= last]

    return fetch


def test_a_hit_grows_into_its_section_nearest_first_and_stops_at_its_edges() -> None:
    doc = _document("policy.md", [("Scope", 2), ("Leave", 4), ("Travel", 3)])
    one = estimated_tokens(doc[:1])
    # Room for the hit and two neighbours: one after, one before, in document order.
    assert [c.position for c in section_around(doc[3], doc, 3 * one)] == [2, 3, 4]
    # Room for everything: the section (positions 2-5), never a chunk of Scope or Travel.
    assert [c.position for c in section_around(doc[3], doc, 100 * one)] == [2, 3, 4, 5]
    # A hit at the section's first chunk grows only forwards.
    assert [c.position for c in section_around(doc[2], doc, 3 * one)] == [2, 3, 4]
    # No room: the hit alone, even when the hit is over the budget by itself.
    assert section_around(doc[3], doc, 1) == [doc[3]]


def test_a_gap_in_what_the_store_returned_ends_the_section() -> None:
    """A neighbour the asker may not read (or a hidden one) is not returned: the section must not
    jump over it, or the passages shown would read as contiguous text when they are not."""
    doc = _document("policy.md", [("Leave", 6)])
    readable = [c for c in doc if c.position != 1]
    assert [c.position for c in section_around(doc[2], readable, 10_000)] == [2, 3, 4, 5]


def test_widened_hits_keep_rank_order_and_show_each_chunk_once() -> None:
    library = {
        "a.md": _document("a.md", [("One", 3), ("Two", 3)]),
        "b.md": _document("b.md", [("Only", 2)]),
    }
    hits = [library["b.md"][1], library["a.md"][4], library["a.md"][3], library["a.md"][0]]
    calls: list[tuple[str, int, int]] = []
    shown = widen(hits, _fetcher(library, calls), tokens=10_000)
    # b's section, a's "Two" (its second hit adds nothing new), then a's "One".
    b_only, a_two, a_one = ["b.md#0", "b.md#1"], ["a.md#3", "a.md#4", "a.md#5"], ["a.md#0", "a.md#1"]
    assert [c.chunk_id for c in shown] == [*b_only, *a_two, *a_one, "a.md#2"]
    assert all(first <= last for _, first, last in calls) and calls[0][1] == 0


@given(
    sections=st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=6),
    hit_ranks=st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=5),
    budget_chunks=st.integers(min_value=0, max_value=12),
)
def test_widening_never_crosses_a_section_or_the_budget(
    sections: list[int], hit_ranks: list[int], budget_chunks: int
) -> None:
    doc = _document("d.md", [(f"s{i}", n) for i, n in enumerate(sections)])
    hits = list({doc[r % len(doc)].chunk_id: doc[r % len(doc)] for r in hit_ranks}.values())
    tokens = budget_chunks * estimated_tokens(doc[:1])
    shown = widen(hits, _fetcher({"d.md": doc}), tokens=tokens)
    ids = [c.chunk_id for c in shown]
    assert len(ids) == len(set(ids)) and {h.chunk_id for h in hits} <= set(ids)
    for hit in hits:
        mine = section_around(hit, doc, tokens)
        positions = [c.position for c in mine]
        assert positions == list(range(positions[0], positions[-1] + 1)), "contiguous"
        assert {c.context for c in mine} == {hit.context}, "one section"
        assert len(mine) == 1 or estimated_tokens(mine) <= tokens, "within the budget"

"""Which chunks a QA turn shows when whole documents may be pinned (agents/_pin.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agents._pin import estimated_tokens, plan_shown
from retrieval import Chunk


def _chunk(source: str, position: int, size: int = 70) -> Chunk:
    return Chunk(
        chunk_id=f"{source}#{position}",
        source=source,
        start=position * size,
        end=(position + 1) * size,
        text="x" * size,
        position=position,
        content_sha256="0" * 64,
        acl=["user:u"],
    )


def _library(sizes: dict[str, int]) -> dict[str, list[Chunk]]:
    return {source: [_chunk(source, p) for p in range(n)] for source, n in sizes.items()}


def _fetcher(library: dict[str, list[Chunk]], calls: list[tuple[str, int]] | None = None):  # type: ignore[no-untyped-def]
    def fetch(source: str, limit: int) -> list[Chunk] | None:
        if calls is not None:
            calls.append((source, limit))
        chunks = library.get(source, [])
        return None if len(chunks) > limit else chunks

    return fetch


def test_the_hits_documents_are_shown_whole_in_rank_then_document_order() -> None:
    library = _library({"a.md": 3, "b.md": 2})
    hits = [library["b.md"][1], library["a.md"][2], library["b.md"][0]]
    shown = plan_shown(hits, _fetcher(library), shown=[], budget=10_000)
    assert [c.chunk_id for c in shown] == ["b.md#0", "b.md#1", "a.md#0", "a.md#1", "a.md#2"]


def test_a_document_over_the_budget_is_shown_by_its_hits_alone() -> None:
    library = _library({"small.md": 2, "long.md": 40})
    hits = [library["long.md"][7], library["small.md"][0], library["long.md"][3]]
    budget = estimated_tokens(library["small.md"]) + estimated_tokens(hits) + 5
    shown = plan_shown(hits, _fetcher(library), shown=[], budget=budget)
    assert [c.chunk_id for c in shown] == ["long.md#7", "small.md#0", "small.md#1", "long.md#3"]


def test_what_the_window_already_shows_counts_against_the_budget_and_is_not_repeated() -> None:
    library = _library({"a.md": 3, "b.md": 3})
    budget = estimated_tokens(library["a.md"]) + estimated_tokens(library["b.md"][:1]) + 5
    # a.md is pinned already: b.md no longer fits, so only its hit is added.
    shown = plan_shown(
        [library["b.md"][2], library["a.md"][1]], _fetcher(library), shown=library["a.md"], budget=budget
    )
    assert [c.chunk_id for c in shown] == ["b.md#2", "a.md#0", "a.md#1", "a.md#2"]


def test_a_first_turn_fills_the_budget_with_further_ranked_documents_while_they_fit() -> None:
    library = _library({"hit.md": 2, "big.md": 30, "next.md": 3, "last.md": 1})
    budget = estimated_tokens([*library["hit.md"], *library["next.md"], *library["last.md"]]) + 5
    also = ["hit.md", "big.md", "next.md", "last.md", "gone.md"]
    shown = plan_shown([library["hit.md"][1]], _fetcher(library), shown=[], budget=budget, also=also)
    # big.md does not fit and is skipped whole; the smaller ones after it still fit.
    assert [c.chunk_id for c in shown] == [
        "hit.md#0",
        "hit.md#1",
        "next.md#0",
        "next.md#1",
        "next.md#2",
        "last.md#0",
    ]


def test_a_long_document_is_refused_by_its_chunk_count_not_read_whole() -> None:
    library = _library({"huge.md": 5_000})
    calls: list[tuple[str, int]] = []
    shown = plan_shown([library["huge.md"][9]], _fetcher(library, calls), shown=[], budget=4_000)
    assert [c.chunk_id for c in shown] == ["huge.md#9"]
    assert calls == [("huge.md", 4_000 // 16)]


def test_a_hit_its_document_no_longer_holds_is_shown_alone() -> None:
    """Re-indexed between search and fetch: the document read back is another version."""
    library = _library({"a.md": 2})
    stale = _chunk("a.md", 5)
    shown = plan_shown([stale], _fetcher(library), shown=[], budget=10_000)
    assert [c.chunk_id for c in shown] == ["a.md#5"]


@given(
    sizes=st.dictionaries(st.sampled_from("abcdef"), st.integers(1, 12), min_size=1),
    picks=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 11)), min_size=1, max_size=8),
    window=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 11)), max_size=6),
    budget=st.integers(0, 600),
    also=st.lists(st.sampled_from("abcdefg"), max_size=4),
)
def test_every_hit_is_shown_once_and_pinning_stays_within_the_budget(
    sizes: dict[str, int],
    picks: list[tuple[int, int]],
    window: list[tuple[int, int]],
    budget: int,
    also: list[str],
) -> None:
    library = _library(sizes)
    sources = sorted(library)

    def pick(d: int, p: int) -> Chunk:
        chunks = library[sources[d % len(sources)]]
        return chunks[p % len(chunks)]

    hits = list({c.chunk_id: c for c in (pick(d, p) for d, p in picks)}.values())
    before = list({c.chunk_id: c for c in (pick(d, p) for d, p in window)}.values())
    shown = plan_shown(hits, _fetcher(library), shown=before, budget=budget, also=also)
    ids = [c.chunk_id for c in shown]
    assert len(ids) == len(set(ids))
    assert {h.chunk_id for h in hits} <= set(ids)  # retrieval's hits are never dropped
    pinned_extra = [c for c in shown if c.chunk_id not in {h.chunk_id for h in hits}]
    for source in {c.source for c in pinned_extra}:  # a document is pinned whole, in order
        mine = [c for c in shown if c.source == source]
        assert [c.position for c in mine] == list(range(len(library[source])))
    # Pinning adds a document only while everything shown so far fits: hits shown after the last
    # pinned document may go past the budget, the pinned text never does.
    if pinned_extra:
        last = max(i for i, c in enumerate(shown) if c.source in {p.source for p in pinned_extra})
        before_ids = {c.chunk_id for c in before}
        total = before + [c for c in shown[: last + 1] if c.chunk_id not in before_ids]
        assert estimated_tokens(total) <= budget

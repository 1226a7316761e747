from __future__ import annotations

from agents._citations import cited_numbers, strip_invalid_markers, verify
from retrieval import Chunk


def _chunk(n: int) -> Chunk:
    return Chunk(
        chunk_id=f"id{n}",
        source=f"/doc{n}.md",
        start=0,
        end=4,
        text=f"text {n}",
        title="",
        position=0,
        content_sha256="x",
        acl=["user:u"],
    )


def test_inline_markers_and_declared_numbers_are_merged_in_order() -> None:
    assert cited_numbers("A [2] and B [1] and again [2].", [3, 1]) == [2, 1, 3]


def test_numbers_that_name_no_passage_are_dropped_and_reported() -> None:
    citations, invalid = verify([1, 4, 0, 2], [_chunk(1), _chunk(2)])
    assert [c.chunk_id for c in citations] == ["id1", "id2"]
    assert invalid == [4, 0]
    assert citations[1].text == "text 2" and citations[1].source == "/doc2.md"


def test_invalid_markers_are_removed_from_the_answer() -> None:
    assert strip_invalid_markers("Yes [1][7].", [7]) == "Yes [1]."

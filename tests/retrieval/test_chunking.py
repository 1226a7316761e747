from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from retrieval import chunk_text

_WORDS = st.sampled_from(
    ["alpha", "beta.", "gamma!", "# Heading", "## Sub", "x" * 120, "\n", "\n\n", " ", "é", "\t"]
)
TEXTS = st.lists(_WORDS, max_size=200).map(" ".join) | st.text(max_size=3000)


@settings(max_examples=300, deadline=None)
@given(text=TEXTS, max_chars=st.integers(min_value=50, max_value=1200))
def test_spans_are_exact_ordered_disjoint_bounded_and_complete(text: str, max_chars: int) -> None:
    spans = chunk_text(text, max_chars=max_chars)
    covered = [False] * len(text)
    previous_end = 0
    for span in spans:
        piece = text[span.start : span.end]
        assert piece and piece == piece.strip(), "a chunk starts and ends on non-space"
        assert span.start >= previous_end, "chunks are ordered and never overlap"
        assert span.end - span.start <= max_chars
        previous_end = span.end
        for i in range(span.start, span.end):
            covered[i] = True
    missing = [i for i, c in enumerate(text) if not c.isspace() and not covered[i]]
    assert not missing, "every non-space character lands in some chunk"


def test_headings_start_chunks_and_title_them() -> None:
    text = "# Policy\n\nIntro text.\n\n## Passwords\n\nAt least 14 characters.\n\n## Laptops\n\nEncrypt them."
    spans = chunk_text(text, max_chars=500)
    assert [text[s.start : s.end].split("\n")[0] for s in spans] == ["# Policy", "## Passwords", "## Laptops"]
    assert [s.title for s in spans] == ["Policy", "Passwords", "Laptops"]


def test_long_paragraph_is_cut_at_sentence_ends() -> None:
    sentence = "Staff must encrypt every laptop before first use. "
    text = sentence * 40
    spans = chunk_text(text, max_chars=200)
    assert len(spans) > 5
    assert all(text[s.start : s.end].endswith(".") for s in spans)

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from retrieval import Section, chunk_text, markdown_sections

_WORDS = st.sampled_from(
    ["alpha", "beta.", "gamma!", "# Heading", "## Sub", "x" * 120, "\n", "\n\n", " ", "é", "\t"]
)
TEXTS = st.lists(_WORDS, max_size=200).map(" ".join) | st.text(max_size=3000)


def _words(text: str) -> int:
    # A stand-in for a tokenizer: monotone in the prefix, and not proportional to characters.
    return len(text.split()) + sum(len(w) // 8 for w in text.split())


@settings(max_examples=300, deadline=None)
@given(text=TEXTS, budget=st.integers(min_value=16, max_value=1200), by_words=st.booleans())
def test_spans_are_exact_ordered_disjoint_bounded_and_complete(
    text: str, budget: int, by_words: bool
) -> None:
    measure = _words if by_words else len
    spans = chunk_text(text, budget=budget, measure=measure)
    covered = [False] * len(text)
    previous_end = 0
    for span in spans:
        piece = text[span.start : span.end]
        assert piece and piece == piece.strip(), "a chunk starts and ends on non-space"
        assert span.start >= previous_end, "chunks are ordered and never overlap"
        assert measure(piece) <= budget
        assert len(piece) <= 32 * budget, "no chunk is longer than 32 characters per budget unit"
        previous_end = span.end
        for i in range(span.start, span.end):
            covered[i] = True
    missing = [i for i, c in enumerate(text) if not c.isspace() and not covered[i]]
    assert not missing, "every non-space character lands in some chunk"


def test_headings_start_chunks_and_title_them_with_their_path() -> None:
    text = "# Policy\n\nIntro text.\n\n## Passwords\n\nAt least 14 characters.\n\n## Laptops\n\nEncrypt them."
    spans = chunk_text(text, budget=500)
    assert [text[s.start : s.end].split("\n")[0] for s in spans] == ["# Policy", "## Passwords", "## Laptops"]
    assert [s.title for s in spans] == ["Policy", "Policy > Passwords", "Policy > Laptops"]


def test_chunks_never_cross_sections_and_keep_pages() -> None:
    text = "page one text\n\npage two text"
    sections = [Section(0, 13, "p1", page=1), Section(15, len(text), "p2", page=2)]
    spans = chunk_text(text, budget=500, sections=sections)
    assert [(text[s.start : s.end], s.page) for s in spans] == [("page one text", 1), ("page two text", 2)]


def test_long_paragraph_is_cut_at_sentence_ends() -> None:
    sentence = "Staff must encrypt every laptop before first use. "
    text = sentence * 40
    spans = chunk_text(text, budget=200)
    assert len(spans) > 5
    assert all(text[s.start : s.end].endswith(".") for s in spans)


def test_code_is_cut_at_line_ends() -> None:
    code = "\n".join(f"x{i} = compute({i}, factor=3)" for i in range(60))
    spans = chunk_text(code, budget=200, sections=[Section(0, len(code), "module", kind="code")])
    assert len(spans) > 3
    assert all(code[s.start : s.end].split("\n")[-1].endswith(")") for s in spans)


def test_markdown_sections_cover_the_text() -> None:
    text = "preface\n# A\na\n## B\nb\n# C\nc"
    sections = markdown_sections(text)
    assert [s.title for s in sections] == ["", "A", "A > B", "C"]
    assert "".join(text[s.start : s.end] for s in sections) == text


class _Counting:
    """A measure that counts the characters it was asked to measure: the work chunking does."""

    def __init__(self, measure: Callable[[str], int]) -> None:
        self.measure, self.characters = measure, 0

    def __call__(self, text: str) -> int:
        self.characters += len(text)
        return self.measure(text)


def test_chunking_is_linear_in_the_length_of_the_text() -> None:
    """One unbroken paragraph used to cost quadratic time (110 s for 200 KB); the work is counted in
    characters measured, so a loaded machine cannot make this pass or fail."""
    megabyte = 1 << 20
    normal = ("Staff may work abroad for up to twenty days a year with approval. " * 16 + "\n\n") * (
        megabyte // 1090
    )
    one_line = ("word " * (megabyte // 5)).strip()
    one_token = "a" * megabyte  # one unknown word to a WordPiece tokenizer
    work = {}
    for name, text in (("normal", normal), ("one line", one_line), ("one token", one_token)):
        for measure in (len, _words):
            counting = _Counting(measure)
            spans = chunk_text(text, budget=128, measure=counting)
            assert spans and max(s.end - s.start for s in spans) <= 32 * 128
            work[name, measure.__name__] = counting.characters / len(text)
    assert max(work.values()) < 60, work  # characters measured per character of text, at most
    assert work["one line", "len"] < 5 * work["normal", "len"], work

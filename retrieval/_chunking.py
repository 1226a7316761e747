"""Splits a document into chunks that keep exact character spans and respect its structure.

A document is a sequence of sections (Markdown headings, PDF pages, code units); a chunk never
crosses a section boundary and carries its section's title path and page. Inside a section, blocks
(text between blank lines) are packed up to a budget measured by `measure` (the embedding model's
tokenizer in production, characters by default); a block over budget is cut at a sentence end
(prose) or line end (code), else at whitespace, else hard. Spans never overlap and cover every
non-space character of every section. Time is linear in the text's length: every measurement is of
a window a few budgets long.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*\s")

Measure = Callable[[str], int]


@dataclass(frozen=True)
class Section:
    start: int
    end: int
    title: str = ""  # a path such as "Policy > Passwords" or "class Vault > def open"
    page: int | None = None
    kind: Literal["prose", "code"] = "prose"
    summary: str = ""  # code: the unit's qualified name and its docstring's first paragraph


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    title: str
    page: int | None = None
    summary: str = ""


def markdown_sections(text: str) -> list[Section]:
    """Sections that start at each Markdown heading, titled by the path of headings above them."""
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    start, title = 0, ""
    for match in _HEADING.finditer(text):
        if match.start() > start:
            sections.append(Section(start, match.start(), title))
        level = len(match.group(1))
        path = [(lvl, t) for lvl, t in path if lvl < level] + [(level, match.group(2).strip())]
        start, title = match.start(), " > ".join(t for _, t in path)
    sections.append(Section(start, len(text), title))
    return sections


def chunk_text(
    text: str,
    *,
    budget: int = 500,
    measure: Measure = len,
    sections: list[Section] | None = None,
) -> list[Span]:
    if budget < 16:
        raise ValueError("the chunk budget must be at least 16")
    chunks: list[Span] = []
    for section in sections if sections is not None else markdown_sections(text):
        current: tuple[int, int] | None = None
        for block in _blocks(text, section.start, section.end):
            for start, end in _split_long(text, block, budget, measure, section.kind):
                if (
                    current is not None
                    and end - current[0] <= budget * _MAX_CHUNK
                    and measure(text[current[0] : end]) <= budget
                ):
                    current = (current[0], end)
                    continue
                if current is not None:
                    chunks.append(Span(*current, section.title, section.page, section.summary))
                current = (start, end)
        if current is not None:
            chunks.append(Span(*current, section.title, section.page, section.summary))
    return chunks


def _blocks(text: str, start: int, end: int) -> list[tuple[int, int]]:
    blocks = []
    position = start
    for separator in [*_BLANK_LINE.finditer(text, start, end), None]:
        stop = separator.start() if separator else end
        span = _strip(text, position, stop)
        if span:
            blocks.append(span)
        if separator:
            position = separator.end()
    return blocks


_FIRST_LOOK = 8
"""Characters per budget unit to look at first for a cut: more than a token ever holds in prose."""
_MAX_CHUNK = 32
"""Characters per budget unit no chunk exceeds, whatever the measure says: a 1 MB run of one letter
is a single unknown token to WordPiece, and must still not become a 1 MB chunk."""


def _split_long(
    text: str, block: tuple[int, int], budget: int, measure: Measure, kind: str
) -> list[tuple[int, int]]:
    """A block cut into pieces within budget. Each cut is searched for in a window of the next few
    budgets' worth of characters, never the whole rest of the block, so a 1 MB paragraph costs a
    constant per piece (measuring the whole rest each time made it quadratic: 110 s for 200 KB)."""
    start, end = block
    pieces = []
    window = budget * _FIRST_LOOK
    while start < end:
        limit = min(end, start + window)
        if measure(text[start:limit]) <= budget:
            if limit == end:  # the rest fits
                break
            if window < budget * _MAX_CHUNK:  # denser text than guessed: look further
                window = min(window * 2, budget * _MAX_CHUNK)
                continue
        cut = start + _fitting_prefix(text, start, limit, budget, measure, kind)
        span = _strip(text, start, cut)
        if span:
            pieces.append(span)
        start = cut
        while start < end and text[start].isspace():
            start += 1
    span = _strip(text, start, end)
    if span:
        pieces.append(span)
    return pieces


def _fitting_prefix(text: str, start: int, end: int, budget: int, measure: Measure, kind: str) -> int:
    """The length of the longest prefix within budget, preferring a natural boundary to cut at."""
    low, high = 1, end - start  # binary search: measure is monotone in the prefix length
    while low < high:
        middle = (low + high + 1) // 2
        if measure(text[start : start + middle]) <= budget:
            low = middle
        else:
            high = middle - 1
    window = text[start : start + low]
    if kind == "code":
        cut = window.rfind("\n") + 1
    else:
        cut = max((m.end() for m in _SENTENCE_END.finditer(window)), default=0)
    if cut <= 0 or cut < low // 3:
        cut = max(window.rfind(" "), window.rfind("\n")) + 1
    if cut <= 0 or cut < low // 3:
        cut = low
    return cut


def _strip(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None

"""Splits text into chunks that keep exact character spans.

Blocks are paragraphs (text between blank lines). A Markdown heading starts a new chunk and stays
with the text under it; blocks are packed up to `max_chars`; a block longer than that is cut at a
sentence end, else at whitespace, else hard. Spans never overlap and cover every non-space character.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*\s")


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    title: str  # the nearest Markdown heading above (or at) the chunk's start


def chunk_text(text: str, *, max_chars: int = 1000) -> list[Span]:
    if max_chars < 50:
        raise ValueError("max_chars must be at least 50")
    chunks: list[Span] = []
    title = ""
    current: tuple[int, int, str] | None = None  # start, end, title
    for start, end in _blocks(text):
        heading = _HEADING.match(text[start:end].split("\n", 1)[0])
        if heading:
            title = heading.group(2).strip()
        for piece_start, piece_end in _split_long(text, start, end, max_chars):
            fits = current is not None and piece_end - current[0] <= max_chars
            if current is not None and (heading or not fits):
                chunks.append(Span(*current))
                current = None
            if current is None:
                current = (piece_start, piece_end, title)
            else:
                current = (current[0], piece_end, current[2])
            heading = None
    if current is not None:
        chunks.append(Span(*current))
    return chunks


def _blocks(text: str) -> list[tuple[int, int]]:
    blocks = []
    position = 0
    for separator in [*_BLANK_LINE.finditer(text), None]:
        stop = separator.start() if separator else len(text)
        span = _strip(text, position, stop)
        if span:
            blocks.append(span)
        if separator:
            position = separator.end()
    return blocks


def _split_long(text: str, start: int, end: int, max_chars: int) -> list[tuple[int, int]]:
    pieces = []
    while end - start > max_chars:
        window = text[start : start + max_chars]
        cut = max((m.end() for m in _SENTENCE_END.finditer(window)), default=0)
        if cut < max_chars // 3:
            cut = window.rfind(" ") + 1 or window.rfind("\n") + 1
        if cut < max_chars // 3:
            cut = max_chars
        span = _strip(text, start, start + cut)
        if span:
            pieces.append(span)
        start = start + cut
        while start < end and text[start].isspace():
            start += 1
    span = _strip(text, start, end)
    if span:
        pieces.append(span)
    return pieces


def _strip(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None

"""What a chunk is indexed with besides its own words: where it lives in its document.

A chunk from the middle of a long article ("The notification must be made within 72 hours") does not
say which article, regulation or product it belongs to; embedded and BM25-indexed alone, it competes
with every other "within 72 hours". So the text the models read is a short header (the document's
title and the chunk's heading path, its page, or for code the file and the enclosing class and
function) followed by the chunk. The header is for matching only: what is shown and cited is the
chunk's exact span, `Chunk.text`.
"""

from __future__ import annotations

from pathlib import PurePath

from retrieval._types import Chunk

HEADER_TOKENS = 48
"""Embedding-model tokens kept free for the header: chunks are cut that much shorter."""
_MAX_TITLE_CHARS = 120
_MAX_HEADER_CHARS = 160
_TITLE_LINES = 5  # a title is one of the first few lines, not a sentence found further down


def document_title(text: str, source: str, doc_type: str) -> str:
    """The document's name: for code its path's last parts (a repository's layout names things);
    otherwise its first heading or first line, or the file's name when it has neither."""
    if doc_type == "code":
        return "/".join(PurePath(source).parts[-3:])
    for line in text.lstrip().splitlines()[:_TITLE_LINES]:
        title = line.strip().lstrip("#").strip()
        if title:
            return title[:_MAX_TITLE_CHARS]
    return PurePath(source).stem


def context_header(title: str, path: str, page: int | None, summary: str = "") -> str:
    """ "Title > Heading > Subheading (page 3)" for a chunk under heading `path`: the path already
    starts with the title when the document opens with its top heading, so it is not repeated. Code
    adds a second line: the unit's qualified name and its docstring's first paragraph."""
    if not path:
        header = title
    elif path.startswith(title) or title.startswith(path):
        header = path
    else:
        header = f"{title} > {path}"
    header = header[:_MAX_HEADER_CHARS]
    header = f"{header} (page {page})" if page else header
    return f"{header}\n{summary}" if summary else header


def indexed_text(chunk: Chunk) -> str:
    """What the embedding model and BM25 read for a chunk: its header, then its exact text."""
    return f"{chunk.context}\n\n{chunk.text}" if chunk.context else chunk.text

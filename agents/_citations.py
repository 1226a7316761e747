"""A citation as callers see it: which passage, where it sits in its source, the quote that was checked."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from retrieval import Chunk


class Citation(BaseModel):
    model_config = ConfigDict(frozen=True)

    number: int
    chunk_id: str
    source: str
    start: int
    end: int
    title: str
    text: str
    quote: str | None = None  # set only when it was found in `text`


def citation_of(number: int, chunk: Chunk, quote: str | None = None) -> Citation:
    return Citation(
        number=number,
        chunk_id=chunk.chunk_id,
        source=chunk.source,
        start=chunk.start,
        end=chunk.end,
        title=chunk.title,
        text=chunk.text,
        quote=quote or None,
    )

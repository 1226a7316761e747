"""Values that cross the retrieval boundary: who is asking, what is stored, what is found."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"


class Principal(BaseModel):
    """Who is searching. Built server-side (CLI flags now, API keys later); never from model output.

    A principal may read a chunk when the chunk's ACL holds `user:<id>` or `group:<g>` for one of
    the principal's groups. Documents indexed without groups belong to the user who indexed them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    user: str = Field(pattern=_NAME)
    groups: frozenset[str] = frozenset()

    @field_validator("groups")
    @classmethod
    def _valid_groups(cls, groups: frozenset[str]) -> frozenset[str]:
        bad = sorted(g for g in groups if not re.match(_NAME, g))
        if bad:
            raise ValueError(f"invalid group name(s) {bad}: use letters, digits, '.', '_', '@' or '-'")
        return groups

    def acl_tokens(self) -> list[str]:
        return [f"user:{self.user}", *sorted(f"group:{g}" for g in self.groups)]


def document_acl(*, owner: str, groups: frozenset[str]) -> list[str]:
    """The ACL stored with a document's chunks: its groups, or its owner when it has none."""
    if groups:
        return sorted(f"group:{g}" for g in groups)
    return [f"user:{owner}"]


class Chunk(BaseModel):
    """A span of one source document. `text == document_text[start:end]`, exactly."""

    model_config = ConfigDict(frozen=True)

    chunk_id: str
    source: str
    start: int = Field(ge=0)
    end: int = Field(gt=0)
    text: str
    title: str = ""
    context: str = ""  # the header it is indexed with (retrieval/_context.py); never part of a citation
    position: int = Field(ge=0)
    content_sha256: str
    acl: list[str]
    doc_type: str = "text"
    modified_at: float = 0.0  # the source file's mtime, seconds since the epoch
    page: int | None = None  # PDF pages, counted from 1
    media: dict[str, int | str] = Field(default_factory=dict)  # images: width, height, format


class SearchHit(BaseModel):
    model_config = ConfigDict(frozen=True)

    chunk: Chunk
    score: float


class DocumentHit(BaseModel):
    """One document, ranked by its best passage plus a decayed share of its others, with its best
    passages (each an exact span, as from `search`)."""

    model_config = ConfigDict(frozen=True)

    source: str
    score: float
    passages: list[SearchHit]


SearchMode = Literal["hybrid", "dense", "sparse"]
Fusion = Literal["dbsf", "rrf"]


class SearchFilters(BaseModel):
    """Metadata filters, ANDed with the access-control filter inside the store's query."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sources: list[str] | None = None
    path_prefix: str | None = None
    doc_types: list[str] | None = None
    modified_after: datetime | None = None
    modified_before: datetime | None = None

"""A collection's measured search settings, stored beside its index.

Which search mode and fusion rank best depends on the corpus: on the CWE catalogue hybrid search with
distribution-based fusion leads, on the Python FAQ plain dense search does. `bastion eval tune` measures
the choices on questions labelled with the documents that answer them and writes the winner here, so
`bastion search`, the agents and the API use it with no flag. A setting given explicitly still wins.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from retrieval._errors import RetrievalError
from retrieval._types import Fusion, SearchMode


class MeasuredChoice(BaseModel):
    """One candidate's nDCG@10 on the two halves of the labels."""

    model_config = ConfigDict(frozen=True)

    mode: SearchMode
    fusion: Fusion
    chunk_tokens: int | None = None  # the chunk size measured (None in profiles from before it was)
    tune_ndcg: float  # on the half the choice was made on
    check_ndcg: float  # on the other half, which played no part in the choice


class SearchProfile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: SearchMode = "hybrid"
    fusion: Fusion = "dbsf"
    # The chunk size `bastion index` should use for the collection; None: the setting's default. A
    # search uses the chunks the collection holds: a new size applies once the folders are re-indexed.
    chunk_tokens: int | None = Field(default=None, ge=16, le=512)
    tuned_at: datetime | None = None
    labels: int = Field(default=0, ge=0)  # labelled questions the choice was measured on
    measured: list[MeasuredChoice] = []


DEFAULT_PROFILE = SearchProfile()


def load_profile(path: Path) -> SearchProfile | None:
    """The stored profile, or None when the collection was never tuned."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RetrievalError(f"cannot read the search profile {path}: {exc}") from exc
    try:
        return SearchProfile.model_validate_json(text)
    except ValidationError as exc:
        raise RetrievalError(
            f"the search profile {path} is damaged ({exc.errors()[0]['msg']}); "
            "delete it or run `bastion eval tune` again"
        ) from exc


def save_profile(path: Path, profile: SearchProfile) -> None:
    """Written whole or not at all: a reader never sees half a profile."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, scratch = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(profile.model_dump_json(indent=2))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(scratch, path)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise

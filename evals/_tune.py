"""`bastion eval tune`: measure the search choices on the operator's own labelled questions, and keep
the best for the collection.

The labels are split in two by a hash of each question. The choice is made on one half; the other
half, which played no part in it, says whether it holds. A choice that does worse than the default on
that second half is not kept: with a few dozen labels, a lucky half is the likelier explanation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evals._errors import UsageError
from evals._retrieval import SEARCH_DEPTH, scores
from retrieval import (
    DEFAULT_PROFILE,
    Embedder,
    Fusion,
    MeasuredChoice,
    Principal,
    Retriever,
    SearchMode,
    SearchProfile,
    VectorStore,
)

MIN_LABELS = 10
RECHUNK_MARGIN = 0.01
"""nDCG@10 on the checking half another chunk size must gain over the default to be kept."""
# The default first: on a tie it stays.
CANDIDATES: tuple[tuple[SearchMode, Fusion], ...] = (
    (DEFAULT_PROFILE.mode, DEFAULT_PROFILE.fusion),
    ("hybrid", "rrf"),
    ("dense", "dbsf"),
    ("sparse", "dbsf"),
)


class Label(BaseModel):
    """One labelled question: the files (paths) that answer it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    question: str = Field(min_length=1)
    relevant: list[str] = Field(min_length=1)


def load_labels(path: Path) -> list[Label]:
    """JSON lines of {"question": …, "relevant": [path, …]}; relative paths are read from the labels
    file's folder, and come back resolved, as the index names documents."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the labels {path}: {exc}") from exc
    labels = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            label = Label.model_validate_json(line)
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(p) for p in problem["loc"])
            raise UsageError(f"{path}:{number}: {where + ': ' if where else ''}{problem['msg']}") from exc
        resolved = [str((path.parent / p).resolve()) for p in label.relevant]
        labels.append(label.model_copy(update={"relevant": resolved}))
    return labels


def split(labels: list[Label]) -> tuple[list[Label], list[Label]]:
    """(tune, check): every other label in the order of a hash of its question, so the same labels
    always split the same way, whatever order the file lists them in, and both halves are as big."""
    ordered = sorted(labels, key=lambda lb: hashlib.sha256(lb.question.encode()).hexdigest())
    return ordered[0::2], ordered[1::2]


def tune(
    embedder: Embedder,
    stores: Mapping[int, VectorStore],
    labels: list[Label],
    principal: Principal,
    *,
    indexed: Iterable[str],
) -> SearchProfile:
    """Each candidate's nDCG@10 on both halves, and the profile to keep. `stores` holds the same
    documents at each chunk size to compare, the collection's own size first (its default search is
    what a winner must beat on the checking half)."""
    if len(labels) < MIN_LABELS:
        raise UsageError(
            f"{len(labels)} labelled questions are too few to choose from; give at least {MIN_LABELS}"
        )
    known = set(indexed)
    missing = sorted({path for label in labels for path in label.relevant} - known)
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise UsageError(f"the labels name files that are not indexed: {shown}")
    tune_half, check_half = split(labels)
    measured = []
    for size, store in stores.items():
        for mode, fusion in CANDIDATES:
            retriever = Retriever(embedder, store, fusion=fusion, mode=mode)
            measured.append(
                MeasuredChoice(
                    mode=mode,
                    fusion=fusion,
                    chunk_tokens=size,
                    tune_ndcg=_ndcg(retriever, tune_half, principal),
                    check_ndcg=_ndcg(retriever, check_half, principal),
                )
            )
    chosen = choose(measured)
    return SearchProfile(
        mode=chosen.mode,
        fusion=chosen.fusion,
        chunk_tokens=chosen.chunk_tokens,
        tuned_at=datetime.now(UTC),
        labels=len(labels),
        measured=measured,
    )


def choose(measured: list[MeasuredChoice]) -> MeasuredChoice:
    """The best on the choosing half, unless it does worse than the default (the first) on the checking
    half. Another chunk size must also beat the default there by RECHUNK_MARGIN, since keeping it means
    re-indexing the whole collection; else the best at the collection's own size is chosen alike."""
    default = measured[0]

    def best_of(candidates: list[MeasuredChoice]) -> MeasuredChoice:
        best = max(candidates, key=lambda m: m.tune_ndcg)  # max keeps the first of ties
        return best if best.check_ndcg >= default.check_ndcg else default

    chosen = best_of(measured)
    if (
        chosen.chunk_tokens != default.chunk_tokens
        and chosen.check_ndcg < default.check_ndcg + RECHUNK_MARGIN
    ):
        chosen = best_of([m for m in measured if m.chunk_tokens == default.chunk_tokens])
    return chosen


def _ndcg(retriever: Retriever, labels: list[Label], principal: Principal) -> float:
    total = 0.0
    for label in labels:
        hits = retriever.search(label.question, principal, limit=SEARCH_DEPTH)
        ranked = list(dict.fromkeys(hit.chunk.source for hit in hits))
        total += scores(ranked, frozenset(label.relevant))["ndcg@10"]
    return round(total / len(labels), 4)

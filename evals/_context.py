"""What every suite is handed: where data is cached, how much of it to use, the model to talk to,
and where to report progress. The caller (the `bastion eval` command) decides all of it, so a suite
evaluates the system as it is configured rather than a copy of it wired here."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from agents import QAAgent, Router, route_effort
from evals._errors import UsageError
from evals._result import DataVersion, EvalResult, Metric, Provenance, Series, now
from retrieval import Embedder, Fusion, Retriever, SearchMode
from serving import ChatClient

ALL_MODES: tuple[SearchMode, ...] = ("hybrid", "dense", "sparse")


class Progress(Protocol):
    """A progress bar: one task at a time, advanced item by item."""

    def start(self, description: str, total: int | None) -> None: ...

    def advance(self, steps: int = 1) -> None: ...


class NoProgress:
    def start(self, description: str, total: int | None) -> None:
        pass

    def advance(self, steps: int = 1) -> None:
        pass


# Builds the QA agent under test over a given retriever, inside whatever the caller must keep open.
QAFactory = Callable[[Retriever], AbstractAsyncContextManager[QAAgent]]


@dataclass
class EvalContext:
    cache_dir: Path
    embedder: Embedder
    limit: int | None = None  # items per suite (questions, turns); None: the full data set
    modes: tuple[SearchMode, ...] = ALL_MODES
    chunk_tokens: int = 128
    fusion: Fusion = "dbsf"
    model_url: str | None = None
    qa_factory: QAFactory | None = None
    router: Router = route_effort
    judge_url: str | None = None
    judge_model: str | None = None
    judge_api_key: str | None = None
    concurrency: int = 2  # questions in flight against the model server
    # Model-assisted search variants the retrieval suites also measure (evals/_assisted.py), on the
    # first `assist_limit` of their queries: each model call costs seconds on a CPU.
    assists: tuple[str, ...] = ()
    assist_limit: int | None = None
    client_factory: Callable[[], AbstractAsyncContextManager[ChatClient]] | None = None
    seed: int = 0
    progress: Progress = field(default_factory=NoProgress)
    settings: dict[str, Any] = field(default_factory=dict)  # recorded in every result
    # What indexing each corpus cost (ingest_s, index_mb), for the suites' details.
    costs: dict[str, dict[str, float]] = field(default_factory=dict)
    # Taken when the run starts: the code that runs is the code loaded then, whatever is committed later.
    provenance: Provenance = field(default_factory=Provenance.here)

    def result(
        self,
        suite: str,
        started: datetime,
        *,
        data: list[DataVersion],
        metrics: list[Metric],
        series: list[Series],
        notes: list[str],
        details: dict[str, Any],
        **settings: Any,
    ) -> EvalResult:
        """The suite's result, stamped with this run's provenance and the settings it depended on."""
        return EvalResult(
            suite=suite,
            started_at=started,
            duration_s=round((now() - started).total_seconds(), 1),
            provenance=self.provenance,
            settings={**self.settings, "limit": self.limit, "seed": self.seed, **settings},
            data=data,
            metrics=metrics,
            series=series,
            notes=notes,
            details=details,
        )

    def chat_client(self) -> AbstractAsyncContextManager[ChatClient]:
        """A client of the model under test, as the caller configured it (else a plain one)."""
        if self.client_factory is not None:
            return self.client_factory()
        if self.model_url is None:
            raise UsageError(
                "this suite needs a model server: set BASTION_MODEL_URL or let Bastion start one"
            )
        return ChatClient(self.model_url)

    def qa_agent(self, retriever: Retriever) -> AbstractAsyncContextManager[QAAgent]:
        """The QA agent as the caller configured it: `bastion eval` passes bastion.wiring's, so a suite
        measures the agent users get, never one assembled here."""
        if self.qa_factory is None:
            raise UsageError(
                "this suite needs a model server: set BASTION_MODEL_URL or let Bastion start one"
            )
        return self.qa_factory(retriever)

"""The retrieval layer's exception tree (under bastion_errors.BastionError).

RetrievalError
├── QueryError       a search request is invalid (blank query, limit out of range); also an InputError
├── LoaderError      a path given to the indexer cannot be read as a document (missing, binary, not UTF-8)
├── EmbeddingError   the embedding model could not be loaded or run
└── StoreError       the vector store failed or is locked by another process
"""

from __future__ import annotations

from bastion_errors import BastionError, InputError


class RetrievalError(BastionError):
    """Base class of every error raised by `retrieval`."""


class QueryError(RetrievalError, InputError):
    """A search request that cannot be run as given: the message says what to change."""


class LoaderError(RetrievalError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"Nothing was indexed, because:\n{listing}")


class EmbeddingError(RetrievalError):
    pass


class StoreError(RetrievalError):
    pass

"""What an error becomes on the wire: one table from Bastion's typed errors to HTTP statuses, and
messages that never carry internal URLs, file-system paths or upstream error bodies to a caller who
is not an administrator (the full error goes to the server's log instead).

    bad input → 400 · forbidden → 403 · missing → 404 · too large → 413
    model or store unavailable → 503 · model timed out → 504 · model answered wrongly → 502
"""

from __future__ import annotations

import logging

from fastapi import HTTPException

import serving
from agents import AgentError, ThreadAccessError
from bastion.errors import InputError
from bastion.keys import KeyInfo
from retrieval import EmbeddingError, RetrievalError, StoreError

log = logging.getLogger("bastion.api")

_UNAVAILABLE = (serving.ConnectError, serving.ServerError, serving.LocalServerError, StoreError)


def http_error(exc: Exception, who: KeyInfo) -> HTTPException | None:
    """The HTTP error for one of Bastion's own errors, or None for anything else (a bug: a 500)."""
    detail = f" ({exc})" if who.role == "admin" else ""
    if isinstance(exc, serving.ContextLengthError):
        return HTTPException(
            400, "The conversation no longer fits the model's context: start a new one, or send less."
        )
    if isinstance(exc, serving.TimeoutError):
        log.warning("model timed out: %s", exc)
        return HTTPException(504, "The model server did not answer in time; try again." + detail)
    if isinstance(exc, _UNAVAILABLE):
        log.warning("unavailable: %s", exc)
        return HTTPException(
            503, "The model server or the document store is unavailable; try again shortly." + detail
        )
    if isinstance(exc, serving.ServingError):  # a response we could not use, or a request it refused
        log.warning("model server error: %s", exc)
        return HTTPException(502, "The model server's answer could not be used; try again." + detail)
    if isinstance(exc, ThreadAccessError):
        return HTTPException(403, str(exc))
    if isinstance(exc, EmbeddingError):
        log.warning("embedding model unavailable: %s", exc)
        return HTTPException(503, "The embedding model is unavailable; try again shortly." + detail)
    if isinstance(exc, InputError | AgentError | RetrievalError):  # the caller's question, query or file
        return HTTPException(400, str(exc))
    return None

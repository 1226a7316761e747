"""The root of every error Bastion raises on purpose. It sits below all the layers, so each layer's
tree can derive from it without any layer importing another:

    BastionError
    ├── InputError        what the caller sent is invalid: the CLI exits with 2, the API answers 400
    ├── ServingError      serving: the model server (serving/_errors.py)
    ├── RetrievalError    retrieval: documents, embeddings, the store (retrieval/_errors.py)
    ├── AgentError        agents (agents/_errors.py)
    ├── EvalError         evals: suites, data sets, results (evals/_errors.py)
    └── ConfigError       bastion: settings, keys, the audit log (bastion/errors.py)

A layer's input errors derive from both its own base and InputError (`retrieval.QueryError` is a
RetrievalError and an InputError), so a caller can catch by layer or by kind. Anything that is not
a BastionError is a bug and keeps its traceback: nothing catches ValueError wholesale.
"""

from __future__ import annotations

__all__ = ["BastionError", "InputError"]


class BastionError(Exception):
    """Base class of every error Bastion raises on purpose; its message says what to do next."""


class InputError(BastionError):
    """What the caller sent (a question, a query, a flag's value, a file) is invalid."""

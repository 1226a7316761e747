"""The evals layer's exception tree (under bastion_errors.BastionError).

EvalError
├── UsageError        an unknown suite or benchmark, a bad limit or tolerance; also an InputError
├── DatasetError      a data set could not be fetched or read
└── EvalResultError   a file that is not a result this version can read; also an InputError
"""

from __future__ import annotations

from bastion_errors import BastionError, InputError


class EvalError(BastionError):
    """Base class of every error raised by `evals`."""


class UsageError(EvalError, InputError):
    """An evaluation asked for in a way that cannot run: the message names what to change."""


class DatasetError(EvalError):
    """A data set could not be fetched or read; the message says what was run and what it answered."""


class EvalResultError(EvalError, InputError):
    """A file that is not a Bastion evaluation result this version can read."""

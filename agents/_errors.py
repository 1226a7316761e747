"""The agents layer's exceptions. Errors the model causes (bad JSON, bogus citations) are not
exceptions: they become flags on the answer. These are for callers' mistakes."""

from __future__ import annotations


class AgentError(Exception):
    """Base class of every error raised by `agents`."""


class ThreadAccessError(AgentError):
    pass

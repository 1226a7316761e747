"""Errors of the composition layer, and the one tuple the CLI and API catch at their boundary."""

from __future__ import annotations

from agents import AgentError
from evals import DatasetError
from retrieval import RetrievalError
from serving import ServingError


class ConfigError(Exception):
    """The settings (environment, config file or flags) are invalid or inconsistent."""


BastionError = (ConfigError, ServingError, RetrievalError, AgentError, DatasetError)
"""Every error Bastion raises on purpose; anything else is a bug and keeps its traceback."""

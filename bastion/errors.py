"""Errors of the composition layer. The root of the tree, BastionError, lives in `bastion_errors`
(below every layer, so each layer's base derives from it); it is re-exported here for callers."""

from __future__ import annotations

from bastion_errors import BastionError, InputError


class ConfigError(BastionError):
    """The settings (environment, config file or flags) are invalid or inconsistent."""


__all__ = ["BastionError", "ConfigError", "InputError"]

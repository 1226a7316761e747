"""Bastion's composition root: settings, the CLI, and the wiring of the layers."""

from bastion.errors import BastionError, ConfigError, InputError
from bastion.settings import Settings, load_settings

__all__ = ["BastionError", "ConfigError", "InputError", "Settings", "load_settings"]

"""Bastion's HTTP service: `create_app(settings)` builds the FastAPI application `bastion api` serves."""

from bastion.api._app import create_app
from bastion.api._services import Services, cache_salt, open_services

__all__ = ["Services", "cache_salt", "create_app", "open_services"]

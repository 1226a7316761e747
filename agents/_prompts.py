"""Prompt templates are package data, rendered strictly: a missing variable raises, never renders blank."""

from __future__ import annotations

from functools import cache
from importlib import resources
from string import Template


@cache
def template(name: str) -> Template:
    text = resources.files("agents").joinpath("prompts", f"{name}.txt").read_text(encoding="utf-8")
    return Template(text)


def render(name: str, **values: object) -> str:
    # Template.substitute raises KeyError on a missing variable: a bug in our code, not the model's.
    return template(name).substitute({k: str(v) for k, v in values.items()}).strip()


TEMPLATES = (
    "qa_system",
    "qa_turn",
    "qa_found",
    "qa_passage",
    "qa_rewrite",
    "qa_verify",
    "search_expand",
    "search_rerank",
    "images_asked",
    "images_passage",
)

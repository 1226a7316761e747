"""Evaluation and benchmarks. Sits on top of every other layer; nothing imports it."""

__all__: list[str] = []

"""Citations are checked, not trusted: every number must name a passage the model was shown."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

from retrieval import Chunk

_MARKER = re.compile(r"\[(\d{1,3})\]")


class Citation(BaseModel):
    model_config = ConfigDict(frozen=True)

    number: int
    chunk_id: str
    source: str
    start: int
    end: int
    title: str
    text: str


def cited_numbers(answer: str, declared: list[int]) -> list[int]:
    """The passage numbers the answer cites: its inline [n] markers, then the declared list, deduplicated."""
    numbers = [int(m.group(1)) for m in _MARKER.finditer(answer)] + list(declared)
    return list(dict.fromkeys(numbers))


def verify(numbers: list[int], passages: list[Chunk]) -> tuple[list[Citation], list[int]]:
    """Split cited numbers into citations of real passages and numbers that name nothing."""
    valid, invalid = [], []
    for number in numbers:
        if 1 <= number <= len(passages):
            chunk = passages[number - 1]
            valid.append(
                Citation(
                    number=number,
                    chunk_id=chunk.chunk_id,
                    source=chunk.source,
                    start=chunk.start,
                    end=chunk.end,
                    title=chunk.title,
                    text=chunk.text,
                )
            )
        else:
            invalid.append(number)
    return valid, invalid


def strip_invalid_markers(answer: str, invalid: list[int]) -> str:
    bad = set(invalid)
    return _MARKER.sub(lambda m: "" if int(m.group(1)) in bad else m.group(0), answer).strip()

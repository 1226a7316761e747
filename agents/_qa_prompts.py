"""What the QA agent sends besides the answer call: passages as the model sees them, the transcript
window, the follow-up rewrite's and the verdict's schemas, and the test a rewrite must pass."""

from __future__ import annotations

import re
from typing import Any

from agents._claims import Claim
from agents._prompts import render
from agents._quotes import content_words
from retrieval import Chunk
from serving import JsonSchema

WITHDRAWN = "[{number}] (withdrawn: no longer in the documents you can read)"


def passages_block(
    evidence: list[dict[str, Any]], numbers: list[int], withdrawn: set[int] | frozenset[int] = frozenset()
) -> str:
    """The passages a turn showed first. A withdrawn one keeps its number, so the thread's numbering
    stays put, but none of its text, title or file name."""
    if not numbers:
        return ""
    shown = []
    for n in numbers:
        if n in withdrawn:
            shown.append(WITHDRAWN.format(number=n))
            continue
        c = Chunk.model_validate(evidence[n - 1])
        shown.append(
            render(
                "qa_passage",
                number=n,
                title=c.title or "untitled",
                source=c.source.rsplit("/", 1)[-1],
                text=c.text,
            )
        )
    return "Passages:\n\n" + "\n\n".join(shown)


_KEY_VALUE = re.compile(r"[a-z0-9]+_[a-z0-9_]+|^\s*[\w.-]+\s*[:=]\s*\S+$|[{}\[\]<>]", re.IGNORECASE)


def is_search_query(query: str, question: str, context: str) -> bool:
    """Whether a follow-up's rewrite reads as a search query for this conversation: no key-value or
    markup junk (`minimum_password_length: 800`), and at least one content word of the question or
    of the conversation it refers to. Anything else is replaced by the question as asked."""
    if _KEY_VALUE.search(query):
        return False
    return bool(content_words(query) & content_words(f"{question} {context}"))


def history_start(turns: int, window: int) -> int:
    """The first earlier turn to show: at most `window`, dropping old turns half a window at a time
    so the shown transcript (and the cached prefix built on it) changes only every window/2 turns."""
    step = max(1, window // 2)
    return max(0, -(-(turns - window) // step) * step)


def verify_request(question: str, claims: list[Claim]) -> str:
    """The verdict's question: the checked claims, each with the passage text it rests on."""
    lines = [
        f'- {c.text} (passage {c.citations[0]} says: "{" ".join(c.quote.split())}")'
        if c.quote
        else f"- {c.text}"
        for c in claims
    ]
    return render("qa_verify", question=question, claims="\n".join(lines))


VERIFY_SCHEMA = JsonSchema(
    name="verdict",
    schema={
        "type": "object",
        "properties": {"answers_question": {"type": "boolean"}},
        "required": ["answers_question"],
        "additionalProperties": False,
    },
)

REWRITE_SCHEMA = JsonSchema(
    name="search_query",
    schema={
        "type": "object",
        "properties": {"query": {"type": "string", "minLength": 1, "maxLength": 200}},
        "required": ["query"],
        "additionalProperties": False,
    },
)

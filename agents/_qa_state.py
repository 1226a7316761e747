"""A QA thread's state, and what of it the next turn may show: the transcript window, its passages,
and the recheck that withdraws passages the asker may no longer read.

The prompt layout lives here too, because it is a pure function of the state (docs/prompt-layout.md).
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from agents._prompts import render
from agents._qa_prompts import history_start, passages_block
from retrieval import Chunk, Principal, SearchHit, VectorStore
from serving import Effort, Message


class Turn(TypedDict):
    question: str
    answer: str
    reply: str  # the assistant message as sent back in later turns
    introduced: list[int]  # evidence numbers this turn showed first, rendered before its question
    cited: list[int]  # evidence numbers its answer cites (absent in threads from before it was kept)


class QAState(TypedDict, total=False):
    owner: str
    agent: str  # which agent's thread this is: another's turns have another shape
    history: Annotated[list[Turn], operator.add]
    evidence: Annotated[list[dict[str, Any]], operator.add]  # every chunk shown; number = index + 1
    question: str
    search_query: str
    effort: Effort
    effort_reason: str
    escalated: bool
    retrieved: list[int]  # evidence numbers this turn's search returned
    introduced: list[int]
    withdrawn: list[int]  # earlier evidence the asker may no longer read, or that no longer exists
    draft: str
    pictures: list[int]  # passages attached as pictures to this turn's answer call
    checked: dict[str, Any]
    flags: list[str]
    steps: list[dict[str, Any]]
    timings: dict[str, float]


def shown_turns(state: QAState, window: int) -> list[Turn]:
    history = state.get("history") or []
    return history[history_start(len(history), window) :]


def visible(state: QAState, window: int) -> set[int]:
    """Evidence numbers already in the transcript window, before this turn's new passages."""
    return {n for turn in shown_turns(state, window) for n in turn["introduced"]}


def shown_passages(state: QAState, window: int, *, new: bool = True) -> dict[int, Chunk]:
    """Every passage this turn's answer may cite: the transcript window's and (`new`) this turn's."""
    evidence = state.get("evidence") or []
    shown = visible(state, window) | (set(state["introduced"]) if new else set())
    return {
        n: Chunk.model_validate(evidence[n - 1]) for n in sorted(shown - set(state.get("withdrawn") or []))
    }


def interleave(lists: list[list[SearchHit]], wanted: int, *, min_score: float | None) -> list[SearchHit]:
    """Several searches' hits as one list: rank by rank, each chunk once, at most `wanted`, none
    scored below `min_score` (when given)."""
    merged: dict[str, SearchHit] = {}
    for rank in range(wanted):
        for found in lists:
            if rank < len(found) and len(merged) < wanted:
                hit = found[rank]
                if min_score is None or hit.score >= min_score:
                    merged.setdefault(hit.chunk.chunk_id, hit)
    return list(merged.values())


def number(
    state: QAState, shown: list[Chunk], window: int
) -> tuple[list[dict[str, Any]], list[int], dict[str, int]]:
    """Number each chunk once per thread; show it again only when the turn that showed it has left
    the transcript window. Returns the evidence to add, the numbers this turn introduces, and every
    chunk id's number."""
    evidence = state.get("evidence") or []
    numbers = {str(c["chunk_id"]): n for n, c in enumerate(evidence, start=1)}
    already_shown = visible(state, window)
    added: list[dict[str, Any]] = []
    introduced: list[int] = []
    for chunk in shown:
        if chunk.chunk_id not in numbers:
            added.append(chunk.model_dump())
            numbers[chunk.chunk_id] = len(evidence) + len(added)
        if numbers[chunk.chunk_id] not in already_shown:
            introduced.append(numbers[chunk.chunk_id])
    return added, introduced, numbers


def prefix(state: QAState, window: int, *, with_new_passages: bool = False) -> list[Message]:
    """The system message: everything shared by this turn's calls and by every later turn.

    It holds the transcript rather than user/assistant messages because Mistral's chat template
    renders `reasoning_effort` (and tools) right after the system prompt: only what sits in the
    system prompt stays cached when the effort changes between steps (docs/prompt-layout.md).
    """
    evidence = state.get("evidence") or []
    withdrawn = set(state.get("withdrawn") or [])
    parts = [render("qa_system")]
    for turn in shown_turns(state, window):
        parts.append(passages_block(evidence, turn["introduced"], withdrawn))
        reply = WITHHELD if withheld(turn, state) else turn["reply"]
        parts.append(f"User: {turn['question']}\nAssistant: {reply}")
    if with_new_passages:
        parts.append(passages_block(evidence, state["introduced"]))
    return [Message(role="system", content="\n\n".join(p for p in parts if p))]


WITHHELD = '{"answerable":false,"claims":[],"withheld":"it cited passages no longer available"}'
"""An earlier answer that cited a withdrawn passage, as the transcript shows it instead."""


def withheld(turn: Turn, state: QAState) -> bool:
    withdrawn = set(state.get("withdrawn") or [])
    # Threads saved before `cited` was kept: any passage the turn showed counts.
    return bool(withdrawn & set(turn.get("cited", turn["introduced"])))


def recheck(state: QAState, window: int, store: VectorStore, principal: Principal) -> list[int]:
    """Every passage earlier turns showed, checked again against who is asking now and the live
    index: a key moved to other groups, or a deleted or changed document, must not live on in the
    conversation. The passages that fail are not shown or citable again, and an earlier answer
    that cited one is withheld from the transcript (docs/security.md)."""
    evidence = state.get("evidence") or []
    shown = sorted(visible(state, window))
    if not shown:
        return []
    ids = {n: str(evidence[n - 1]["chunk_id"]) for n in shown}
    readable = store.readable(list(ids.values()), principal)
    return [n for n, chunk_id in ids.items() if chunk_id not in readable]

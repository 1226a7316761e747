"""Document QA as a LangGraph graph: route → retrieve → answer → verify.

Prompt layout, chosen for the server's prefix cache: the static system text, then the thread's
earlier turns as plain question/answer pairs (append-only, rendered identically every turn), then
this turn's question followed by its passages. Turn n's prompt therefore starts with all of turn
n-1's prompt up to the end of its question, and only this turn's passages are new.
"""

from __future__ import annotations

import asyncio
import json
import operator
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from pydantic import BaseModel, ConfigDict

from agents._citations import Citation, cited_numbers, strip_invalid_markers, verify
from agents._errors import ThreadAccessError
from agents._prompts import render
from agents._router import RouteDecision, route_effort
from retrieval import Chunk, Principal, Retriever, SearchMode
from serving import ChatClient, ChatRequest, Effort, JsonSchema, Message, Usage

REFUSAL = "Not found in the documents you can access."
MAX_ANSWER_CHARS = 400


class QAOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    top_k: int = 3
    mode: SearchMode = "hybrid"
    min_score: float = 0.25  # dense mode only: hybrid (RRF) scores are ranks, not similarities
    max_tokens: int = 200
    temperature: float = 0.0
    history_turns: int = 6


class QAResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    thread_id: str
    question: str
    answer: str
    citations: list[Citation]
    refused: bool
    flags: list[str]
    reasoning_effort: Effort
    effort_reason: str
    usage: Usage
    timings: dict[str, float]


class _Turn(TypedDict):
    question: str
    answer: str
    reply: str  # the assistant message as sent back in later turns


class _State(TypedDict, total=False):
    owner: str
    history: Annotated[list[_Turn], operator.add]
    question: str
    effort: Effort
    effort_reason: str
    passages: list[dict[str, Any]]
    answer: str
    citation_numbers: list[int]
    citations: list[dict[str, Any]]
    refused: bool
    flags: list[str]
    usage: dict[str, int]
    timings: dict[str, float]


@dataclass(frozen=True)
class _Context:
    principal: Principal


class QAAgent:
    def __init__(
        self,
        client: ChatClient,
        retriever: Retriever,
        *,
        options: QAOptions | None = None,
        checkpointer: BaseCheckpointSaver[str] | None = None,
        router: Callable[[str], RouteDecision] = route_effort,
    ) -> None:
        self.client = client
        self.retriever = retriever
        self.options = options or QAOptions()
        self.router = router
        graph = StateGraph(_State, context_schema=_Context)
        graph.add_node("route", self._route)
        graph.add_node("retrieve", self._retrieve)
        graph.add_node("answer", self._answer)
        graph.add_node("verify", self._verify)
        graph.add_edge(START, "route")
        graph.add_edge("route", "retrieve")
        graph.add_edge("retrieve", "answer")
        graph.add_edge("answer", "verify")
        graph.add_edge("verify", END)
        self.graph = graph.compile(checkpointer=checkpointer)

    async def ask(self, question: str, principal: Principal, *, thread_id: str | None = None) -> QAResult:
        question = question.strip()
        if not question:
            raise ValueError("the question is empty")
        thread_id = thread_id or uuid.uuid4().hex[:12]
        config: Any = {"configurable": {"thread_id": thread_id}}
        if self.graph.checkpointer is not None:
            previous = await self.graph.aget_state(config)
            owner = previous.values.get("owner")
            if owner is not None and owner != principal.user:
                # A thread's history may quote documents only its owner can read.
                raise ThreadAccessError(f"Thread {thread_id!r} belongs to another user; start a new thread.")
        started = time.perf_counter()
        state = await self.graph.ainvoke(
            {"question": question, "owner": principal.user, "flags": []},
            config,
            context=_Context(principal=principal),
        )
        timings = {**state["timings"], "total_ms": (time.perf_counter() - started) * 1000}
        return QAResult(
            thread_id=thread_id,
            question=question,
            answer=state["answer"],
            citations=[Citation.model_validate(c) for c in state["citations"]],
            refused=state["refused"],
            flags=state["flags"],
            reasoning_effort=state["effort"],
            effort_reason=state["effort_reason"],
            usage=Usage.model_validate(state["usage"]),
            timings=timings,
        )

    async def _route(self, state: _State) -> dict[str, Any]:
        decision = await asyncio.to_thread(self.router, state["question"])
        return {"effort": decision.effort, "effort_reason": decision.reason}

    async def _retrieve(self, state: _State, runtime: Runtime[_Context]) -> dict[str, Any]:
        query = state["question"]
        history = state.get("history") or []
        if history and _ANAPHORIC.search(query) and len(query.split()) <= 12:
            # A short follow-up that points back ("and for contractors?", "who approves it?") leans
            # on the previous question; a later issue replaces this rule with a model-written rewrite.
            query = f"{history[-1]['question']} {query}"
        started = time.perf_counter()
        hits = await asyncio.to_thread(
            self.retriever.search,
            query,
            runtime.context.principal,
            limit=self.options.top_k,
            mode=self.options.mode,
        )
        if self.options.mode == "dense":
            hits = [h for h in hits if h.score >= self.options.min_score]
        kept = [h.chunk.model_dump() for h in hits]
        return {"passages": kept, "timings": {"retrieve_ms": (time.perf_counter() - started) * 1000}}

    async def _answer(self, state: _State) -> dict[str, Any]:
        question = state["question"]
        passages = [Chunk.model_validate(p) for p in state["passages"]]
        if not passages:
            return {
                "answer": REFUSAL,
                "refused": True,
                "citation_numbers": [],
                "usage": Usage(cached_tokens=0).model_dump(),  # no model call: nothing to cache
                "history": [{"question": question, "answer": REFUSAL, "reply": _reply(REFUSAL, [])}],
                "timings": {**state["timings"], "generate_ms": 0.0},
            }
        request = ChatRequest(
            messages=self._messages(state, passages),
            reasoning_effort=state["effort"],
            max_tokens=self.options.max_tokens,
            temperature=self.options.temperature,
            response_format=_answer_schema(len(passages)),
        )
        result = await self.client.complete(request)
        answer, numbers, flags = _parse_answer(result.content)
        if result.finish_reason == "length":
            flags.append("truncated")
        return {
            "answer": answer,
            "refused": False,
            "citation_numbers": numbers,
            "flags": state["flags"] + flags,
            "usage": result.usage.model_dump(),
            "history": [{"question": question, "answer": answer, "reply": _reply(answer, numbers)}],
            "timings": {**state["timings"], "generate_ms": result.latency_ms},
        }

    async def _verify(self, state: _State) -> dict[str, Any]:
        if state["refused"]:
            return {"citations": []}
        passages = [Chunk.model_validate(p) for p in state["passages"]]
        numbers = cited_numbers(state["answer"], state["citation_numbers"])
        citations, invalid = verify(numbers, passages)
        flags = list(state["flags"])
        answer = state["answer"]
        if invalid:
            flags.append(f"dropped_citations:{','.join(map(str, invalid))}")
            answer = strip_invalid_markers(answer, invalid)
        if not citations:
            flags.append("unsupported")
        return {"citations": [c.model_dump() for c in citations], "flags": flags, "answer": answer}

    def _messages(self, state: _State, passages: list[Chunk]) -> list[Message]:
        messages = [Message(role="system", content=render("qa_system"))]
        for turn in (state.get("history") or [])[-self.options.history_turns :]:
            messages.append(Message(role="user", content=turn["question"]))
            messages.append(Message(role="assistant", content=turn["reply"]))
        block = "\n\n".join(
            render(
                "qa_passage",
                number=i,
                title=c.title or "untitled",
                source=c.source.rsplit("/", 1)[-1],
                text=c.text,
            )
            for i, c in enumerate(passages, start=1)
        )
        messages.append(
            Message(role="user", content=render("qa_turn", question=state["question"], passages=block))
        )
        return messages


def _reply(answer: str, numbers: list[int]) -> str:
    """The assistant turn as later prompts show it: canonical compact JSON, so it renders identically
    every turn (the prefix cache depends on it) and the model sees the format it must keep using."""
    return json.dumps({"answer": answer, "citations": numbers}, ensure_ascii=False)


def _answer_schema(passage_count: int) -> JsonSchema:
    return JsonSchema(
        name="cited_answer",
        schema={
            "type": "object",
            "properties": {
                "answer": {"type": "string", "minLength": 1, "maxLength": MAX_ANSWER_CHARS},
                "citations": {
                    "type": "array",
                    "items": {"type": "integer", "enum": list(range(1, passage_count + 1))},
                    "minItems": 1,
                    "maxItems": min(3, passage_count),
                },
            },
            "required": ["answer", "citations"],
            "additionalProperties": False,
        },
    )


_ANAPHORIC = re.compile(
    r"^(and|but|also|what about|how about)\b|\b(it|its|they|them|their|this|that|these|those|he|she|one)\b",
    re.IGNORECASE,
)
_ANSWER_FIELD = re.compile(r'"answer"\s*:\s*"((?:[^"\\]|\\.)*)')


def _parse_answer(content: str) -> tuple[str, list[int], list[str]]:
    """The answer text, declared citation numbers and flags, from the model's JSON (or what is left of it)."""
    try:
        data = json.loads(content)
        answer = str(data["answer"]).strip()
        numbers = [int(n) for n in data["citations"]]
        return answer, numbers, []
    except (ValueError, KeyError, TypeError):
        match = _ANSWER_FIELD.search(content)
        try:
            answer = json.loads(f'"{match.group(1)}"') if match else content.strip()
        except ValueError:
            answer = match.group(1) if match else content.strip()
        return answer or REFUSAL, [], ["malformed_output"]

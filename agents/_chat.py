"""The chat agent: a persistent conversation, streamed token by token, as a LangGraph graph
route → respond → finish.

Threads live in the checkpointer (SQLite by default, Postgres for several API replicas), so a
conversation resumes in another process. The history is append-only and holds what was said, never
the model's reasoning text. The prompt follows Bastion's layout (docs/prompt-layout.md): one system
message that only grows — instructions, then the transcript — and the new message as the user turn,
so every turn reuses the previous turn's whole prefix whatever effort either turn got.
"""

from __future__ import annotations

import asyncio
import operator
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from pydantic import BaseModel, ConfigDict

from agents._errors import QuestionError, thread_values
from agents._forget import kept_only_if_done
from agents._images import turn_message
from agents._qa_prompts import history_start
from agents._router import RouteDecision, Router, StepRecord, route_effort
from retrieval import Principal
from serving import ChatClient, ChatRequest, Effort, ImagePart, Message, Usage

SYSTEM = (
    "You are Bastion, an assistant inside an organisation's own network. Answer clearly and briefly. "
    "Say so when you do not know."
)


class ChatOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_tokens: int = 320
    temperature: float = 0.0
    history_turns: int = 24


class ChatEvent(BaseModel):
    """What a streaming caller sees: a node finishing, a piece of the reply or of the model's
    reasoning (shown, never stored), or the end of the turn with its record."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["node", "token", "reasoning", "done"]
    node: str | None = None
    text: str = ""
    effort: Effort | None = None
    reason: str | None = None
    usage: Usage | None = None
    thread_id: str | None = None
    elapsed_ms: float | None = None


@dataclass(frozen=True)
class _Context:
    cache_salt: str | None = None
    images: tuple[ImagePart, ...] = ()  # the asker's pictures: this turn's call only, never stored


class _Turn(TypedDict):
    user: str
    assistant: str


class _State(TypedDict, total=False):
    owner: str
    agent: str  # which agent's thread this is: another's turns have another shape
    history: Annotated[list[_Turn], operator.add]
    message: str
    effort: Effort
    effort_reason: str
    reply: str
    step: dict[str, Any]


class ChatAgent:
    def __init__(
        self,
        client: ChatClient,
        *,
        options: ChatOptions | None = None,
        checkpointer: BaseCheckpointSaver[str] | None = None,
        router: Router = route_effort,
    ) -> None:
        self.client = client
        self.options = options or ChatOptions()
        self.router = router
        graph = StateGraph(_State, context_schema=_Context)
        graph.add_node("route", self._route)
        graph.add_node("respond", self._respond)
        graph.add_node("finish", self._finish)
        graph.add_edge(START, "route")
        graph.add_edge("route", "respond")
        graph.add_edge("respond", "finish")
        graph.add_edge("finish", END)
        self.graph = graph.compile(checkpointer=checkpointer)

    async def stream(
        self,
        message: str,
        principal: Principal,
        *,
        thread_id: str | None = None,
        cache_salt: str | None = None,
        images: Sequence[ImagePart] = (),
    ) -> AsyncIterator[ChatEvent]:
        """One turn: node events and reply tokens as they happen, then a `done` event. `cache_salt`
        keeps this caller's prompts out of other tenants' prefix cache on SGLang; `images` go with
        the message to a server that reads them (CapabilityError, before anything runs, otherwise)."""
        message = message.strip()
        if not message:
            raise QuestionError("the message is empty")
        if images:
            await self.client.require_images()
        thread_id = thread_id or uuid.uuid4().hex[:12]
        config: Any = {"configurable": {"thread_id": thread_id}}
        await thread_values(self.graph, thread_id, principal.user, "chat")
        started = time.perf_counter()
        turn: _State = {"message": message, "owner": principal.user, "agent": "chat"}
        step: StepRecord | None = None
        context = _Context(cache_salt=cache_salt, images=tuple(images))
        async with kept_only_if_done(self.graph.checkpointer, thread_id):
            async for mode, chunk in self.graph.astream(
                turn, config, context=context, stream_mode=["custom", "updates"]
            ):
                if mode == "custom":
                    yield ChatEvent.model_validate(chunk)
                    continue
                updates: dict[str, dict[str, Any]] = chunk  # type: ignore[assignment]
                for node, update in updates.items():
                    if node == "route":
                        yield ChatEvent(
                            kind="node", node=node, effort=update["effort"], reason=update["effort_reason"]
                        )
                    elif node == "respond":
                        step = StepRecord.model_validate(update["step"])
                        yield ChatEvent(kind="node", node=node, effort=step.effort, usage=step.usage)
                    else:
                        yield ChatEvent(kind="node", node=node)
        yield ChatEvent(
            kind="done",
            thread_id=thread_id,
            effort=step.effort if step else None,
            usage=step.usage if step else None,
            elapsed_ms=(time.perf_counter() - started) * 1000,
        )

    async def history(self, thread_id: str, principal: Principal) -> list[tuple[str, str]]:
        values = await thread_values(self.graph, thread_id, principal.user, "chat")
        return [(t["user"], t["assistant"]) for t in values.get("history") or []]

    async def _route(self, state: _State) -> dict[str, Any]:
        decision = await asyncio.to_thread(self.router, state["message"])
        return {"effort": decision.effort, "effort_reason": decision.reason}

    async def _respond(self, state: _State, runtime: Runtime[_Context]) -> dict[str, Any]:
        write = get_stream_writer()
        decision = RouteDecision(effort=state["effort"], reason=state["effort_reason"])
        request = ChatRequest(
            messages=[*self._prefix(state), turn_message(state["message"], runtime.context.images)],
            reasoning_effort=decision.effort,
            max_tokens=self.options.max_tokens,
            temperature=self.options.temperature,
            cache_salt=runtime.context.cache_salt,
        )
        parts: list[str] = []
        usage, started = Usage(), time.perf_counter()
        async for event in self.client.stream(request):
            if event.reasoning_content:
                write({"kind": "reasoning", "text": event.reasoning_content})
            if event.content:
                parts.append(event.content)
                write({"kind": "token", "text": event.content})
            usage = event.usage or usage
        step = StepRecord(
            step="chat",
            effort=decision.effort,
            reason=decision.reason,
            usage=usage,
            latency_ms=(time.perf_counter() - started) * 1000,
        )
        return {"reply": "".join(parts).strip(), "step": step.model_dump()}

    async def _finish(self, state: _State) -> dict[str, Any]:
        # Only the reply text is kept: reasoning is shown while it streams and never sent back.
        return {"history": [{"user": state["message"], "assistant": state["reply"]}]}

    def _prefix(self, state: _State) -> list[Message]:
        history = state.get("history") or []
        shown = history[history_start(len(history), self.options.history_turns) :]
        transcript = "".join(f"\n\nUser: {t['user']}\nAssistant: {t['assistant']}" for t in shown)
        system = SYSTEM + ("\n\nConversation so far:" + transcript if shown else "")
        return [Message(role="system", content=system)]

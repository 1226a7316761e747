"""Document QA as a LangGraph graph: route → (rewrite) → retrieve → answer → check → (escalate) → finish.

Prompt layout, chosen for the server's prefix cache: one system message that only ever grows —
the static instructions, then per earlier turn the passages it showed first (numbered for the whole
thread) with its question and answer, then the passages this turn shows first — and a short user
message with the step's instruction. Turn n's system message starts with all of turn n-1's, so the
server reuses everything but the last question, its answer and the new passages; and since it all
sits in the system message, that holds whichever reasoning effort each step gets (Mistral's
template renders the effort after the system prompt: docs/prompt-layout.md).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from agents._claims import ESCALATING_FLAGS, Checked, answer_schema, check, parse_draft, reply_json
from agents._errors import QuestionError, thread_values
from agents._evidence import turn_evidence
from agents._forget import kept_only_if_done
from agents._images import attachable, turn_message
from agents._prompts import render
from agents._qa_options import REFUSAL, QAOptions, QAResult
from agents._qa_prompts import REWRITE_SCHEMA, VERIFY_SCHEMA, is_search_query, verify_request
from agents._qa_state import (
    QAState,
    Turn,
    interleave,
    number,
    prefix,
    recheck,
    shown_passages,
    shown_turns,
    withheld,
)
from agents._router import RouteDecision, Router, Step, StepRecord, decide, route_effort, total_usage
from agents._search_assist import SearchAssist
from retrieval import Principal, Retriever
from serving import ChatClient, ChatRequest, ChatResult, ImagePart, Message


@dataclass(frozen=True)
class _Context:
    principal: Principal
    cache_salt: str | None = None
    images: tuple[ImagePart, ...] = ()  # the asker's pictures: this turn's answer call only, never stored


class QAAgent:
    def __init__(
        self,
        client: ChatClient,
        retriever: Retriever,
        *,
        options: QAOptions | None = None,
        checkpointer: BaseCheckpointSaver[str] | None = None,
        router: Router = route_effort,
    ) -> None:
        self.client = client
        self.retriever = retriever
        self.options = options or QAOptions()
        self.router = router
        graph = StateGraph(QAState, context_schema=_Context)
        graph.add_node("route", self._route)
        graph.add_node("rewrite", self._rewrite)
        graph.add_node("retrieve", self._retrieve)
        graph.add_node("answer", self._answer)
        graph.add_node("check", self._check)
        graph.add_node("escalate", self._escalate)
        graph.add_node("verify", self._verify)
        graph.add_node("finish", self._finish)
        graph.add_edge(START, "route")
        graph.add_conditional_edges("route", _after_route, ["rewrite", "retrieve"])
        graph.add_edge("rewrite", "retrieve")
        graph.add_edge("retrieve", "answer")
        graph.add_edge("answer", "check")
        graph.add_conditional_edges("check", self._after_check, ["escalate", "verify", "finish"])
        graph.add_edge("escalate", "answer")
        graph.add_edge("verify", "finish")
        graph.add_edge("finish", END)
        self.graph = graph.compile(checkpointer=checkpointer)

    async def ask(
        self,
        question: str,
        principal: Principal,
        *,
        thread_id: str | None = None,
        cache_salt: str | None = None,
        images: Sequence[ImagePart] = (),
    ) -> QAResult:
        """Answer one question for `principal` in a thread. `cache_salt` keeps this caller's prompts out
        of other tenants' prefix cache on SGLang (`ChatRequest.cache_salt`). `images` go to the model
        with the question (agents/_images.py); a server without vision refuses them before anything
        runs or is stored (CapabilityError)."""
        question = question.strip()
        if not question:
            raise QuestionError("the question is empty")
        if images:
            await self.client.require_images()
        thread_id = thread_id or uuid.uuid4().hex[:12]
        config: Any = {"configurable": {"thread_id": thread_id}}
        await thread_values(self.graph, thread_id, principal.user, "qa")
        started = time.perf_counter()
        turn: QAState = {
            "question": question,
            "search_query": question,
            "owner": principal.user,
            "agent": "qa",
            "flags": [],
            "steps": [],
            "escalated": False,
            "retrieved": [],
            "introduced": [],
            "withdrawn": [],
            "timings": {},
        }
        context = _Context(principal=principal, cache_salt=cache_salt, images=tuple(images))
        async with kept_only_if_done(self.graph.checkpointer, thread_id):
            state = await self.graph.ainvoke(turn, config, context=context)
        checked = Checked.model_validate(state["checked"])
        steps = [StepRecord.model_validate(s) for s in state["steps"]]
        timings = {
            **state["timings"],
            "model_ms": sum(s.latency_ms for s in steps),  # every call: rewrite, answer, escalation
            "total_ms": (time.perf_counter() - started) * 1000,
        }
        return QAResult(
            thread_id=thread_id,
            question=question,
            search_query=state["search_query"],
            answer=checked.answer,
            retrieved_chunk_ids=[state["evidence"][n - 1]["chunk_id"] for n in state["retrieved"]],
            citations=checked.citations,
            refused=checked.refused,
            flags=state["flags"],
            support=checked.support,
            reasoning_effort=state["effort"],
            effort_reason=state["effort_reason"],
            escalated=state["escalated"],
            steps=steps,
            usage=total_usage(steps),
            timings=timings,
        )

    # -- nodes -------------------------------------------------------------------------------

    async def _route(self, state: QAState, runtime: Runtime[_Context]) -> dict[str, Any]:
        decision = await asyncio.to_thread(decide, self.router, "answer", state["question"])
        withdrawn = await asyncio.to_thread(
            recheck, state, self.options.history_turns, self.retriever.store, runtime.context.principal
        )
        flags = state["flags"] + (["passages_withdrawn"] if withdrawn else [])
        return {
            "effort": decision.effort,
            "effort_reason": decision.reason,
            "withdrawn": withdrawn,
            "flags": flags,
        }

    async def _rewrite(self, state: QAState, runtime: Runtime[_Context]) -> dict[str, Any]:
        """A follow-up leans on the conversation ("and for contractors?"): spell it out for retrieval."""
        decision = decide(self.router, "rewrite", state["question"])
        messages = [
            *prefix(state, self.options.history_turns),
            Message(role="user", content=render("qa_rewrite", question=state["question"])),
        ]
        result = await self.client.complete(
            ChatRequest(
                messages=messages,
                reasoning_effort=decision.effort,
                max_tokens=64,
                temperature=0.0,
                response_format=REWRITE_SCHEMA,
                cache_salt=runtime.context.cache_salt,
            )
        )
        try:
            query = str(json.loads(result.content)["query"]).strip()
        except (ValueError, KeyError, TypeError):
            query = ""
        flags = [] if query else ["rewrite_failed"]
        context = " ".join(
            f"{t['question']} {t['answer'] if not withheld(t, state) else ''}"
            for t in shown_turns(state, self.options.history_turns)
        )
        if query and not is_search_query(query, state["question"], context):
            query, flags = "", ["rewrite_rejected"]
        return {
            "search_query": query or state["question"],
            "flags": state["flags"] + flags,
            "steps": [*state["steps"], _record("rewrite", decision, result)],
        }

    async def _retrieve(self, state: QAState, runtime: Runtime[_Context]) -> dict[str, Any]:
        started = time.perf_counter()
        assist = self.options.assist
        steps, flags = list(state["steps"]), list(state["flags"])
        # The rewrite widens recall and never narrows it: a small model's rewrite can drift, so the
        # question as asked is searched too and the result lists are interleaved; so is the model's
        # passage in the documents' words when expansion is on.
        queries = list(dict.fromkeys([state["search_query"], state["question"]]))
        searcher = SearchAssist(self.client, self.retriever, assist)
        if assist.expand:
            passage, step = await searcher.expand(
                state["search_query"], cache_salt=runtime.context.cache_salt
            )
            steps.append(step.model_dump())
            if passage:
                queries.insert(0, f"{state['search_query']}\n{passage}")
            else:
                flags.append("expand_failed")
        wanted = max(self.options.top_k, assist.candidates) if assist.rerank else self.options.top_k
        lists = [
            await asyncio.to_thread(
                self.retriever.search,
                query,
                runtime.context.principal,
                limit=wanted,
                mode=self.options.mode,
            )
            for query in queries
        ]
        floor = self.options.min_score if self.options.mode == "dense" else None
        ordered = interleave(lists, wanted, min_score=floor)
        if assist.rerank and len(ordered) > 1:
            ordered, step, ok = await searcher.rerank(
                state["search_query"], ordered, cache_salt=runtime.context.cache_salt
            )
            steps.append(step.model_dump())
            flags += [] if ok else ["rerank_failed"]
        hits = [h.chunk for h in ordered[: self.options.top_k]]
        shown = await turn_evidence(
            hits,
            self.retriever,
            runtime.context.principal,
            query=state["search_query"],
            mode=self.options.mode,
            section_tokens=self.options.section_tokens,
            pin_budget=await self._pin_budget(),
            first_turn=not state.get("history"),
            in_window=list(shown_passages(state, self.options.history_turns, new=False).values()),
        )
        added, introduced, numbers = number(state, shown, self.options.history_turns)
        retrieved = [numbers[c.chunk_id] for c in hits]
        elapsed = (time.perf_counter() - started) * 1000
        return {
            "evidence": added,
            "retrieved": retrieved,
            "introduced": introduced,
            "timings": {**state["timings"], "retrieve_ms": elapsed},
            "steps": steps,
            "flags": flags,
        }

    async def _pin_budget(self) -> int:
        """The thread's budget for pinned documents: the option, but never more than half the
        server's context, which must still hold the transcript, the question and the answer."""
        if not self.options.pin_tokens:
            return 0
        window = await self.client.context_length()
        return min(self.options.pin_tokens, window // 2) if window else self.options.pin_tokens

    async def _answer(self, state: QAState, runtime: Runtime[_Context]) -> dict[str, Any]:
        if not state["retrieved"]:
            return {"draft": ""}
        decision = RouteDecision(effort=state["effort"], reason=state["effort_reason"])
        passages = shown_passages(state, self.options.history_turns)
        attached: dict[int, ImagePart] = {}
        unavailable: list[int] = []
        if any(c.doc_type == "image" for c in passages.values()) and await self.client.supports_images():
            attached, unavailable = await asyncio.to_thread(attachable, passages)
        question = render("qa_turn", question=state["question"])
        if self.options.pin_tokens or self.options.section_tokens:
            # More than the hits is shown (whole documents, sections): say which passages the search
            # ranked first, in the turn's own message so the cached prefix stays as it is.
            found = [f"[{n}]" for n in state["retrieved"] if n in passages]
            if found:
                question += "\n" + render("qa_found", passages=", ".join(found))
        if runtime.context.images:
            question += "\n" + render("images_asked", count=len(runtime.context.images))
        request = ChatRequest(
            messages=[
                *prefix(state, self.options.history_turns, with_new_passages=True),
                turn_message(question, runtime.context.images, attached),
            ],
            reasoning_effort=decision.effort,
            max_tokens=self.options.max_tokens,
            temperature=self.options.temperature,
            response_format=answer_schema(passages),
            cache_salt=runtime.context.cache_salt,
        )
        result = await self.client.complete(request)
        flags = ["truncated"] if result.finish_reason == "length" else []
        if unavailable:
            flags.append(f"image_unavailable:{','.join(map(str, unavailable))}")
        generate_ms = state["timings"].get("generate_ms", 0.0) + result.latency_ms
        return {
            "draft": result.content,
            "pictures": sorted(attached),
            "flags": state["flags"] + flags,
            "steps": [*state["steps"], _record("answer", decision, result)],
            "timings": {**state["timings"], "generate_ms": generate_ms},
        }

    async def _check(self, state: QAState) -> dict[str, Any]:
        if not state["retrieved"]:
            # Retrieval found nothing this user may read: refuse without asking the model.
            checked = Checked(answer=REFUSAL, claims=[], citations=[], refused=True, flags=[])
            return {"checked": checked.model_dump()}
        draft, malformed = parse_draft(state["draft"])
        checked = check(
            draft,
            shown_passages(state, self.options.history_turns),
            refusal=REFUSAL,
            question=state["question"],
            threshold=self.options.support_threshold,
            pictures=set(state.get("pictures") or []),
        )
        flags = [*checked.flags, *(["malformed_output"] if malformed else [])]
        return {"checked": checked.model_dump(), "flags": state["flags"] + flags}

    def _after_check(self, state: QAState) -> Literal["escalate", "verify", "finish"]:
        if not state["retrieved"]:
            return "finish"
        failed = {flag.split(":")[0] for flag in state["flags"]} & ESCALATING_FLAGS
        if self.options.escalate and state["effort"] != "high" and failed:
            return "escalate"
        refused = Checked.model_validate(state["checked"]).refused
        return "verify" if self.options.verify and not refused else "finish"

    async def _verify(self, state: QAState, runtime: Runtime[_Context]) -> dict[str, Any]:
        """A second look by the model at what survived the checks: does the quoted text answer the
        question asked, or only a neighbouring one? Lexical support cannot tell "annual leave is 25
        days" from an answer to "how many paid days off for a sick child?"; a strong model can (the
        1.5B local one says yes to everything, hence off by default). It costs a short call whose
        prefix is the answer call's, so the server has it cached."""
        checked = Checked.model_validate(state["checked"])
        decision = decide(self.router, "verify", state["question"])
        result = await self.client.complete(
            ChatRequest(
                messages=[
                    *prefix(state, self.options.history_turns, with_new_passages=True),
                    Message(
                        role="user",
                        content=verify_request(state["question"], checked.claims),
                    ),
                ],
                reasoning_effort=decision.effort,
                max_tokens=16,
                temperature=0.0,
                response_format=VERIFY_SCHEMA,
                cache_salt=runtime.context.cache_salt,
            )
        )
        steps = [*state["steps"], _record("verify", decision, result)]
        try:
            answers = bool(json.loads(result.content)["answers_question"])
        except (ValueError, KeyError, TypeError):
            return {"steps": steps, "flags": [*state["flags"], "verify_failed"]}  # the checks stand
        if answers:
            return {"steps": steps}
        declined = Checked(
            answer=REFUSAL,
            claims=[],
            citations=[],
            refused=True,
            flags=["verifier_declined"],
            support=checked.support,
        )
        return {
            "steps": steps,
            "checked": declined.model_dump(),
            "flags": [*state["flags"], "verifier_declined"],
        }

    async def _escalate(self, state: QAState) -> dict[str, Any]:
        failed = sorted({flag.split(":")[0] for flag in state["flags"]} & ESCALATING_FLAGS)
        return {
            "effort": "high",
            "effort_reason": f"escalated after the none answer failed: {', '.join(failed)}",
            "escalated": True,
            "flags": [f"escalated:{','.join(failed)}"],  # the first attempt's flags no longer apply
        }

    async def _finish(self, state: QAState) -> dict[str, Any]:
        checked = Checked.model_validate(state["checked"])
        turn: Turn = {
            "question": state["question"],
            "answer": checked.answer,
            "reply": reply_json(checked),
            "introduced": state["introduced"],
            "cited": sorted({n for claim in checked.claims for n in claim.citations}),
        }
        return {"history": [turn]}


def _after_route(state: QAState) -> Literal["rewrite", "retrieve"]:
    return "rewrite" if state.get("history") else "retrieve"


def _record(step: Step, decision: RouteDecision, result: ChatResult) -> dict[str, Any]:
    record = StepRecord(
        step=step,
        effort=decision.effort,
        reason=decision.reason,
        usage=result.usage,
        latency_ms=result.latency_ms,
    )
    return record.model_dump()

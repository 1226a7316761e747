"""`POST /v1/chat/completions`: OpenAI's shape in and out, Bastion's agents in between.

`bastion-qa` answers from the caller's documents; its answer is checked before anything is shown,
so it streams as one block followed by the citations. `bastion-chat` streams token by token. Both
append an audit record and remember the conversation as the client will re-send it, so the next
call continues the same thread.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import HTTPException
from fastapi.responses import JSONResponse, StreamingResponse

from agents import QAResult
from bastion.api._metrics import ApiMetrics
from bastion.api._schemas import (
    ChatCompletionRequest,
    WireMessage,
    chunk_json,
    completion_id,
    completion_json,
    conversation_key,
    usage_json,
)
from bastion.api._services import Services, cache_salt
from bastion.audit import AuditRecord, sha256_text
from bastion.keys import KeyInfo
from serving import Usage


def _thread_for(services: Services, who: KeyInfo, messages: list[WireMessage]) -> str | None:
    earlier = messages[:-1]
    if not any(m.role in ("user", "assistant") for m in earlier):
        return None
    return services.conversations.thread_of(conversation_key(who.user, earlier))


def _remember(services: Services, who: KeyInfo, body: ChatCompletionRequest, reply: str, thread: str) -> None:
    after = [*body.messages, WireMessage(role="assistant", content=reply)]
    services.conversations.remember(conversation_key(who.user, after), thread)


def _with_sources(result: QAResult) -> str:
    """The answer as any chat front end shows it: text with [n] markers, then the numbered sources."""
    if not result.citations:
        return result.answer
    lines = [f"[{c.number}] {c.source.rsplit('/', 1)[-1]} — {c.title}" for c in result.citations]
    return result.answer + "\n\nSources:\n" + "\n".join(lines)


async def answer_qa(
    services: Services, metrics: ApiMetrics, body: ChatCompletionRequest, who: KeyInfo
) -> JSONResponse | StreamingResponse:
    question = body.messages[-1].text
    agent = services.qa_easy if body.reasoning_effort == "none" else services.qa
    thread = await asyncio.to_thread(_thread_for, services, who, body.messages)
    started = time.perf_counter()
    result = await agent.ask(
        question, who.principal, thread_id=thread, cache_salt=cache_salt(services.settings, who)
    )
    content = _with_sources(result)
    metrics.retrieval.observe(result.timings.get("retrieve_ms", 0.0) / 1000)
    metrics.record_usage(body.model, result.usage, [s.effort for s in result.steps])
    await asyncio.to_thread(_remember, services, who, body, content, result.thread_id)
    u = result.usage
    await asyncio.to_thread(
        services.audit.append,
        _audit_record(
            services, who, body.model, question, content, result.usage.prompt_tokens, started
        ).model_copy(
            update={
                "chunk_ids": result.retrieved_chunk_ids,
                "efforts": [s.effort for s in result.steps],
                "completion_tokens": u.completion_tokens,
                "cached_tokens": u.cached_tokens,
                "refused": result.refused,
            }
        ),
    )
    usage = usage_json(u.prompt_tokens, u.completion_tokens, u.cached_tokens)
    extension = {
        "thread_id": result.thread_id,
        "citations": [c.model_dump() for c in result.citations],
        "refused": result.refused,
        "flags": result.flags,
        "reasoning_effort": result.reasoning_effort,
        "effort_reason": result.effort_reason,
        "steps": [s.model_dump() for s in result.steps],
        "timings": result.timings,
    }
    # The answer is checked before anything is shown, so it streams whole, then its citations.
    return _reply(body, content, usage, extension)


async def answer_chat(
    services: Services, metrics: ApiMetrics, body: ChatCompletionRequest, who: KeyInfo
) -> JSONResponse | StreamingResponse:
    message = body.messages[-1].text
    agent = services.chat_easy if body.reasoning_effort == "none" else services.chat
    thread = await asyncio.to_thread(_thread_for, services, who, body.messages)
    salt = cache_salt(services.settings, who)
    cid = completion_id()
    started = time.perf_counter()

    async def finish(reply: str, done: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        u = done.usage
        metrics.record_usage(body.model, u or Usage(), [done.effort] if done.effort else [])
        await asyncio.to_thread(_remember, services, who, body, reply, done.thread_id)
        record = _audit_record(
            services, who, body.model, message, reply, u.prompt_tokens if u else 0, started
        )
        record = record.model_copy(
            update={
                "efforts": [done.effort] if done.effort else [],
                "completion_tokens": u.completion_tokens if u else 0,
                "cached_tokens": u.cached_tokens if u else None,
            }
        )
        await asyncio.to_thread(services.audit.append, record)
        usage = usage_json(
            u.prompt_tokens if u else 0, u.completion_tokens if u else 0, u.cached_tokens if u else None
        )
        return usage, {"thread_id": done.thread_id, "reasoning_effort": done.effort}

    if not body.stream:
        parts, done = [], None
        async for event in agent.stream(message, who.principal, thread_id=thread, cache_salt=salt):
            if event.kind == "token":
                parts.append(event.text)
            elif event.kind == "done":
                done = event
        reply = "".join(parts).strip()
        usage, extension = await finish(reply, done)
        return JSONResponse(completion_json(cid, body.model, reply, usage, extension))

    async def events() -> AsyncIterator[str]:
        yield _sse(chunk_json(cid, body.model, {"role": "assistant", "content": ""}))
        parts: list[str] = []
        async for event in agent.stream(message, who.principal, thread_id=thread, cache_salt=salt):
            if event.kind == "token":
                parts.append(event.text)
                yield _sse(chunk_json(cid, body.model, {"content": event.text}))
            elif event.kind == "done":
                usage, extension = await finish("".join(parts).strip(), event)
                yield _sse(chunk_json(cid, body.model, {}, finish="stop", usage=usage, extension=extension))
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


def _audit_record(
    services: Services,
    who: KeyInfo,
    agent: str,
    question: str,
    answer: str,
    prompt_tokens: int,
    started: float,
) -> AuditRecord:
    return AuditRecord(
        user=who.user,
        groups=who.groups,
        key_id=who.key_id,
        agent=agent,
        question_sha256=sha256_text(question),
        question=question if services.settings.api.audit_text else None,
        model=services.settings.model.name or services.client.base_url,
        prompt_tokens=prompt_tokens,
        latency_ms=(time.perf_counter() - started) * 1000,
        answer_sha256=sha256_text(answer),
    )


def _sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


async def answer_code(
    services: Services, metrics: ApiMetrics, body: ChatCompletionRequest, who: KeyInfo
) -> JSONResponse | StreamingResponse:
    """The coding assistant over the repository the server is configured with (BASTION_API_CODE_REPO)."""
    if services.code is None or services.settings.api.code_repo is None:
        raise HTTPException(400, "bastion-code is not enabled on this server: set BASTION_API_CODE_REPO.")
    question = body.messages[-1].text
    thread = await asyncio.to_thread(_thread_for, services, who, body.messages)
    started = time.perf_counter()
    result = await services.code.ask(
        question,
        services.settings.api.code_repo,
        who.principal,
        thread_id=thread,
        cache_salt=cache_salt(services.settings, who),
    )
    sources = [f"{c.path}:{c.start_line}-{c.end_line}" for c in result.citations]
    content = result.answer + ("\n\nSources:\n" + "\n".join(sources) if sources else "")
    u = result.usage
    efforts = [s.effort for s in result.steps]
    metrics.record_usage(body.model, u, efforts)
    await asyncio.to_thread(_remember, services, who, body, content, result.thread_id)
    record = _audit_record(services, who, body.model, question, content, u.prompt_tokens, started)
    update = {"efforts": efforts, "completion_tokens": u.completion_tokens, "cached_tokens": u.cached_tokens}
    await asyncio.to_thread(services.audit.append, record.model_copy(update=update))
    usage = usage_json(u.prompt_tokens, u.completion_tokens, u.cached_tokens)
    extension = {
        "thread_id": result.thread_id,
        "citations": [c.model_dump() for c in result.citations],
        "mode": result.mode,
        "packed_files": result.packed_files,
        "repacked": result.repacked,
        "flags": result.flags,
        "reasoning_effort": result.reasoning_effort,
        "steps": [s.model_dump() for s in result.steps],
    }
    return _reply(body, content, usage, extension)


def _reply(
    body: ChatCompletionRequest, content: str, usage: dict[str, Any], extension: dict[str, Any]
) -> JSONResponse | StreamingResponse:
    """A checked answer, whole: as one JSON completion, or as a short SSE stream of the same."""
    cid = completion_id()
    if not body.stream:
        return JSONResponse(completion_json(cid, body.model, content, usage, extension))

    async def events() -> AsyncIterator[str]:
        yield _sse(chunk_json(cid, body.model, {"role": "assistant", "content": ""}))
        yield _sse(chunk_json(cid, body.model, {"content": content}))
        yield _sse(chunk_json(cid, body.model, {}, finish="stop", usage=usage, extension=extension))
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")

"""`POST /v1/chat/completions`: OpenAI's shape in and out, Bastion's agents in between.

`bastion-qa` answers from the caller's documents; its answer is checked before anything is shown,
so it streams as one block followed by the citations. `bastion-chat` streams token by token. Both
append an audit record and remember the conversation as the client will re-send it, so the next
call continues the same thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import HTTPException
from fastapi.responses import JSONResponse, StreamingResponse

from agents import ChatEvent, QAResult
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
from bastion.api._services import Services, cache_salt, public_source, question_fields
from bastion.audit import AuditRecord, sha256_text
from bastion.keys import KeyInfo
from serving import Effort, ImagePart, ServingError, Usage

log = logging.getLogger("bastion.api")


def _thread_for(services: Services, who: KeyInfo, model: str, messages: list[WireMessage]) -> str | None:
    earlier = messages[:-1]
    if not any(m.role in ("user", "assistant") for m in earlier):
        return None
    return services.conversations.thread_of(conversation_key(who.user, model, earlier))


def _remember(services: Services, who: KeyInfo, body: ChatCompletionRequest, reply: str, thread: str) -> None:
    after = [*body.messages, WireMessage(role="assistant", content=reply)]
    services.conversations.remember(conversation_key(who.user, body.model, after), thread)


_STREAM_FAILED = "The answer failed part-way; the server logged why. Send the request again."


def _with_sources(result: QAResult) -> str:
    """The answer as any chat front end shows it: text with [n] markers, then the numbered sources."""
    if not result.citations:
        return result.answer
    lines = [f"[{c.number}] {c.source.rsplit('/', 1)[-1]} — {c.title}" for c in result.citations]
    return result.answer + "\n\nSources:\n" + "\n".join(lines)


async def answer_qa(
    services: Services,
    metrics: ApiMetrics,
    body: ChatCompletionRequest,
    who: KeyInfo,
    images: list[ImagePart] | None = None,
) -> JSONResponse | StreamingResponse:
    question = body.messages[-1].text
    agent = services.qa_easy if body.reasoning_effort == "none" else services.qa
    thread = await asyncio.to_thread(_thread_for, services, who, body.model, body.messages)
    started = time.perf_counter()
    result = await agent.ask(
        question,
        who.principal,
        thread_id=thread,
        cache_salt=cache_salt(services.settings, who),
        images=images or (),
    )
    content = _with_sources(result)
    metrics.retrieval.observe(result.timings.get("retrieve_ms", 0.0) / 1000)
    usage = await _account(
        services,
        metrics,
        who,
        body,
        question,
        content,
        result.thread_id,
        result.usage,
        [s.effort for s in result.steps],
        started,
        chunk_ids=result.retrieved_chunk_ids,
        refused=result.refused,
        images=images,
    )
    extension = {
        "thread_id": result.thread_id,
        "citations": [
            {**c.model_dump(), "source": public_source(services, c.source)} for c in result.citations
        ],
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
    services: Services,
    metrics: ApiMetrics,
    body: ChatCompletionRequest,
    who: KeyInfo,
    images: list[ImagePart] | None = None,
) -> JSONResponse | StreamingResponse:
    message = body.messages[-1].text
    agent = services.chat_easy if body.reasoning_effort == "none" else services.chat
    thread = await asyncio.to_thread(_thread_for, services, who, body.model, body.messages)
    salt = cache_salt(services.settings, who)
    cid = completion_id()
    started = time.perf_counter()

    async def finish(reply: str, done: ChatEvent) -> tuple[dict[str, Any], dict[str, Any]]:
        efforts = [done.effort] if done.effort else []
        usage = await _account(
            services,
            metrics,
            who,
            body,
            message,
            reply,
            done.thread_id or "",
            done.usage or Usage(),
            efforts,
            started,
            images=images,
        )
        return usage, {"thread_id": done.thread_id, "reasoning_effort": done.effort}

    if not body.stream:
        parts, done = [], None
        async for event in agent.stream(
            message, who.principal, thread_id=thread, cache_salt=salt, images=images or ()
        ):
            if event.kind == "token":
                parts.append(event.text)
            elif event.kind == "done":
                done = event
        reply = "".join(parts).strip()
        assert done is not None  # the agent's stream always ends with its `done` event
        usage, extension = await finish(reply, done)
        return JSONResponse(completion_json(cid, body.model, reply, usage, extension))

    async def events() -> AsyncIterator[str]:
        yield _sse(chunk_json(cid, body.model, {"role": "assistant", "content": ""}))
        parts: list[str] = []
        try:
            async for event in agent.stream(
                message, who.principal, thread_id=thread, cache_salt=salt, images=images or ()
            ):
                if event.kind == "token":
                    parts.append(event.text)
                    yield _sse(chunk_json(cid, body.model, {"content": event.text}))
                elif event.kind == "done":
                    usage, extension = await finish("".join(parts).strip(), event)
                    yield _sse(
                        chunk_json(cid, body.model, {}, finish="stop", usage=usage, extension=extension)
                    )
        except Exception as exc:  # the status line is gone: the error travels in the stream itself
            log.exception("stream %s failed after %d tokens", cid, len(parts))
            _stream_failed(services, who, body, message, started, type(exc).__name__)
            status = 502 if isinstance(exc, ServingError) else 500
            yield _sse({"error": {"message": _STREAM_FAILED, "type": "api_error", "code": status}})
        except (asyncio.CancelledError, GeneratorExit):
            # The client went away mid-answer; written at once, since nothing more may be awaited.
            _stream_failed(
                services, who, body, message, started, f"client disconnected after {len(parts)} tokens"
            )
            raise
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


def _stream_failed(
    services: Services, who: KeyInfo, body: ChatCompletionRequest, question: str, started: float, why: str
) -> None:
    record = AuditRecord(
        event="answer_failed",
        user=who.user,
        groups=who.groups,
        key_id=who.key_id,
        agent=body.model,
        **question_fields(services, question),
        latency_ms=(time.perf_counter() - started) * 1000,
        detail=why,
    )
    services.audit.append(record)


async def _account(
    services: Services,
    metrics: ApiMetrics,
    who: KeyInfo,
    body: ChatCompletionRequest,
    question: str,
    answer: str,
    thread_id: str,
    usage: Usage,
    efforts: list[Effort],
    started: float,
    *,
    chunk_ids: list[str] | None = None,
    refused: bool = False,
    images: list[ImagePart] | None = None,
) -> dict[str, Any]:
    """Everything an answered request leaves behind: metrics, the conversation's next key, and the
    audit record. Returns the usage in OpenAI's shape."""
    metrics.record_usage(body.model, usage, efforts)
    await asyncio.to_thread(_remember, services, who, body, answer, thread_id)
    record = AuditRecord(
        user=who.user,
        groups=who.groups,
        key_id=who.key_id,
        agent=body.model,
        **question_fields(services, question),
        chunk_ids=chunk_ids or [],
        image_sha256s=[image.sha256 for image in images or []],
        model=services.settings.model.name or services.client.base_url,
        efforts=list(efforts),
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cached_tokens=usage.cached_tokens,
        latency_ms=(time.perf_counter() - started) * 1000,
        answer_sha256=sha256_text(answer),
        refused=refused,
    )
    await asyncio.to_thread(services.audit.append, record)
    return usage_json(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)


def _sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def may_read_code(services: Services, who: KeyInfo) -> bool:
    """A repository is a document like any other: only keys in its groups may ask about it."""
    return bool(services.settings.api.code_readers & set(who.groups))


async def answer_code(
    services: Services, metrics: ApiMetrics, body: ChatCompletionRequest, who: KeyInfo
) -> JSONResponse | StreamingResponse:
    """The coding assistant over the repository the server is configured with (BASTION_API_CODE_REPO)."""
    if services.code is None or services.settings.api.code_repo is None:
        raise HTTPException(400, "bastion-code is not enabled on this server: set BASTION_API_CODE_REPO.")
    if not may_read_code(services, who):
        raise HTTPException(
            403,
            "Your key's groups may not read this server's code repository "
            "(BASTION_API_CODE_REPO_GROUPS lists the groups that may).",
        )
    question = body.messages[-1].text
    thread = await asyncio.to_thread(_thread_for, services, who, body.model, body.messages)
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
    usage = await _account(
        services,
        metrics,
        who,
        body,
        question,
        content,
        result.thread_id,
        result.usage,
        [s.effort for s in result.steps],
        started,
    )
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

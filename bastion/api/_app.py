"""`bastion api`: an OpenAI-compatible HTTP service over Bastion's agents, with API keys and an audit log.

FastAPI, for its typed request models, its OpenAPI schema for free and its dependency injection for
authentication; uvicorn serves it. The Principal of every request comes from its API key and from
nothing else: not the body (OpenAI's `user` field is ignored), not a header the client chooses, not
the model's output.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse

from agents import ChatAgent, ChatOptions, QAAgent, QAOptions, QAResult, RouteDecision, Router
from bastion.api._schemas import (
    AGENTS,
    ChatCompletionRequest,
    SearchRequest,
    WireMessage,
    chunk_json,
    completion_id,
    completion_json,
    conversation_key,
    usage_json,
)
from bastion.api._threads import ConversationMap
from bastion.audit import AuditLog, AuditRecord, sha256_text
from bastion.errors import BastionError
from bastion.keys import KeyInfo, KeyStore
from bastion.settings import Settings
from bastion.wiring import chat_client, make_embedder, make_router, model_url, open_checkpointer, open_store
from retrieval import Retriever
from serving import ChatClient, ServingError

log = logging.getLogger("bastion.api")


@dataclass
class Services:
    settings: Settings
    keys: KeyStore
    audit: AuditLog
    conversations: ConversationMap
    retriever: Retriever
    client: ChatClient
    qa: QAAgent
    qa_easy: QAAgent  # for clients that ask for reasoning_effort "none": the router's upper bound
    chat: ChatAgent
    chat_easy: ChatAgent


def _easy(text: str) -> RouteDecision:
    return RouteDecision(effort="none", reason="the client asked for reasoning_effort none")


@asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    """Everything a request needs, opened once per process and kept warm."""
    async with AsyncExitStack() as stack:
        embedder = make_embedder(settings)
        store = stack.enter_context(open_store(settings, dimension=embedder.dimension))
        client = await stack.enter_async_context(chat_client(settings, model_url(settings, log.info)))
        saver = await stack.enter_async_context(open_checkpointer(settings))
        data = settings.data_dir
        keys, audit = KeyStore(data / "keys.sqlite"), AuditLog(data / "audit.sqlite")
        conversations = ConversationMap(data / "api-conversations.sqlite")
        for closable in (keys, audit, conversations):
            stack.callback(closable.close)
        retriever = Retriever(embedder, store)
        router: Router = make_router(settings, embedder)
        qa_options = QAOptions(
            top_k=settings.retrieval.top_k,
            mode=settings.retrieval.mode,
            min_score=settings.retrieval.min_score,
            max_tokens=settings.model.max_tokens,
            temperature=settings.model.temperature,
            escalate=settings.agent.router == "escalate",
        )
        chat_options = ChatOptions(
            max_tokens=settings.model.max_tokens, temperature=settings.model.temperature
        )
        yield Services(
            settings=settings,
            keys=keys,
            audit=audit,
            conversations=conversations,
            retriever=retriever,
            client=client,
            qa=QAAgent(client, retriever, options=qa_options, checkpointer=saver, router=router),
            qa_easy=QAAgent(
                client,
                retriever,
                options=qa_options.model_copy(update={"escalate": False}),
                checkpointer=saver,
                router=_easy,
            ),
            chat=ChatAgent(client, options=chat_options, checkpointer=saver, router=router),
            chat_easy=ChatAgent(client, options=chat_options, checkpointer=saver, router=_easy),
        )


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_services(settings) as services:
            app.state.services = services
            yield

    app = FastAPI(
        title="Bastion",
        summary="Answers from your own documents, on your own servers. OpenAI-compatible.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.include_router(_routes())
    return app


# -- errors in OpenAI's shape, so clients show them ------------------------------------------------


def _error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "code": status}}
    return JSONResponse(body, status_code=status, headers=headers)


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    kind = {401: "authentication_error", 403: "permission_error", 404: "not_found_error"}.get(
        exc.status_code, "api_error" if exc.status_code >= 500 else "invalid_request_error"
    )
    return _error(exc.status_code, str(exc.detail), kind, dict(exc.headers or {}))


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    return _error(
        400, f"{where}: {first.get('msg')}" if where else str(first.get("msg")), "invalid_request_error"
    )


# -- identity ----------------------------------------------------------------------------------


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def caller(request: Request, authorization: Annotated[str | None, Header()] = None) -> KeyInfo:
    """The API key's record. Every route but health checks depends on this."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(
            401, "Missing API key: send `Authorization: Bearer <key>`.", {"WWW-Authenticate": "Bearer"}
        )
    info = await asyncio.to_thread(services_of(request).keys.authenticate, token)
    if info is None:
        raise HTTPException(401, "Invalid or revoked API key.", {"WWW-Authenticate": "Bearer"})
    return info


def cache_salt(settings: Settings, who: KeyInfo) -> str | None:
    """Callers with different salts never share KV cache on SGLang: by group set, by user, or none."""
    mode = settings.api.cache_salt
    if mode == "none":
        return None
    basis = f"user:{who.user}" if mode == "user" else "groups:" + ",".join(sorted(who.groups))
    return hashlib.sha256(basis.encode()).hexdigest()[:16]


Caller = Annotated[KeyInfo, Depends(caller)]


# -- routes ------------------------------------------------------------------------------------


def _routes() -> Any:
    from fastapi import APIRouter

    router = APIRouter()

    @router.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @router.get("/readyz", tags=["health"])
    async def readyz(request: Request) -> JSONResponse:
        """The model server answers and the store is readable."""
        services = services_of(request)
        model_ok = await services.client.health()
        try:
            chunks: int | None = await asyncio.to_thread(services.retriever.store.count)
        except Exception as exc:  # any store failure means not ready; say which
            log.warning("store not ready: %s", exc)
            chunks = None
        ready = model_ok and chunks is not None
        body = {"ready": ready, "model_server": model_ok, "store": chunks is not None, "chunks": chunks}
        return JSONResponse(body, status_code=200 if ready else 503)

    @router.get("/v1/models", tags=["openai"])
    async def models(who: Caller) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": m, "object": "model", "created": 0, "owned_by": "bastion"} for m in AGENTS],
        }

    @router.post("/v1/search", tags=["retrieval"])
    async def search(body: SearchRequest, who: Caller, request: Request) -> dict[str, Any]:
        """Retrieval only, with the caller's access control inside the store's query."""
        hits = await asyncio.to_thread(
            services_of(request).retriever.search, body.query, who.principal, limit=body.limit, mode=body.mode
        )
        results = [{**h.chunk.model_dump(exclude={"acl"}), "score": h.score} for h in hits]
        return {"results": results}

    @router.post("/v1/chat/completions", tags=["openai"], response_model=None)
    async def chat_completions(
        body: ChatCompletionRequest, who: Caller, request: Request
    ) -> JSONResponse | StreamingResponse:
        services = services_of(request)
        try:
            if body.model == "bastion-qa":
                return await _qa(services, body, who)
            return await _chat(services, body, who)
        except ServingError as exc:
            raise HTTPException(502, f"The model server failed: {exc}") from exc
        except BastionError as exc:
            raise HTTPException(400, str(exc)) from exc

    return router


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


async def _qa(
    services: Services, body: ChatCompletionRequest, who: KeyInfo
) -> JSONResponse | StreamingResponse:
    question = body.messages[-1].text
    agent = services.qa_easy if body.reasoning_effort == "none" else services.qa
    thread = await asyncio.to_thread(_thread_for, services, who, body.messages)
    started = time.perf_counter()
    result = await agent.ask(
        question, who.principal, thread_id=thread, cache_salt=cache_salt(services.settings, who)
    )
    content = _with_sources(result)
    await asyncio.to_thread(_remember, services, who, body, content, result.thread_id)
    u = result.usage
    await asyncio.to_thread(
        services.audit.append,
        _audit_record(
            services, who, body.model, question, content, result.usage.prompt_tokens, started
        ).model_copy(
            update={
                "chunk_ids": [c.chunk_id for c in result.citations],
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
    }
    cid = completion_id()
    if not body.stream:
        return JSONResponse(completion_json(cid, body.model, content, usage, extension))

    async def events() -> AsyncIterator[str]:
        # The answer is checked before anything is shown, so it arrives whole, then its citations.
        yield _sse(chunk_json(cid, body.model, {"role": "assistant", "content": ""}))
        yield _sse(chunk_json(cid, body.model, {"content": content}))
        yield _sse(chunk_json(cid, body.model, {}, finish="stop", usage=usage, extension=extension))
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


async def _chat(
    services: Services, body: ChatCompletionRequest, who: KeyInfo
) -> JSONResponse | StreamingResponse:
    message = body.messages[-1].text
    agent = services.chat_easy if body.reasoning_effort == "none" else services.chat
    thread = await asyncio.to_thread(_thread_for, services, who, body.messages)
    salt = cache_salt(services.settings, who)
    cid = completion_id()
    started = time.perf_counter()

    async def finish(reply: str, done: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        u = done.usage
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

"""`bastion api`: an OpenAI-compatible HTTP service over Bastion's agents, with API keys and an audit log.

FastAPI, for its typed request models, its OpenAPI schema for free and its dependency injection for
authentication; uvicorn serves it. The Principal of every request comes from its API key and from
nothing else: not the body (OpenAI's `user` field is ignored), not a header the client chooses, not
the model's output.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from functools import cache
from importlib import resources
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from bastion.api import _documents as documents
from bastion.api._auth import Caller, services_of
from bastion.api._completions import answer_chat, answer_code, answer_qa, may_read_code
from bastion.api._errors import http_error
from bastion.api._gate import FailureCounter, RequestGate, client_of
from bastion.api._metrics import ApiMetrics
from bastion.api._schemas import AGENTS, ChatCompletionRequest, SearchRequest
from bastion.api._services import Services, audit_event, open_services, public_source, question_fields
from bastion.keys import KeyInfo
from bastion.settings import Settings
from serving import ImageError, ImagePart

log = logging.getLogger("bastion.api")


@cache
def _page_html() -> str:
    return resources.files("bastion.api").joinpath("static", "index.html").read_text(encoding="utf-8")


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_services(settings) as services:
            app.state.services = services
            root = documents.documents_root(services)
            store, manifest = services.retriever.store, services.manifest
            for doc_id in await asyncio.to_thread(documents.recover_uploads, root, store, manifest):
                log.warning(
                    "rolled back document %s: its upload was interrupted before it was indexed", doc_id
                )
                await audit_event(
                    services,
                    None,
                    "delete",
                    target=doc_id,
                    detail="upload interrupted by a crash, rolled back",
                )
            yield

    app = FastAPI(
        title="Bastion",
        summary="Answers from your own documents, on your own servers. OpenAI-compatible.",
        version="0.1.0",
        lifespan=lifespan,
        # Swagger UI and ReDoc load their scripts from a CDN: a regulated network's browsers should
        # not, so the pages are off unless asked for (the schema itself is always at /openapi.json).
        docs_url="/docs" if settings.api.docs else None,
        redoc_url="/redoc" if settings.api.docs else None,
    )
    metrics = ApiMetrics()
    app.state.metrics = metrics
    # The gate first, then metrics around it: refused requests are counted too.
    failures = FailureCounter()

    async def refused(scope: MutableMapping[str, Any], status: int, who: KeyInfo | None) -> None:
        client = client_of(scope)
        count = failures.note(f"{client} {who.key_id if who else ''}")
        if count is not None:
            services: Services = scope["app"].state.services
            detail = f"{count} refused request(s) from {client}" + (" (not an administrator)" if who else "")
            await audit_event(services, who, "auth_failed", target=scope["path"], detail=detail)

    app.add_middleware(
        RequestGate,
        keys=lambda scope: scope["app"].state.services.keys,
        body_limit=lambda scope: settings.api.max_body_kb << 10,
        upload_limit=lambda scope: settings.api.max_upload_mb << 20,
        refused=refused,
    )
    app.middleware("http")(metrics.middleware)
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _internal_error)
    app.include_router(_routes())
    app.include_router(documents.routes())
    return app


# -- errors in OpenAI's shape, so clients show them ------------------------------------------------


def _error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "code": status}}
    return JSONResponse(body, status_code=status, headers=headers)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    kind = {401: "authentication_error", 403: "permission_error", 404: "not_found_error"}.get(
        exc.status_code, "api_error" if exc.status_code >= 500 else "invalid_request_error"
    )
    return _error(exc.status_code, str(exc.detail), kind, dict(exc.headers or {}))


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug: logged with its traceback, answered without a word of it."""
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error(500, "Internal error; the server logged it.", "api_error")


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    return _error(
        400, f"{where}: {first.get('msg')}" if where else str(first.get("msg")), "invalid_request_error"
    )


# -- identity ----------------------------------------------------------------------------------


def metrics_of(request: Request) -> ApiMetrics:
    metrics: ApiMetrics = request.app.state.metrics
    return metrics


def _routes() -> APIRouter:
    router = APIRouter()

    @router.get("/", include_in_schema=False, response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        """The chat page: sign in with an API key, ask, read cited answers as they stream."""
        return HTMLResponse(_page_html())

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

    @router.get("/metrics", tags=["health"], response_class=Response)
    async def metrics(request: Request) -> Response:
        """Prometheus text format: requests, latency, tokens (prompt, completion, cached), effort mix,
        retrieval latency."""
        return metrics_of(request).exposition()

    @router.get("/v1/models", tags=["openai"])
    async def models(who: Caller, request: Request) -> dict[str, Any]:
        services = services_of(request)
        offered = [
            m
            for m in AGENTS
            if m != "bastion-code" or (services.code is not None and may_read_code(services, who))
        ]
        return {
            "object": "list",
            "data": [{"id": m, "object": "model", "created": 0, "owned_by": "bastion"} for m in offered],
        }

    @router.post("/v1/search", tags=["retrieval"])
    async def search(body: SearchRequest, who: Caller, request: Request) -> dict[str, Any]:
        """Retrieval only, with the caller's access control inside the store's query."""
        limit = services_of(request).settings.api.max_question_chars
        if len(body.query) > limit:
            raise HTTPException(
                400,
                f"query: {len(body.query)} characters, over the limit of {limit} "
                "(BASTION_API_MAX_QUESTION_CHARS).",
            )
        started = time.perf_counter()
        services = services_of(request)
        try:
            hits = await asyncio.to_thread(
                services.retriever.search, body.query, who.principal, limit=body.limit, mode=body.mode
            )
        except Exception as exc:  # a QueryError is a 400, an unavailable store a 503 (the table)
            mapped = http_error(exc, who)
            if mapped is None:
                raise
            raise mapped from exc
        elapsed = time.perf_counter() - started
        metrics_of(request).retrieval.observe(elapsed)
        await audit_event(
            services_of(request),
            who,
            "search",
            **question_fields(services_of(request), body.query),
            chunk_ids=[h.chunk.chunk_id for h in hits],
            latency_ms=elapsed * 1000,
        )
        results = [
            {
                **h.chunk.model_dump(exclude={"acl"}),
                "source": public_source(services, h.chunk.source),
                "score": h.score,
            }
            for h in hits
        ]
        return {"mode": body.mode or services.retriever.mode, "results": results}

    @router.post("/v1/chat/completions", tags=["openai"], response_model=None)
    async def chat_completions(
        body: ChatCompletionRequest, who: Caller, request: Request
    ) -> JSONResponse | StreamingResponse:
        services = services_of(request)
        _within_limits(body, services.settings)
        started = time.perf_counter()
        try:
            images = await _pictures(body, services)
            if body.model == "bastion-qa":
                return await answer_qa(services, metrics_of(request), body, who, images)
            if body.model == "bastion-code":
                return await answer_code(services, metrics_of(request), body, who)
            return await answer_chat(services, metrics_of(request), body, who, images)
        except Exception as exc:
            await audit_event(
                services,
                who,
                "answer_failed",
                agent=body.model,
                **question_fields(services, body.messages[-1].text),
                latency_ms=(time.perf_counter() - started) * 1000,
                detail=type(exc).__name__,
            )
            mapped = http_error(exc, who)
            if mapped is not None:
                raise mapped from exc
            raise

    return router


async def _pictures(body: ChatCompletionRequest, services: Services) -> list[ImagePart]:
    """The question's pictures, or a 400 that says why they cannot be used: refused, never dropped,
    since an answer that silently ignored the picture would be wrong. Pictures in earlier messages
    belong to turns already answered (OpenAI clients send the whole history back)."""
    question = body.messages[-1]
    if not question.has_images:
        return []
    if body.model == "bastion-code":
        raise HTTPException(
            400, "bastion-code reads a repository and takes no images; ask bastion-qa or bastion-chat."
        )
    try:
        images = question.images()
    except ImageError as exc:
        raise HTTPException(400, f"messages.{len(body.messages) - 1}: {exc}") from exc
    if await services.client.supports_images() is False:
        raise HTTPException(
            400,
            "This request has images, but the model server does not read images (it reports no vision); "
            "send the question as text, or point BASTION_MODEL_URL at a vision model.",
        )
    return images


def _within_limits(body: ChatCompletionRequest, settings: Settings) -> None:
    """The conversation's size, bounded before any work: a 400 that says which limit and its setting."""
    api = settings.api
    if len(body.messages) > api.max_messages:
        raise HTTPException(
            400,
            f"messages: {len(body.messages)} messages, over the limit of {api.max_messages} "
            "(BASTION_API_MAX_MESSAGES).",
        )
    for i, message in enumerate(body.messages):
        if len(message.text) > api.max_message_chars:
            raise HTTPException(
                400,
                f"messages.{i}: {len(message.text)} characters, over the limit of "
                f"{api.max_message_chars} (BASTION_API_MAX_MESSAGE_CHARS).",
            )
    question = body.messages[-1].text
    if len(question) > api.max_question_chars:
        raise HTTPException(
            400,
            f"The question has {len(question)} characters, over the limit of "
            f"{api.max_question_chars} (BASTION_API_MAX_QUESTION_CHARS).",
        )

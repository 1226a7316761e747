"""An async client for OpenAI-compatible chat completion servers (SGLang in production, llama-server here)."""

from __future__ import annotations

import asyncio
import builtins
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, Self

import httpx
from httpx_sse import SSEError, aconnect_sse

from serving._errors import (
    CapabilityError,
    ContextLengthError,
    ResponseError,
    ServerError,
    ServingError,
    TimeoutError,
)
from serving._fit import MAX_BYTES_PER_TOKEN, SMALLEST_WINDOW, prompt_text, room, template_tokens, too_long
from serving._retry import RETRYABLE_STATUS, RetryPolicy
from serving._tokens import count_tokens
from serving._types import ChatRequest, ChatResult, Dialect, StreamEvent, ToolCall, Usage
from serving._wire import (
    connect_error,
    dropped_unanswered,
    json_object,
    status_error,
    stream_event,
    timeout_error,
    typed_errors,
)

KEEPALIVE_EXPIRY_S = 4.0


class _FailedBeforeAnswer(Exception):
    """A stream failed before it yielded anything: nothing reached the caller, so it may be resent."""

    def __init__(self, error: ServingError) -> None:
        super().__init__(str(error))
        self.error = error


class ChatClient:
    """Talks to `{base_url}/chat/completions`, where base_url ends in `/v1` as with the OpenAI SDK.

    One client holds one connection pool; use it as an async context manager or call `aclose()`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        model: str | None = None,
        timeout_s: float = 120.0,
        connect_timeout_s: float = 5.0,
        retry: RetryPolicy | None = None,
        send_reasoning_effort: bool = True,
        dialect: Dialect | None = None,
        max_concurrency: int = 64,
        first_token_timeout_s: float | None = None,
        total_timeout_s: float | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        context_window: int | None = None,
        tokenizer_urls: Sequence[str] = (),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # Servers that tokenize for the model when base_url cannot: SGLang's gateway answers
        # /v1/tokenize only when it was given the tokenizer, and forwards no /tokenize; any replica can.
        self.tokenizer_urls = [u.rstrip("/").removesuffix("/v1") for u in tokenizer_urls]
        self.model = model
        self.retry = retry or RetryPolicy()
        # What the server accepts beyond the OpenAI core; send_reasoning_effort=False is the old switch.
        dialect = dialect or Dialect()
        self.dialect = dialect if send_reasoning_effort else dialect.model_copy(update={"reasoning": "off"})
        self.first_token_timeout_s = first_token_timeout_s
        # httpx's timeouts bound each read; this bounds a whole non-streamed request.
        self.total_timeout_s = total_timeout_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
            # Both llama-server (cpp-httplib) and SGLang (uvicorn) close idle connections after 5 s;
            # dropping ours sooner avoids sending a request down a socket the server is closing.
            limits=httpx.Limits(
                max_connections=max_concurrency,
                max_keepalive_connections=max_concurrency,
                keepalive_expiry=KEEPALIVE_EXPIRY_S,
            ),
            transport=transport,
        )
        # Requests beyond this wait here rather than piling onto the server (or the pool's timeout).
        self._slots = asyncio.Semaphore(max_concurrency)
        self._vision: bool | None = None
        self._vision_asked = False
        # Given, for servers that do not say (a hosted API); else asked of the server once.
        self._window = context_window

    @property
    def server_root(self) -> str:
        """The server's root URL, where `/health` lives on both llama-server and SGLang."""
        return self.base_url.removesuffix("/v1")

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def health(self) -> bool:
        """True when the server answers `/health` with 200 (llama-server says 503 while loading)."""
        try:
            response = await self._http.get(f"{self.server_root}/health", timeout=5.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def count_tokens(self, text: str) -> int:
        """Tokens in `text` by the server's own tokenizer, without special tokens.

        llama-server answers `POST /tokenize` with the ids; SGLang answers `POST /v1/tokenize` with a
        count. Budgets for long prompts (a packed repository) must use this rather than a guess.
        The configured tokenizers come first (a gateway's replicas; one that is down hands over to the
        next), then the server itself.
        """
        return await count_tokens(
            self._http,
            [*self.tokenizer_urls, self.server_root],
            text,
            model=self.model,
            configured=bool(self.tokenizer_urls),
            attempts=self.retry.attempts,
        )

    async def get(self, path: str, *, root: bool = False) -> httpx.Response:
        """GET a server endpoint (`root=True`: relative to the server root, e.g. /health, /metrics)."""
        return await self._get_url(f"{self.server_root if root else self.base_url}{path}")

    async def _get_url(self, url: str) -> httpx.Response:
        with typed_errors(self.base_url, self.retry.attempts, f"GET {url}"):
            return await self._http.get(url, timeout=10.0)

    async def supports_images(self) -> bool | None:
        """Whether the server's model reads images: SGLang's /model_info, llama-server's /props; None if
        the server says neither. Asked once per client."""
        if not self._vision_asked:
            vision: bool | None = None
            model_info = await self.get("/model_info", root=True)
            if model_info.status_code == 200 and "has_image_understanding" in model_info.json():
                vision = bool(model_info.json()["has_image_understanding"])
            else:
                props = await self.get("/props", root=True)
                if props.status_code == 200:
                    vision = bool((props.json().get("modalities") or {}).get("vision"))
            self._vision, self._vision_asked = vision, True
        return self._vision

    async def context_length(self) -> int | None:
        """Tokens one request may use: llama-server's per-slot `n_ctx` (/props), SGLang's and vLLM's
        `max_model_len` (/v1/models); None when the server says neither. Asked once per client."""
        if self._window is None:
            try:
                for root in [self.server_root, *self.tokenizer_urls]:
                    props = await self._get_url(f"{root}/props")
                    if props.status_code == 200:
                        n_ctx = (props.json().get("default_generation_settings") or {}).get("n_ctx")
                        self._window = int(n_ctx) if n_ctx else None
                        break
                if self._window is None:
                    models = await self.get("/models")
                    data = models.json().get("data") if models.status_code == 200 else None
                    found = [m.get("max_model_len") for m in data or [] if isinstance(m, dict)]
                    self._window = next((int(n) for n in found if n), None)
            except (ServingError, ValueError):  # not JSON, or no server yet: the request will say
                return None
            self._window = self._window or 0  # 0: asked, and the server does not say
        return self._window or None

    async def check_fits(self, request: ChatRequest) -> None:
        """Raise ContextLengthError, without sending it, for a request whose prompt cannot fit."""
        text = prompt_text(request)
        size = len(text.encode())
        overhead = template_tokens(request)
        most = size + overhead  # tokens never outnumber bytes
        if most <= room(SMALLEST_WINDOW, request):  # fits any server: no need to ask for its window
            return
        window = await self.context_length()
        if window is None or most <= room(window, request):
            return
        least = size // MAX_BYTES_PER_TOKEN
        if least > room(window, request):
            raise ContextLengthError(too_long(least, window, request, at_least=True), status_code=400)
        counted = await self.count_tokens(text) + overhead
        if counted > room(window, request):
            raise ContextLengthError(too_long(counted, window, request), status_code=400)

    async def require_images(self) -> None:
        """Raise CapabilityError unless the server may read images (it says so, or says nothing)."""
        if await self.supports_images() is False:
            raise CapabilityError(
                f"The model at {self.base_url} cannot read images (the server reports no vision support). "
                "Send text only, or point BASTION_MODEL_URL at a vision model such as Mistral Small 4."
            )

    async def _check_capabilities(self, request: ChatRequest) -> None:
        if request.has_images:
            await self.require_images()

    async def complete(self, request: ChatRequest) -> ChatResult:
        await self._check_capabilities(request)
        await self.check_fits(request)
        body = request.to_wire(model=self.model, dialect=self.dialect, stream=False)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.total_timeout_s):
                response = await self._with_retries(lambda: self._post(body))
        except builtins.TimeoutError as exc:
            raise TimeoutError(
                f"The model server at {self.base_url} did not finish within {self.total_timeout_s:g}s "
                "(the request was aborted). Raise BASTION_MODEL_TOTAL_TIMEOUT_S or ask for fewer tokens."
            ) from exc
        latency_ms = (time.perf_counter() - started) * 1000
        data = json_object(response)
        try:
            choice = data["choices"][0]
            message = choice["message"]
            return ChatResult(
                content=message.get("content") or "",
                reasoning_content=message.get("reasoning_content"),
                tool_calls=[ToolCall.from_wire(c) for c in message.get("tool_calls") or []],
                finish_reason=choice.get("finish_reason"),
                model=data.get("model"),
                usage=Usage.from_wire(data.get("usage"), data.get("timings")),
                latency_ms=latency_ms,
            )
        except (KeyError, IndexError, TypeError) as exc:
            raise ResponseError(
                f"{self.base_url} answered a chat completion without choices/message: {str(data)[:300]}"
            ) from exc

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """Yield events as the server sends them; the final event carries usage when the server reports it.

        Retries happen only before the first event: a stream cut short mid-way raises, since
        replaying it would duplicate text the caller has already shown. A stream that fails before
        it yielded anything (a replica killed behind a gateway mid-prefill) is sent again. Closing
        the stream early (`contextlib.aclosing`, or cancelling the task) closes the connection, and
        both SGLang and llama-server then stop generating for it.
        """
        await self._check_capabilities(request)
        await self.check_fits(request)
        body = request.to_wire(model=self.model, dialect=self.dialect, stream=True)
        for attempt in range(self.retry.attempts):
            yielded = False
            try:
                async with (
                    self._slots,
                    aconnect_sse(
                        self._http, "POST", f"{self.base_url}/chat/completions", json=body
                    ) as source,
                ):
                    response = source.response
                    if response.status_code != 200:
                        await response.aread()
                        if response.status_code in RETRYABLE_STATUS and attempt + 1 < self.retry.attempts:
                            await asyncio.sleep(
                                self.retry.delay(attempt, response.headers.get("retry-after"))
                            )
                            continue
                        raise self._status_error(response)
                    events = source.aiter_sse()
                    first, finished = True, False
                    while True:
                        try:
                            if first and self.first_token_timeout_s is not None:
                                async with asyncio.timeout(self.first_token_timeout_s):
                                    sse = await anext(events)
                            else:
                                sse = await anext(events)
                        except StopAsyncIteration:
                            if finished:
                                return
                            # A body sent without a length ends where the connection does, so a
                            # server or gateway dying mid-answer reads as an early, quiet end.
                            cut = ResponseError(
                                f"The stream from {self.base_url} ended before the answer finished "
                                "(no finish_reason and no [DONE]): the connection was cut."
                            )
                            raise (cut if yielded else _FailedBeforeAnswer(cut)) from None
                        except builtins.TimeoutError as exc:
                            raise TimeoutError(
                                f"No first token from {self.base_url} within {self.first_token_timeout_s:g}s "
                                "(the request was aborted). The server may be overloaded or the prompt long; "
                                "raise BASTION_MODEL_FIRST_TOKEN_TIMEOUT_S."
                            ) from exc
                        first = False
                        if sse.data.strip() == "[DONE]":
                            return
                        try:
                            event = stream_event(json.loads(sse.data))
                        except ServerError as exc:
                            if yielded:
                                raise
                            raise _FailedBeforeAnswer(exc) from exc
                        if event is not None:
                            finished = finished or event.finish_reason is not None
                            yielded = True
                            yield event
            except _FailedBeforeAnswer as failed:
                if attempt + 1 < self.retry.attempts:
                    await asyncio.sleep(self.retry.delay(attempt))
                    continue
                raise failed.error from None
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if attempt + 1 < self.retry.attempts:
                    await asyncio.sleep(self.retry.delay(attempt))
                    continue
                raise connect_error(self.base_url, self.retry.attempts, exc) from exc
            except httpx.RemoteProtocolError as exc:
                # A connection dropped before any response (a stale keep-alive socket), or cut before
                # anything was yielded, is safe to resend; once the caller has text, it is not.
                if (dropped_unanswered(exc) or not yielded) and attempt + 1 < self.retry.attempts:
                    continue
                raise ServingError(f"Streaming from {self.base_url} failed: {exc}") from exc
            except httpx.TimeoutException as exc:
                raise timeout_error(self.base_url, exc) from exc
            except (SSEError, json.JSONDecodeError) as exc:
                raise ResponseError(f"{self.base_url} sent a malformed event stream: {exc}") from exc
            except httpx.HTTPError as exc:
                raise ServingError(f"Streaming from {self.base_url} failed: {exc}") from exc

    async def _post(self, body: dict[str, Any]) -> httpx.Response:
        return await self._http.post(f"{self.base_url}/chat/completions", json=body)

    async def _with_retries(self, send: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
        for attempt in range(self.retry.attempts):
            last = attempt + 1 == self.retry.attempts
            try:
                async with self._slots:
                    response = await send()
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if last:
                    raise connect_error(self.base_url, self.retry.attempts, exc) from exc
                await asyncio.sleep(self.retry.delay(attempt))
                continue
            except httpx.RemoteProtocolError as exc:
                if dropped_unanswered(exc) and not last:
                    continue
                raise ServingError(f"Request to {self.base_url} failed: {exc}") from exc
            except httpx.TimeoutException as exc:
                # A read timeout may mean the server is still generating: retrying would double the load.
                raise timeout_error(self.base_url, exc) from exc
            except httpx.HTTPError as exc:
                raise ServingError(f"Request to {self.base_url} failed: {exc}") from exc
            if response.status_code in RETRYABLE_STATUS and not last:
                await asyncio.sleep(self.retry.delay(attempt, response.headers.get("retry-after")))
                continue
            if response.status_code >= 400:
                raise self._status_error(response)
            return response
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _status_error(self, response: httpx.Response) -> ServingError:
        return status_error(response, self.base_url, self.retry.attempts)

"""The client against the real llama-server, plus protocol shapes only SGLang produces (recorded)."""

from __future__ import annotations

import asyncio
import json
import socket
import typing

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving import (
    BadRequestError,
    ChatClient,
    ChatRequest,
    ConnectError,
    ContextLengthError,
    Dialect,
    ImageError,
    JsonSchema,
    Message,
    RetryPolicy,
    ServerError,
    ServingError,
    Usage,
)

pytestmark = pytest.mark.llm

NO_WAIT = RetryPolicy(attempts=3, backoff_s=0.0)


def _ask(text: str, **kwargs: object) -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content=text)], temperature=0.0, **kwargs)  # type: ignore[arg-type]


async def test_plain_completion_returns_text_and_usage(llm_url: str) -> None:
    async with ChatClient(llm_url) as client:
        result = await client.complete(_ask("Say hello.", max_tokens=16, reasoning_effort="none"))
    assert result.content.strip()
    assert result.finish_reason in ("stop", "length")
    assert result.usage.prompt_tokens > 0
    assert 0 < result.usage.completion_tokens <= 16


async def test_stream_yields_text_then_usage(llm_url: str) -> None:
    async with ChatClient(llm_url) as client:
        events = [e async for e in client.stream(_ask("Count from one to five.", max_tokens=24))]
    text = "".join(e.content for e in events)
    assert text.strip()
    assert sum(1 for e in events if e.content) > 1, "a stream should arrive in several pieces"
    assert events[-1].usage is not None and events[-1].usage.completion_tokens > 0
    assert any(e.finish_reason for e in events)


async def test_json_schema_is_enforced(llm_url: str) -> None:
    schema = {
        "type": "object",
        "properties": {
            "colour": {"type": "string", "enum": ["red", "green", "blue"]},
            "confidence": {"type": "integer", "minimum": 0, "maximum": 10},
        },
        "required": ["colour", "confidence"],
        "additionalProperties": False,
    }
    request = _ask(
        "The sky is blue. What colour is the sky? Reply in JSON.",
        max_tokens=60,
        response_format=JsonSchema(name="colour", schema=schema),
    )
    async with ChatClient(llm_url) as client:
        result = await client.complete(request)
    data = json.loads(result.content)
    assert set(data) == {"colour", "confidence"}
    assert data["colour"] in ("red", "green", "blue")


async def test_repeated_prefix_is_served_from_cache(llm_url: str) -> None:
    prefix = " ".join(f"Rule {i}: staff must file form {i * 7} within {i} days." for i in range(60))
    async with ChatClient(llm_url) as client:
        first = await client.complete(_ask(prefix + "\nQuestion A: which form is rule 3?", max_tokens=4))
        second = await client.complete(_ask(prefix + "\nQuestion B: which form is rule 9?", max_tokens=4))
    assert first.usage.prompt_tokens > 500
    # Everything up to the differing question should be reused from the first request's KV cache.
    assert second.usage.cached_tokens >= 0.8 * first.usage.prompt_tokens


async def test_the_servers_own_context_refusal_is_a_context_length_error(llm_url: str) -> None:
    # A window set far too large (as for a server that reports none) lets the prompt through to the
    # server, whose 400 must still come back typed.
    async with ChatClient(llm_url, context_window=10**7) as client:
        with pytest.raises(ContextLengthError, match="exceed_context_size"):
            await client.complete(_ask("word " * 9000, max_tokens=4))


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_server_down_raises_connect_error_after_retries() -> None:
    url = f"http://127.0.0.1:{_dead_port()}/v1"
    async with ChatClient(url, retry=NO_WAIT) as client:
        assert not await client.health()
        with pytest.raises(ConnectError, match="Cannot reach the model server") as info:
            await client.complete(_ask("hi", max_tokens=4))
    assert "3 attempts" in str(info.value)


async def test_health_reports_a_running_server(llm_url: str) -> None:
    async with ChatClient(llm_url) as client:
        assert await client.health()


# Protocol behaviour that needs a server misbehaving on purpose, or fields only SGLang sends:
# these run over httpx's MockTransport with response bodies recorded from SGLang 0.5.x.

SGLANG_REASONING_RESPONSE = {
    "id": "f1c2",
    "object": "chat.completion",
    "model": "mistralai/Mistral-Small-4-119B-2603",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "The answer is 42 [1].",
                "reasoning_content": "The passage says 42.",
                "tool_calls": None,
            },
            "finish_reason": "stop",
            "matched_stop": 2,
        }
    ],
    "usage": {
        "prompt_tokens": 1200,
        "completion_tokens": 30,
        "total_tokens": 1230,
        "prompt_tokens_details": {"cached_tokens": 1024},
        "reasoning_tokens": 12,
    },
}


def _transport(responses: list[httpx.Response], seen: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return responses.pop(0)

    return httpx.MockTransport(handler)


async def test_sglang_response_shape_is_parsed() -> None:
    seen: list[httpx.Request] = []
    transport = _transport([httpx.Response(200, json=SGLANG_REASONING_RESPONSE)], seen)
    async with ChatClient("http://sglang:30000/v1", transport=transport, model="mistral-small-4") as client:
        result = await client.complete(_ask("q", reasoning_effort="high", max_tokens=64))
    assert result.content == "The answer is 42 [1]."
    assert result.reasoning_content == "The passage says 42."
    assert result.usage == Usage(
        prompt_tokens=1200, completion_tokens=30, cached_tokens=1024, reasoning_tokens=12
    )
    body = json.loads(seen[0].content)
    assert body["reasoning_effort"] == "high"
    assert body["model"] == "mistral-small-4"


async def test_retries_503_then_succeeds_and_gives_up_on_persistent_502() -> None:
    seen: list[httpx.Request] = []
    ok = httpx.Response(200, json=SGLANG_REASONING_RESPONSE)
    transport = _transport([httpx.Response(503, json={"error": "busy"}), ok], seen)
    async with ChatClient("http://x/v1", transport=transport, retry=NO_WAIT) as client:
        assert (await client.complete(_ask("q"))).content
    assert len(seen) == 2

    seen.clear()
    transport = _transport([httpx.Response(502, text="bad gateway") for _ in range(3)], seen)
    async with ChatClient("http://x/v1", transport=transport, retry=NO_WAIT) as client:
        with pytest.raises(ServerError, match="HTTP 502"):
            await client.complete(_ask("q"))
    assert len(seen) == 3


def _drops_first(messages: list[str], seen: list[httpx.Request]) -> httpx.MockTransport:
    """Raises each message as a RemoteProtocolError in turn, then answers normally."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if messages:
            raise httpx.RemoteProtocolError(messages.pop(0), request=request)
        if json.loads(request.content).get("stream"):
            chunk = {"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]}
            return httpx.Response(
                200,
                text=f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n",
                headers={"content-type": "text/event-stream"},
            )
        return httpx.Response(200, json=SGLANG_REASONING_RESPONSE)

    return httpx.MockTransport(handler)


STALE = "Server disconnected without sending a response."
CUT = "peer closed connection without sending complete message body (incomplete chunked read)"


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_stale_connection_is_resent_and_a_cut_one_only_while_nothing_was_shown(
    streamed: bool,
) -> None:
    async def ask(client: ChatClient) -> str:
        if streamed:
            return "".join([e.content async for e in client.stream(_ask("q")) if e.content])
        return (await client.complete(_ask("q"))).content

    seen: list[httpx.Request] = []
    async with ChatClient("http://x/v1", transport=_drops_first([STALE], seen), retry=NO_WAIT) as client:
        assert await ask(client)
    assert len(seen) == 2

    seen.clear()
    async with ChatClient("http://x/v1", transport=_drops_first([CUT], seen), retry=NO_WAIT) as client:
        if streamed:  # nothing reached the caller yet, so a stream may be sent again
            assert await ask(client) == "hi"
        else:  # the server may have finished the work: a whole answer is not asked for twice
            with pytest.raises(ServingError, match="incomplete"):
                await ask(client)
    assert len(seen) == (2 if streamed else 1)


async def test_client_errors_are_not_retried() -> None:
    seen: list[httpx.Request] = []
    transport = _transport([httpx.Response(401, json={"error": {"message": "bad key"}})], seen)
    async with ChatClient("http://x/v1", transport=transport, retry=NO_WAIT) as client:
        with pytest.raises(BadRequestError, match="BASTION_MODEL_API_KEY"):
            await client.complete(_ask("q"))
    assert len(seen) == 1


def test_effort_is_omitted_for_servers_that_do_not_take_it() -> None:
    request = _ask("q", reasoning_effort="none")
    assert request.to_wire(model=None, dialect=Dialect(), stream=False)["reasoning_effort"] == "none"
    off = request.to_wire(model=None, dialect=Dialect(reasoning="off"), stream=False)
    assert "reasoning_effort" not in off and "chat_template_kwargs" not in off


def test_request_rejects_unknown_fields_and_bad_effort() -> None:
    with pytest.raises(ValueError):
        ChatRequest(messages=[Message(role="user", content="q")], reasoning_effort="medium")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ChatRequest(messages=[Message(role="user", content="q")], max_tokenz=5)  # type: ignore[call-arg]


# Recorded from SGLang 0.5.x serving Mistral Small 4 with --tool-call-parser mistral.
SGLANG_TOOL_CALL_RESPONSE = {
    "id": "c7",
    "object": "chat.completion",
    "model": "mistral-small-4",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "reasoning_content": None,
                "tool_calls": [
                    {
                        "id": "call_0",
                        "index": 0,
                        "type": "function",
                        "function": {
                            "name": "search_policies",
                            "arguments": '{"query": "CCTV retention", "k": 3}',
                        },
                    },
                    {
                        "id": "call_1",
                        "index": 1,
                        "type": "function",
                        "function": {"name": "noop", "arguments": "{"},
                    },
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 300,
        "completion_tokens": 25,
        "total_tokens": 325,
        "prompt_tokens_details": None,
    },
}


async def test_tool_calls_are_parsed_and_request_extras_are_sent() -> None:
    from serving import Tool

    seen: list[httpx.Request] = []
    transport = _transport([httpx.Response(200, json=SGLANG_TOOL_CALL_RESPONSE)], seen)
    tool = Tool(name="search_policies", description="Search", parameters={"type": "object"})
    request = ChatRequest(
        messages=[Message(role="user", content="q")],
        tools=[tool],
        tool_choice="auto",
        cache_salt="tenant-a",
        rid="req-1",
        max_completion_tokens=64,
    )
    async with ChatClient("http://sglang:30000/v1", transport=transport) as client:
        result = await client.complete(request)
    good, broken = result.tool_calls
    assert (good.id, good.name, good.arguments) == (
        "call_0",
        "search_policies",
        {"query": "CCTV retention", "k": 3},
    )
    assert broken.arguments is None and broken.arguments_json == "{"
    assert result.finish_reason == "tool_calls" and result.content == ""
    assert result.usage.cached_tokens is None, "no cache report means unknown, not zero"
    body = json.loads(seen[0].content)
    assert body["tools"][0]["function"]["name"] == "search_policies"
    assert (body["tool_choice"], body["cache_salt"], body["rid"], body["max_completion_tokens"]) == (
        "auto",
        "tenant-a",
        "req-1",
        64,
    )


def test_usage_is_normalised_across_servers() -> None:
    sglang = {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "reasoning_tokens": 3,
        "prompt_tokens_details": None,
    }
    assert Usage.from_wire(sglang) == Usage(prompt_tokens=10, completion_tokens=5, reasoning_tokens=3)
    openai = {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "completion_tokens_details": {"reasoning_tokens": 2},
    }
    assert Usage.from_wire(openai).reasoning_tokens == 2
    llama = {"prompt_tokens": 10, "completion_tokens": 5}
    assert Usage.from_wire(llama, {"cache_n": 8}).cached_tokens == 8
    assert Usage.from_wire(llama).cached_tokens is None
    assert Usage.from_wire({**llama, "prompt_tokens_details": {"cached_tokens": 0}}).cached_tokens == 0


async def test_llama_server_takes_sglang_extras_and_honours_max_completion_tokens(llm_url: str) -> None:
    request = ChatRequest(
        messages=[Message(role="user", content="Write a long story about a lighthouse.")],
        max_completion_tokens=7,
        cache_salt="tenant-a",
        rid="req-42",
        temperature=0.0,
    )
    async with ChatClient(llm_url) as client:
        result = await client.complete(request)
    assert result.usage.completion_tokens == 7 and result.finish_reason == "length"
    assert result.usage.cached_tokens is not None, "llama-server reports cached tokens"


async def test_unknown_model_is_a_clear_error() -> None:
    seen: list[httpx.Request] = []
    transport = _transport([httpx.Response(404, json={"error": {"message": "model 'x' not found"}})], seen)
    async with ChatClient("http://x/v1", transport=transport, retry=NO_WAIT, model="x") as client:
        with pytest.raises(BadRequestError, match="BASTION_MODEL_NAME"):
            await client.complete(_ask("q"))


async def test_streamed_reasoning_is_kept_apart_from_the_answer() -> None:
    # Recorded shape of an SGLang stream with --reasoning-parser mistral and reasoning_effort="high".
    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {"reasoning_content": "The passage"}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {"reasoning_content": " says 30 days."}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {"content": "30 days [1]."}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 9, "reasoning_tokens": 6}},
    ]
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    seen: list[httpx.Request] = []
    response = httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})
    async with ChatClient("http://sglang:30000/v1", transport=_transport([response], seen)) as client:
        events = [e async for e in client.stream(_ask("q", reasoning_effort="high"))]
    assert "".join(e.reasoning_content for e in events) == "The passage says 30 days."
    assert "".join(e.content for e in events) == "30 days [1]."
    assert events[-1].usage == Usage(prompt_tokens=50, completion_tokens=9, reasoning_tokens=6)
    assert json.loads(seen[0].content)["stream_options"] == {"include_usage": True}


async def test_concurrency_is_bounded() -> None:
    import asyncio

    in_flight, peak = 0, 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.02)
        in_flight -= 1
        return httpx.Response(200, json=SGLANG_REASONING_RESPONSE)

    async with ChatClient("http://x/v1", transport=httpx.MockTransport(handler), max_concurrency=2) as client:
        results = await asyncio.gather(*(client.complete(_ask(f"q{i}")) for i in range(6)))
    assert len(results) == 6 and peak == 2


def _png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (2, 2), "red").save(buffer, format="PNG")
    return buffer.getvalue()


def _image_request() -> ChatRequest:
    from serving import ImagePart, TextPart

    content = [TextPart(text="What is on this floor plan?"), ImagePart.from_bytes(_png(), "image/png")]
    return ChatRequest(messages=[Message(role="user", content=content)], max_tokens=8)


async def test_images_to_a_model_without_vision_fail_before_sending(llm_url: str) -> None:
    from serving import CapabilityError

    async with ChatClient(llm_url) as client:
        assert await client.supports_images() is False  # SmolLM2 on llama-server: /props says no vision
        with pytest.raises(CapabilityError, match="cannot read images"):
            await client.complete(_image_request())


async def test_images_go_inline_as_data_urls_to_a_vision_model() -> None:
    seen: list[httpx.Request] = []
    routes = {
        "/model_info": httpx.Response(200, json={"has_image_understanding": True}),
        "/v1/chat/completions": httpx.Response(200, json=SGLANG_REASONING_RESPONSE),
    }

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return routes.get(request.url.path, httpx.Response(404))

    async with ChatClient("http://sglang:30000/v1", transport=httpx.MockTransport(handler)) as client:
        await client.complete(_image_request())
        await client.complete(_image_request())
    posted = [r for r in seen if r.url.path == "/v1/chat/completions"]
    part = json.loads(posted[0].content)["messages"][0]["content"][1]
    assert part["type"] == "image_url" and part["image_url"]["url"].startswith("data:image/png;base64,")
    assert sum(r.url.path == "/model_info" for r in seen) == 1, "the capability is asked once per client"


def test_bad_images_are_refused() -> None:
    from serving import ImagePart

    with pytest.raises(ImageError, match="unsupported image type"):
        ImagePart.from_bytes(b"GIF89a", "image/bmp")
    with pytest.raises(ImageError, match="the limit is"):
        ImagePart.from_bytes(b"\0" * (20 * 1024 * 1024 + 1), "image/png")
    # Unlabelled bytes go by their first bytes; labelled ones must match them.
    assert ImagePart.from_bytes(b"GIF89a....").image_url.url.startswith("data:image/gif;base64,")
    with pytest.raises(ImageError, match="not a PNG, JPEG, WebP or GIF"):
        ImagePart.from_bytes(b"%PDF-1.7")
    with pytest.raises(ImageError, match="not a PNG image"):
        ImagePart.from_bytes(b"GIF89a....", "image/png")


async def test_closing_a_stream_aborts_the_server_request(llm_url: str) -> None:
    import asyncio
    from contextlib import aclosing

    from serving import parse_metrics

    request = _ask("Write a very long essay about the history of lighthouses.", max_tokens=2000)
    async with ChatClient(llm_url) as client:
        async with aclosing(client.stream(request)) as events:
            async for event in events:
                if event.content:
                    break  # we have seen enough
        for _ in range(50):  # the server notices the closed connection within a few tokens
            metrics = parse_metrics((await client.get("/metrics", root=True)).text)
            if metrics.requests_running == 0:
                break
            await asyncio.sleep(0.1)
        assert metrics.requests_running == 0, "the server is still generating for a closed stream"


async def test_no_first_token_in_time_is_a_timeout() -> None:
    import asyncio

    from serving import TimeoutError as ServingTimeout

    async def slow(request: httpx.Request) -> httpx.Response:
        async def body() -> typing.AsyncIterator[bytes]:
            await asyncio.sleep(5)
            yield b"data: [DONE]\n\n"

        return httpx.Response(200, content=body(), headers={"content-type": "text/event-stream"})

    transport = httpx.MockTransport(slow)
    async with ChatClient("http://x/v1", transport=transport, first_token_timeout_s=0.2) as client:
        with pytest.raises(ServingTimeout, match="No first token"):
            async for _ in client.stream(_ask("q")):
                pass


async def test_streamed_tool_calls_are_joined() -> None:
    from serving import collect_tool_calls

    # Recorded shape: SGLang streams a call's id and name first, then its arguments in fragments.
    def call(index: int, **function: str) -> dict[str, object]:
        head = {"id": f"call_{index}", "type": "function"} if "name" in function else {}
        return {"index": index, **head, "function": function}

    chunks = [
        {"choices": [{"index": 0, "delta": {"tool_calls": [call(0, name="search_policies", arguments="")]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [call(0, arguments='{"query": "CC')]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [call(0, arguments='TV"}')]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [call(1, name="noop", arguments="{}")]}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ]
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    response = httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})
    async with ChatClient("http://sglang:30000/v1", transport=_transport([response], [])) as client:
        events = [e async for e in client.stream(_ask("q"))]
    calls = collect_tool_calls(events)
    assert [(c.id, c.name, c.arguments) for c in calls] == [
        ("call_0", "search_policies", {"query": "CCTV"}),
        ("call_1", "noop", {}),
    ]
    assert events[-1].finish_reason == "tool_calls"


async def test_a_request_over_its_total_deadline_is_aborted(llm_url: str) -> None:
    from serving import TimeoutError as ServingTimeout

    async with ChatClient(llm_url, total_timeout_s=0.3) as client:
        with pytest.raises(ServingTimeout, match=r"did not finish within 0\.3s"):
            await client.complete(
                _ask("Write a very long essay about the history of lighthouses.", max_tokens=1500)
            )
        assert (await client.complete(_ask("Say hi.", max_tokens=4))).content is not None


class _Spy(httpx.AsyncBaseTransport):
    """The real transport, noting each request's method and path."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.seen: list[tuple[str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.method, request.url.path))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_prompt_over_the_window_is_refused_before_it_is_sent(llm_url: str) -> None:
    spy = _Spy()
    async with ChatClient(llm_url, transport=spy) as client:
        window = await client.context_length()
        assert window is not None and window >= 2048  # llama-server's per-slot n_ctx, from /props
        # Megabytes: refused from its size alone, without tokenizing it or sending it.
        spy.seen.clear()
        with pytest.raises(ContextLengthError, match=rf"at least [\d,]+ tokens.*window of {window:,}"):
            await client.complete(_ask("Summarise: " + "lorem ipsum dolor sit amet " * 200_000))
        assert spy.seen == []
        # Near the window: counted by the server's tokenizer, and refused with the count.
        words = "alpha beta gamma delta " * (window // 10)  # about 0.4 of the window in tokens
        with pytest.raises(ContextLengthError, match="kept for the answer"):
            await client.complete(_ask(words, max_tokens=window - 1000))
        assert [path for _, path in spy.seen] == ["/tokenize"]
        # The same prompt with room left for the answer goes to the model.
        result = await client.complete(_ask(words, max_tokens=4))
        assert result.usage.prompt_tokens > window // 4
        # Streams are checked the same way.
        with pytest.raises(ContextLengthError):
            async for _ in client.stream(_ask("x " * (window * 40))):
                pass


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(min_size=1, max_size=300))
def test_tokens_never_outnumber_utf8_bytes(llm_url: str, text: str) -> None:
    # What lets check_fits skip the count for every prompt whose bytes fit the window.
    async def count() -> int:
        async with ChatClient(llm_url) as client:
            return await client.count_tokens(text)

    assert asyncio.run(count()) <= len(text.encode())


# What SGLang's gateway (smg 1.13.0) sent when the replica serving a stream was killed mid-prefill,
# recorded by evals/bench/gateway.py: a 200, then one error event.
GATEWAY_STREAM_ERROR = {
    "error": {
        "message": "Stream error: error decoding response body: request or response body error: error "
        "reading a body from connection: unexpected EOF during chunk size line",
        "type": "stream_error",
    }
}


def _events(*chunks: dict[str, object], done: bool = True) -> httpx.Response:
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + ("data: [DONE]\n\n" if done else "")
    return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})


async def test_a_stream_that_fails_before_any_token_is_sent_again_one_that_fails_later_is_not() -> None:
    answer = {"choices": [{"index": 0, "delta": {"content": "42"}, "finish_reason": "stop"}]}
    seen: list[httpx.Request] = []
    failed_then_served = [_events(GATEWAY_STREAM_ERROR, done=False), _events(done=False), _events(answer)]
    async with ChatClient(
        "http://gw:8000/v1", transport=_transport(failed_then_served, seen), retry=NO_WAIT
    ) as c:
        events = [e async for e in c.stream(_ask("q"))]
    assert [e.content for e in events] == ["42"] and len(seen) == 3, "an error event, a cut, then the answer"

    partial = {"choices": [{"index": 0, "delta": {"content": "4"}, "finish_reason": None}]}
    seen.clear()
    shown: list[str] = []
    responses = [_events(partial, GATEWAY_STREAM_ERROR, done=False), _events(answer)]
    async with ChatClient("http://gw:8000/v1", transport=_transport(responses, seen), retry=NO_WAIT) as c:
        with pytest.raises(ServerError, match="Stream error"):
            async for event in c.stream(_ask("q")):
                shown.append(event.content)
    assert shown == ["4"] and len(seen) == 1, "text already shown is never replayed"

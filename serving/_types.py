"""Typed values at the serving boundary: what we send to and get back from an OpenAI-compatible server."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from serving._errors import ImageError

Effort = Literal["none", "high"]
"""Reasoning effort. Mistral Small 4 on SGLang accepts exactly these two values."""

Role = Literal["system", "user", "assistant"]


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["text"] = "text"
    text: str


class ImageUrl(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(pattern=r"^data:image/(png|jpeg|webp|gif);base64,")


class ImagePart(BaseModel):
    """An image sent inline as a data URL: nothing leaves the organisation to fetch it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["image_url"] = "image_url"
    image_url: ImageUrl

    @classmethod
    def from_bytes(cls, data: bytes, mime: str | None = None) -> ImagePart:
        """`mime` as the caller labelled the data (checked against its first bytes), or None to go by
        those bytes alone."""
        if mime is None:
            mime = next((kind for kind, looks in _MAGIC.items() if looks(data)), None)
            if mime is None:
                raise ImageError("the data is not a PNG, JPEG, WebP or GIF image")
        if mime not in IMAGE_TYPES:
            raise ImageError(f"unsupported image type {mime!r}; use one of {', '.join(sorted(IMAGE_TYPES))}")
        if len(data) > MAX_IMAGE_BYTES:
            raise ImageError(f"the image is {len(data):,} bytes; the limit is {MAX_IMAGE_BYTES:,}")
        if not _MAGIC[mime](data):
            # Caught here rather than as a server error half-way through an agent's turn.
            raise ImageError(f"the data is not a {mime.removeprefix('image/').upper()} image")
        return cls(image_url=ImageUrl(url=f"data:{mime};base64,{base64.b64encode(data).decode()}"))

    @classmethod
    def from_file(cls, path: Path) -> ImagePart:
        mime = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp",
                ".gif": "image/gif"}.get(path.suffix.lower(), "")  # fmt: skip
        if not mime:
            raise ImageError(f"{path}: not a picture Bastion can send; use a .png, .jpg, .webp or .gif file")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ImageError(f"{path}: cannot be read ({exc.strerror})") from exc
        return cls.from_bytes(data, mime)

    @property
    def sha256(self) -> str:
        """The picture's own bytes' hash (what an audit record keeps instead of the pixels)."""
        payload = self.image_url.url.partition(",")[2]
        return hashlib.sha256(base64.b64decode(payload)).hexdigest()


IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})
_MAGIC: dict[str, Callable[[bytes], bool]] = {
    "image/png": lambda d: d.startswith(b"\x89PNG\r\n\x1a\n"),
    "image/jpeg": lambda d: d.startswith(b"\xff\xd8\xff"),
    "image/gif": lambda d: d[:6] in (b"GIF87a", b"GIF89a"),
    "image/webp": lambda d: d[:4] == b"RIFF" and d[8:12] == b"WEBP",
}
MAX_IMAGE_BYTES = 20 * 1024 * 1024


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    content: str | list[TextPart | ImagePart]

    @property
    def has_images(self) -> bool:
        return not isinstance(self.content, str) and any(isinstance(p, ImagePart) for p in self.content)


class JsonSchema(BaseModel):
    """A `response_format` of type json_schema; both llama-server and SGLang enforce it with a grammar."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool = True

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": "json_schema",
            "json_schema": {"name": self.name, "schema": self.schema_, "strict": self.strict},
        }


class Tool(BaseModel):
    """A function the model may call; `parameters` is a JSON schema."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


class ToolCall(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    arguments_json: str
    arguments: dict[str, Any] | None  # None when arguments_json is not a JSON object

    @classmethod
    def from_wire(cls, call: dict[str, Any]) -> ToolCall:
        function = call.get("function") or {}
        raw = function.get("arguments")
        text = raw if isinstance(raw, str) else json.dumps(raw or {})
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        return cls(
            id=str(call.get("id") or ""),
            name=str(function.get("name") or ""),
            arguments_json=text,
            arguments=parsed if isinstance(parsed, dict) else None,
        )


class ChatRequest(BaseModel):
    """One chat completion request. Unknown fields are rejected so typos fail loudly."""

    model_config = ConfigDict(extra="forbid")

    messages: list[Message] = Field(min_length=1)
    reasoning_effort: Effort | None = None
    max_tokens: int | None = Field(default=None, gt=0)
    max_completion_tokens: int | None = Field(default=None, gt=0)
    tools: list[Tool] | None = None
    tool_choice: Literal["auto", "none", "required"] | None = None
    cache_salt: str | None = Field(
        default=None,
        min_length=1,
        # vLLM 0.34.0 refuses longer salts and these characters (validate_cache_salt; SGLang takes any):
        # refused here, before a request that one of the servers would answer with a 400.
        max_length=128,
        pattern=r"^[^@/\\\x00]+$",
        description="SGLang, vLLM: requests with other salts share no KV",
    )
    rid: str | None = Field(default=None, min_length=1, max_length=128, description="SGLang request id")
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    seed: int | None = None
    stop: list[str] | None = None
    response_format: JsonSchema | None = None

    @property
    def has_images(self) -> bool:
        return any(m.has_images for m in self.messages)

    def to_wire(self, *, model: str | None, dialect: Dialect, stream: bool) -> dict[str, Any]:
        """The request body in the server's dialect: fields it does not accept are left out."""
        body: dict[str, Any] = {"messages": [m.model_dump() for m in self.messages], "stream": stream}
        if model:
            body["model"] = model
        if self.reasoning_effort is not None and dialect.reasoning == "field":
            body["reasoning_effort"] = self.reasoning_effort
        elif self.reasoning_effort is not None and dialect.reasoning == "template":
            body["chat_template_kwargs"] = {"reasoning_effort": self.reasoning_effort}
        for key in (
            "max_tokens", "max_completion_tokens", "temperature", "frequency_penalty", "presence_penalty",
            "seed", "stop", "tool_choice", "rid",
        ):  # fmt: skip
            value = getattr(self, key)
            if value is not None:
                body[key] = value
        if self.cache_salt is not None and dialect.cache_salt:
            body["cache_salt"] = self.cache_salt
        if self.tools:
            body["tools"] = [t.to_wire() for t in self.tools]
        if self.response_format is not None:
            body["response_format"] = self.response_format.to_wire()
        if stream:
            # Without this neither llama-server nor SGLang sends usage on a stream.
            body["stream_options"] = {"include_usage": True}
        return body


ReasoningStyle = Literal["field", "template", "off"]
"""How a request asks for an effort: the top-level `reasoning_effort` field (SGLang, vLLM, Mistral's
API), `chat_template_kwargs={"reasoning_effort": …}` (llama.cpp builds that only template-render it),
or not at all."""


class Dialect(BaseModel):
    """The request fields a server accepts beyond the OpenAI core (messages, max_tokens, stream…)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reasoning: ReasoningStyle = "field"
    cache_salt: bool = True
    json_schema: bool = True
    tools: bool = True
    images: bool | None = Field(default=None, description="None: ask the server (vision is per model)")


class Usage(BaseModel):
    """Token accounting, normalised across servers. `None` means the server did not say, which is not
    the same as zero: SGLang reports cached tokens only with --enable-cache-report."""

    model_config = ConfigDict(frozen=True)

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_wire(cls, usage: dict[str, Any] | None, timings: dict[str, Any] | None = None) -> Usage:
        usage = usage or {}
        details = usage.get("prompt_tokens_details") or {}
        cached = details.get("cached_tokens")
        if cached is None and timings and "cache_n" in timings:
            cached = timings["cache_n"]  # llama-server's own field
        reasoning = usage.get("reasoning_tokens")  # SGLang puts it at the top level
        if reasoning is None:
            reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens")
        return cls(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            cached_tokens=None if cached is None else int(cached),
            reasoning_tokens=None if reasoning is None else int(reasoning),
        )


FinishReason = Literal["stop", "length", "tool_calls", "content_filter"] | str


class ChatResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    content: str
    reasoning_content: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    finish_reason: FinishReason | None = None
    model: str | None = None
    usage: Usage = Usage()
    latency_ms: float = 0.0


class ToolCallDelta(BaseModel):
    """A piece of a streamed tool call: the first piece of each carries its id and name, the rest
    carry fragments of its JSON arguments. `collect_tool_calls` joins them."""

    model_config = ConfigDict(frozen=True)

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class StreamEvent(BaseModel):
    """One server-sent event, reduced to what callers need. The last event carries usage."""

    model_config = ConfigDict(frozen=True)

    content: str = ""
    reasoning_content: str = ""
    tool_calls: list[ToolCallDelta] = Field(default_factory=list)
    finish_reason: FinishReason | None = None
    usage: Usage | None = None


def collect_tool_calls(events: list[StreamEvent]) -> list[ToolCall]:
    """The complete tool calls of a stream, in index order."""
    parts: dict[int, dict[str, str]] = {}
    for event in events:
        for delta in event.tool_calls:
            call = parts.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            call["id"] = delta.id or call["id"]
            call["name"] = delta.name or call["name"]
            call["arguments"] += delta.arguments
    return [
        ToolCall.from_wire({"id": c["id"], "function": {"name": c["name"], "arguments": c["arguments"]}})
        for _, c in sorted(parts.items())
    ]

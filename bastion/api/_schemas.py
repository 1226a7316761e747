"""The wire shapes of the HTTP API: OpenAI's chat-completions subset that clients send and read, and
Bastion's own search request. Unknown request fields are ignored, as OpenAI-compatible servers do."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from retrieval import SearchMode
from serving import ImageError, ImagePart

AGENTS = ("bastion-qa", "bastion-chat", "bastion-code")
MAX_IMAGES = 8  # pictures in one message; each is also bounded by size (serving.MAX_IMAGE_BYTES)


class WireMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[dict[str, Any]] | None = None

    @property
    def has_images(self) -> bool:
        return isinstance(self.content, list) and any(p.get("type") == "image_url" for p in self.content)

    def images(self) -> list[ImagePart]:
        """The message's pictures, inline data URLs only: Bastion never fetches a URL it is handed (the
        server would reach out of the organisation, or into it, on a caller's behalf)."""
        parts = [p for p in self.content or [] if isinstance(p, dict) and p.get("type") == "image_url"]
        if len(parts) > MAX_IMAGES:
            raise ImageError(f"{len(parts)} images in one message; the limit is {MAX_IMAGES}")
        images = []
        for part in parts:
            spec = part.get("image_url")
            url = spec.get("url") if isinstance(spec, dict) else spec
            if not isinstance(url, str) or not url.startswith("data:"):
                raise ImageError(
                    "an image_url must be an inline data URL (data:image/png;base64,…); Bastion does not "
                    "fetch images from URLs"
                )
            head, _, payload = url.partition(",")
            mime = head.removeprefix("data:").removesuffix(";base64")
            try:
                data = base64.b64decode(payload, validate=True)
            except ValueError as exc:
                raise ImageError(f"an image's data URL is not valid base64 ({exc})") from exc
            images.append(ImagePart.from_bytes(data, mime))
        return images

    @property
    def text(self) -> str:
        """The message's text (its pictures: `images`)."""
        if isinstance(self.content, str):
            return self.content
        return "".join(str(p.get("text", "")) for p in self.content or [] if p.get("type") == "text")


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    messages: list[WireMessage] = Field(min_length=1)
    stream: bool = False
    # OpenAI's own scale; anything but "none" lets the router choose up to "high".
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high"] | None = None

    @field_validator("model")
    @classmethod
    def _known(cls, model: str) -> str:
        if model not in AGENTS:
            raise ValueError(f"unknown model {model!r}: use one of {', '.join(AGENTS)}")
        return model

    @field_validator("messages")
    @classmethod
    def _ends_with_user(cls, messages: list[WireMessage]) -> list[WireMessage]:
        if messages[-1].role != "user" or not messages[-1].text.strip():
            raise ValueError("the last message must be a non-empty user message")
        return messages


def conversation_key(user: str, model: str, messages: list[WireMessage]) -> str:
    """Identifies a conversation by who holds it, the model it was held with and everything said so
    far, so a client that re-sends the whole history (as OpenAI clients do) continues the same
    Bastion thread, and the same history sent to another model starts a thread of that model's own."""
    said = [[m.role, m.text] for m in messages if m.role in ("user", "assistant")]
    return hashlib.sha256(json.dumps([user, model, said], ensure_ascii=False).encode()).hexdigest()


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def usage_json(prompt: int, completion: int, cached: int | None) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return usage


def completion_json(
    cid: str, model: str, content: str, usage: dict[str, Any], extension: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
        "usage": usage,
        "bastion": extension,
    }


def chunk_json(
    cid: str,
    model: str,
    delta: dict[str, Any],
    *,
    finish: str | None = None,
    usage: dict[str, Any] | None = None,
    extension: dict[str, Any] | None = None,
) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage is not None:
        chunk["usage"] = usage
    if extension is not None:
        chunk["bastion"] = extension
    return chunk


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=100_000)  # the setting bounds it further
    limit: int = Field(default=5, ge=1, le=100)
    # Unset: the setting, else what `bastion eval tune` measured best for the collection, else hybrid.
    mode: SearchMode | None = None

    @field_validator("query")
    @classmethod
    def _not_blank(cls, query: str) -> str:
        if not query.strip():
            raise ValueError("the query is blank")
        return query

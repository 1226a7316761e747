"""Whether a prompt fits the model's context, decided before it is sent: a multi-megabyte question
must be refused here in microseconds, not after the server has read and tokenized it.

Two bounds make the exact count (a round trip to the server's tokenizer) rare:
- a byte-level tokenizer never makes more tokens than the text has UTF-8 bytes, so a prompt whose
  bytes fit surely fits (every ordinary QA turn: a few kilobytes against an 8k to 256k window);
- no token of the tokenizers we serve spans more than `MAX_BYTES_PER_TOKEN` bytes on average over a
  whole prompt, so a prompt over that many bytes per token of room surely does not fit.
Only prompts between the two are counted by the server's own tokenizer.
"""

from __future__ import annotations

from serving._types import ChatRequest, TextPart

TEMPLATE_TOKENS_PER_MESSAGE = 8
"""Role markers and separators the chat template adds around each message (Mistral, Qwen, SmolLM)."""
TEMPLATE_TOKENS = 32
"""What the template adds once: a default system line (Qwen adds one when none is given), BOS."""
MAX_BYTES_PER_TOKEN = 32
"""Far above any real text's average (English ≈ 4, code ≈ 3, digits 1): only a prompt of nothing but
long whitespace runs could average more, and such a prompt is refused by the exact count anyway."""
SMALLEST_WINDOW = 2048
"""No server Bastion talks to has less; a prompt under it needs no question to the server."""


def prompt_text(request: ChatRequest) -> str:
    """The text the chat template will wrap: every message's text parts (images are not counted)."""
    pieces: list[str] = []
    for message in request.messages:
        if isinstance(message.content, str):
            pieces.append(message.content)
        else:
            pieces.extend(p.text for p in message.content if isinstance(p, TextPart))
    return "\n".join(pieces)


def template_tokens(request: ChatRequest) -> int:
    return TEMPLATE_TOKENS + TEMPLATE_TOKENS_PER_MESSAGE * len(request.messages)


def room(window: int, request: ChatRequest) -> int:
    """Tokens the prompt may take: SGLang and vLLM refuse a request whose prompt plus `max_tokens`
    passes the window, so the answer's budget is kept free here too."""
    return window - (request.max_tokens or 0)


def too_long(tokens: int, window: int, request: ChatRequest, *, at_least: bool = False) -> str:
    counted = f"at least {tokens:,}" if at_least else f"{tokens:,}"
    answer = f" and {request.max_tokens:,} kept for the answer" if request.max_tokens else ""
    return (
        f"The prompt does not fit the model's context window: {counted} tokens{answer}, "
        f"over the window of {window:,}. Shorten the question or conversation, or retrieve fewer passages."
    )

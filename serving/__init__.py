"""Talking to the model server: an async OpenAI-compatible client, and the local llama-server."""

from serving._client import ChatClient, RetryPolicy
from serving._errors import (
    BadRequestError,
    ConnectError,
    ContextLengthError,
    LocalServerError,
    ResponseError,
    ServerError,
    ServingError,
    TimeoutError,
)
from serving._install import ensure_llama_server, ensure_model, llama_server_path, model_path
from serving._local import LocalServer, LocalServerConfig, LocalServerState
from serving._types import ChatRequest, ChatResult, Effort, JsonSchema, Message, StreamEvent, Usage

__all__ = [
    "BadRequestError",
    "ChatClient",
    "ChatRequest",
    "ChatResult",
    "ConnectError",
    "ContextLengthError",
    "Effort",
    "JsonSchema",
    "LocalServer",
    "LocalServerConfig",
    "LocalServerError",
    "LocalServerState",
    "Message",
    "ResponseError",
    "RetryPolicy",
    "ServerError",
    "ServingError",
    "StreamEvent",
    "TimeoutError",
    "Usage",
    "ensure_llama_server",
    "ensure_model",
    "llama_server_path",
    "model_path",
]

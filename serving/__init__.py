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
from serving._probe import MetricsSnapshot, ServerInfo, SmokeResult, parse_metrics, probe
from serving._sglang import (
    PROFILES,
    LaunchConfigError,
    SGLangFlags,
    SGLangProfile,
    launch_commands,
    server_args_of,
)
from serving._types import (
    ChatRequest,
    ChatResult,
    Effort,
    JsonSchema,
    Message,
    StreamEvent,
    Tool,
    ToolCall,
    Usage,
)

__all__ = [
    "PROFILES",
    "BadRequestError",
    "ChatClient",
    "ChatRequest",
    "ChatResult",
    "ConnectError",
    "ContextLengthError",
    "Effort",
    "JsonSchema",
    "LaunchConfigError",
    "LocalServer",
    "LocalServerConfig",
    "LocalServerError",
    "LocalServerState",
    "Message",
    "MetricsSnapshot",
    "ResponseError",
    "RetryPolicy",
    "SGLangFlags",
    "SGLangProfile",
    "ServerError",
    "ServerInfo",
    "ServingError",
    "SmokeResult",
    "StreamEvent",
    "TimeoutError",
    "Tool",
    "ToolCall",
    "Usage",
    "ensure_llama_server",
    "ensure_model",
    "launch_commands",
    "llama_server_path",
    "model_path",
    "parse_metrics",
    "probe",
    "server_args_of",
]

"""Settings: read once in the composition layer and handed down section by section.

Sources, highest first: explicit arguments, environment variables (`BASTION_` prefix, one `_`
between section and field: `BASTION_MODEL_URL`, `BASTION_RETRIEVAL_TOP_K`), a TOML config file,
defaults. The config file is `$BASTION_CONFIG` (or `--config`) if set, else `<data dir>/config.toml`
if it exists; a config file cannot move the data dir it lives in.
Unknown keys in the file are errors, not silently dropped.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from bastion.errors import ConfigError


def _xdg(var: str, fallback: str) -> Path:
    return Path(os.environ.get(var) or Path.home() / fallback)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSettings(_Section):
    url: str | None = Field(
        default=None,
        description="OpenAI-compatible base URL ending in /v1 (e.g. SGLang). Unset: the local llama-server.",
    )
    api_key: SecretStr | None = None
    name: str | None = Field(default=None, description="the `model` field sent; unset lets the server choose")
    tokenizer_url: str | None = Field(
        default=None,
        description=(
            "a server that counts tokens for the model (POST /tokenize) when url cannot: behind SGLang's "
            "gateway, one replica's URL, unless the gateway was started with --tokenizer-path"
        ),
    )
    timeout_s: float = Field(default=120.0, gt=0)
    first_token_timeout_s: float | None = Field(default=None, gt=0, description="streams: abort if no token")
    total_timeout_s: float | None = Field(default=None, gt=0, description="abort a whole request after this")
    max_concurrency: int = Field(default=64, ge=1, description="requests in flight to the model server")
    retries: int = Field(default=3, ge=1, le=10)
    send_reasoning_effort: bool = True
    reasoning: Literal["field", "template", "off"] = Field(
        default="field",
        description=(
            "how a request asks for its effort: the reasoning_effort field (SGLang, vLLM, Mistral's API), "
            "chat_template_kwargs (llama.cpp), or not at all (`bastion model preset` sets it)"
        ),
    )
    send_cache_salt: bool = Field(
        default=True, description="false for servers that refuse or ignore it (Mistral's API, NIM, llama.cpp)"
    )
    max_tokens: int = Field(default=320, gt=0)
    temperature: float = Field(default=0.0, ge=0, le=2)


class LocalSettings(_Section):
    """The local llama-server, used when model.url is unset."""

    auto_start: bool = True
    model: Literal["qwen2.5-1.5b", "smollm2"] | None = Field(
        default=None,
        description=(
            "qwen2.5-1.5b (Qwen2.5-Coder-1.5B-Instruct, right answers) or smollm2 (SmolLM2-135M, fast, "
            "often wrong); unset: qwen2.5-1.5b, or smollm2 when the set-up could not fetch it"
        ),
    )
    port: int | None = Field(default=None, ge=1, le=65535)
    threads: int | None = Field(default=None, ge=1, description="unset: every core of this machine")
    ctx_size: int | None = Field(default=None, ge=512, description="unset: the model's (32768 for Qwen)")
    parallel: int = Field(default=2, ge=1)
    startup_timeout_s: float = Field(default=120.0, gt=0)


EmbeddingBackend = Literal["torch", "onnx", "onnx-int8"]


class RetrievalSettings(_Section):
    store: Literal["edge", "qdrant"] = "edge"
    qdrant_url: str | None = Field(default=None, description="with store=qdrant; unset: local on-disk mode")
    qdrant_api_key: SecretStr | None = None
    qdrant_grpc: bool = Field(default=False, description="talk to the Qdrant server over gRPC")
    mode: Literal["hybrid", "dense", "sparse"] | None = Field(
        default=None,
        description="unset: what `bastion eval tune` measured best for the collection, else hybrid",
    )
    fusion: Literal["dbsf", "rrf"] | None = Field(
        default=None,
        description=(
            "how hybrid search fuses the dense and BM25 lists, by score distribution or by rank; "
            "unset: what `bastion eval tune` measured best for the collection, else dbsf"
        ),
    )
    collection: str = "bastion"
    embedding_model: Path | None = Field(default=None, description="a sentence-transformers folder")
    device: str = Field(default="auto", description="auto (CUDA when present, else CPU), cpu, cuda, cuda:1…")
    embedding_backend: EmbeddingBackend | Literal["auto"] = Field(
        default="auto",
        description="what runs the embedding model: torch (PyTorch), onnx (ONNX Runtime, CPU only, exported "
        "once into the cache), onnx-int8 (the same with int8 weights); auto: torch on a GPU, "
        "else the CPU default docs/benchmarks.md measured",
    )
    embedding_precision: Literal["auto", "fp32", "fp16"] = Field(
        default="auto",
        description="the torch backend's weights: auto is fp16 on a GPU and fp32 on a CPU",
    )
    chunk_tokens: int | None = Field(
        default=None,
        ge=16,
        le=512,
        description="chunk size in embedding tokens; unset: what `bastion eval tune --chunk-tokens` "
        "measured best for the collection, else 128",
    )
    optimize_after: int = Field(
        default=20_000,
        ge=0,
        description="Qdrant Edge: `bastion index` builds the HNSW search index once this many chunks were "
        "written since the last build (0: only with --optimize)",
    )
    top_k: int = Field(default=5, ge=1, le=20, description="passages per search, and shown per QA answer")
    max_document_mb: int = Field(
        default=10,
        ge=1,
        le=1024,
        description="the most text one document may give, in MB; larger ones are refused",
    )
    min_score: float = Field(
        default=0.25, ge=-1, le=1, description="dense mode only: passages below this cosine are not used"
    )


class AgentSettings(_Section):
    router: Literal["rules", "learned", "escalate"] = Field(
        default="rules",
        description=(
            "rules: step type and question features; learned: the model `bastion router train` wrote "
            "to <data dir>/router.json; escalate: answer with none, retry once with high when the "
            "answer fails its checks"
        ),
    )
    checkpointer: Literal["sqlite", "postgres"] = Field(
        default="sqlite",
        description="where conversation threads live: <data dir>/threads.sqlite, or Postgres for replicas",
    )
    postgres_url: SecretStr | None = Field(
        default=None, description="postgresql://user:pass@host/db, for checkpointer=postgres"
    )
    verify_answers: bool = Field(
        default=False,
        description="after the checks, ask the model whether the quoted text answers the question",
    )
    search_expand: bool = Field(
        default=False,
        description="QA: the model writes a passage in the documents' words, searched with the question "
        "(one extra model call per turn; docs/evaluation.md has what it gained)",
    )
    search_rerank: bool = Field(
        default=False,
        description="QA: the model orders the top search candidates before the answer sees them "
        "(one extra model call per turn)",
    )
    rerank_candidates: int = Field(
        default=10, ge=2, le=30, description="QA: how many search candidates the model orders"
    )
    pin_tokens: int = Field(
        default=0,
        ge=0,
        description="QA: estimated tokens of whole documents a thread may pin into its cached prompt "
        "prefix when its search reaches them (0: retrieved passages only; docs/prompt-layout.md)",
    )
    section_tokens: int = Field(
        default=0,
        ge=0,
        description="QA: each retrieved passage is shown with its neighbours from the same section, up "
        "to this many estimated tokens per passage (0: the passage alone)",
    )
    context_tokens: int | None = Field(
        default=None,
        gt=0,
        description="the coding assistant's context budget; unset asks the server (262144: Mistral Small 4)",
    )


class ApiSettings(_Section):
    """`bastion api`: the HTTP service."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    docs: bool = Field(
        default=False,
        description="serve the interactive /docs and /redoc pages (they load scripts from a CDN); "
        "/openapi.json is always served",
    )
    cache_salt: Literal["group", "user", "none"] = Field(
        default="group",
        description="who may share the model server's KV cache: the same groups, one user, or everyone",
    )
    audit_text: bool = Field(default=True, description="keep question texts in the audit log (hashes always)")
    audit_key: SecretStr | None = Field(
        default=None,
        description="the audit chain's HMAC key; unset: <data dir>/secrets/audit.key, made on first use",
    )
    max_upload_mb: int = Field(default=25, ge=1, le=1024, description="the largest document an upload may be")
    max_body_kb: int = Field(
        default=1024, ge=16, le=1 << 20, description="the largest JSON request body; larger ones get 413"
    )
    max_messages: int = Field(default=200, ge=1, description="messages one chat request may carry")
    max_message_chars: int = Field(
        default=32_000, ge=100, description="characters in one message of a conversation"
    )
    max_question_chars: int = Field(
        default=4_000, ge=10, description="characters in the question (the last user message, or a search)"
    )
    code_repo: Path | None = Field(
        default=None, description="the repository the bastion-code model answers about (unset: not offered)"
    )
    source_root: Path | None = Field(
        default=None,
        description="folder that search results and citations show document paths relative to "
        "(uploads: always relative to the documents folder; anything else: its file name only)",
    )
    code_repo_groups: str = Field(
        default="",
        description="comma-separated groups whose keys may ask bastion-code about code_repo; empty: nobody",
    )

    @property
    def code_readers(self) -> frozenset[str]:
        return frozenset(g.strip() for g in self.code_repo_groups.split(",") if g.strip())


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BASTION_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="forbid",
    )

    data_dir: Path = Field(default_factory=lambda: _xdg("XDG_DATA_HOME", ".local/share") / "bastion")
    cache_dir: Path = Field(default_factory=lambda: _xdg("XDG_CACHE_HOME", ".cache") / "bastion")
    user: str = Field(default="local", description="the local operator's user id for CLI calls")
    config: Path | None = Field(default=None, description="the TOML config file (BASTION_CONFIG)")
    model: ModelSettings = ModelSettings()
    local: LocalSettings = LocalSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    agent: AgentSettings = AgentSettings()
    api: ApiSettings = ApiSettings()

    @property
    def files(self) -> DataFiles:
        return DataFiles(self.data_dir)


class DataFiles:
    """Every file and folder Bastion keeps in its data directory, named once. Back up all of it
    together; `secrets/` holds the audit chain's key, which the audit log cannot be checked without."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.keys = root / "keys.sqlite"  # API keys: ids and SHA-256 of the secrets
        self.audit = root / "audit.sqlite"  # the keyed, hash-chained audit log
        self.audit_key = root / "secrets" / "audit.key"  # its HMAC key, unless BASTION_API_AUDIT_KEY
        self.threads = root / "threads.sqlite"  # conversations (LangGraph checkpoints)
        self.conversations = root / "api-conversations.sqlite"  # re-sent histories → threads
        # edge/ (Qdrant Edge), qdrant/ (local mode), manifest*.sqlite, search-<collection>.json
        self.index = root / "index"
        self.documents = root / "documents"  # uploads through the API, one folder per document
        self.router = root / "router.json"  # `bastion router train`'s model
        self.server = root / "server"  # the local llama-server's state and log
        self.gateway = root / "gateway"  # `bastion model gateway`: smg's state and log, replica-N/ folders
        self.evals = root / "evals"  # evaluation results unless --out says otherwise

    def search_profile(self, collection: str) -> Path:
        """The search mode and fusion `bastion eval tune` measured best for a collection."""
        return self.index / f"search-{collection}.json"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings, or raise ConfigError naming the bad key and where it came from."""
    try:
        plain = Settings(**overrides)
        explicit = config_file or plain.config
        if explicit is not None and not explicit.is_file():
            raise ConfigError(f"The config file {explicit} does not exist.")
        path = explicit or plain.data_dir / "config.toml"
        if not path.is_file():
            return Settings(**overrides)

        class FileSettings(Settings):
            model_config = SettingsConfigDict(toml_file=path)

            @classmethod
            def settings_customise_sources(
                cls,
                settings_cls: type[BaseSettings],
                init_settings: PydanticBaseSettingsSource,
                env_settings: PydanticBaseSettingsSource,
                dotenv_settings: PydanticBaseSettingsSource,
                file_secret_settings: PydanticBaseSettingsSource,
            ) -> tuple[PydanticBaseSettingsSource, ...]:
                return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

        return Settings.model_validate(FileSettings(**overrides).model_dump())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"The config file {path} is not valid TOML: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(
            f"Invalid settings ({problems}). Check the BASTION_* environment variables and the config file."
        ) from exc

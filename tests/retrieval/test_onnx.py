"""The ONNX Runtime backend: PyTorch's vectors without PyTorch, an export that is built once, checked
before use and rebuilt when damaged, and a clear refusal for folders it cannot reproduce."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from retrieval import (
    EmbeddingError,
    OnnxEmbedder,
    SentenceTransformerEmbedder,
    default_model_path,
    onnx_unsupported,
    resolve_device,
)
from retrieval._embed import GPU_DEVICE_NODES
from retrieval._onnx import export_folder
from tests.conftest import CACHE_DIR
from tests.retrieval.test_embed import TEXTS

EMBEDDERS = CACHE_DIR / "embedders"


@pytest.fixture(scope="module")
def exported() -> Path:
    """The cached export folder, both graphs built (scripts/setup.sh builds them; this is a no-op then)."""
    for quantized in (False, True):
        OnnxEmbedder(default_model_path(), cache_dir=EMBEDDERS, quantized=quantized).prepare()
    return export_folder(EMBEDDERS, default_model_path())


def _cosines(a: list[list[float]], b: list[list[float]]) -> np.ndarray:
    x, y = np.asarray(a), np.asarray(b)
    return (x * y).sum(axis=1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))


def test_onnx_gives_pytorchs_vectors_in_the_callers_order(
    exported: Path, embedder: SentenceTransformerEmbedder
) -> None:
    # Texts of very different lengths (one past the 256-token window, one empty): the backend batches
    # them by length, so a slip in putting rows back would pair a vector with the wrong text.
    texts = TEXTS + [f"policy clause {i} " * (i * 7 % 50 + 1) for i in range(40)]
    reference = embedder.embed_documents(texts)
    onnx = OnnxEmbedder(default_model_path(), cache_dir=EMBEDDERS, batch_size=8)
    assert _cosines(onnx.embed_documents(texts), reference).min() > 0.99999
    assert onnx.embed_documents([]) == []
    assert np.allclose(onnx.embed_query(texts[0]), reference[0], atol=1e-5)
    assert onnx.dimension == embedder.dimension and onnx.max_tokens == embedder.max_tokens
    assert [onnx.count_tokens(t) for t in texts] == [embedder.count_tokens(t) for t in texts]

    int8 = OnnxEmbedder(default_model_path(), cache_dir=EMBEDDERS, quantized=True, batch_size=8)
    close = _cosines(int8.embed_documents(texts), reference)
    # Measured: 0.993 on average, 0.979 at worst (the empty text, whose vector is all special tokens).
    assert close.mean() > 0.99 and close.min() > 0.97, "int8 weights moved a vector too far from PyTorch's"
    assert close.min() < 0.9999, "the int8 backend gave float vectors: is it running the float graph?"


def test_a_cpu_query_loads_neither_torch_nor_sentence_transformers(exported: Path) -> None:
    if any(Path(node).exists() for node in GPU_DEVICE_NODES):
        pytest.skip("this machine has a GPU driver: `auto` asks torch")
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from retrieval import OnnxEmbedder, default_model_path, resolve_device\n"
        "assert resolve_device('auto') == 'cpu'\n"
        f"e = OnnxEmbedder(default_model_path(), cache_dir=Path({str(EMBEDDERS)!r}))\n"
        "assert len(e.embed_query('How long is CCTV footage kept?')) == 384\n"
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_damaged_export_is_rebuilt_and_a_sound_one_reused(exported: Path, tmp_path: Path) -> None:
    cache = tmp_path / "embedders"
    folder = export_folder(cache, default_model_path())
    shutil.copytree(exported, folder)
    fp32, int8 = folder / "model.onnx", folder / "model-int8.onnx"
    stamps = {p: p.stat().st_mtime_ns for p in (fp32, int8)}
    assert OnnxEmbedder(default_model_path(), cache_dir=cache, quantized=True).prepare() == int8
    assert {p: p.stat().st_mtime_ns for p in (fp32, int8)} == stamps, "a sound export was rebuilt"

    with int8.open("r+b") as f:  # same size, different bytes: only the sha256 can tell
        f.seek(int8.stat().st_size // 2)
        f.write(b"\0" * 64)
    messages: list[str] = []
    rebuilt = OnnxEmbedder(default_model_path(), cache_dir=cache, quantized=True, log=messages.append)
    assert len(rebuilt.embed_query("a question")) == 384
    assert any("quantizing" in m for m in messages) and not any("exporting" in m for m in messages)
    assert fp32.stat().st_mtime_ns == stamps[fp32], "the sound float graph was exported again"
    record = json.loads((folder / "model-int8.json").read_text())
    assert record["size"] == int8.stat().st_size
    assert not list(folder.glob(".model*")), "a temporary file was left behind"


def test_two_processes_building_at_once_build_once(exported: Path, tmp_path: Path) -> None:
    cache = tmp_path / "embedders"
    folder = export_folder(cache, default_model_path())
    folder.mkdir(parents=True)
    for name in ("model.onnx", "model.json"):  # the float graph is there; both want the int8 one
        shutil.copy(exported / name, folder / name)
    script = (
        "from pathlib import Path\n"
        "from retrieval import OnnxEmbedder, default_model_path\n"
        f"e = OnnxEmbedder(default_model_path(), cache_dir=Path({str(cache)!r}), quantized=True, log=print)\n"
        "print(e.prepare())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    runs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0]
    assert sum(out.count("quantizing") for out in outputs) == 1, outputs
    assert all(out.strip().endswith("model-int8.onnx") for out in outputs)


def test_a_folder_the_export_cannot_reproduce_is_refused_by_name(tmp_path: Path) -> None:
    model = tmp_path / "cls-pooled"
    shutil.copytree(default_model_path(), model, ignore=shutil.ignore_patterns("*.safetensors"))
    pooling = model / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    pooling.write_text(
        json.dumps({**config, "pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True})
    )
    reason = onnx_unsupported(model)
    assert reason is not None and "pooling_mode_cls_token" in reason
    with pytest.raises(EmbeddingError, match="BASTION_RETRIEVAL_EMBEDDING_BACKEND=torch"):
        OnnxEmbedder(model, cache_dir=tmp_path / "cache").embed_query("a question")
    assert not (tmp_path / "cache").exists(), "nothing is exported for a folder that is refused"
    assert onnx_unsupported(default_model_path()) is None
    (model / "tokenizer.json").unlink()
    pooling.write_text(json.dumps(config))
    assert "tokenizer.json" in (onnx_unsupported(model) or "")


def test_the_device_is_told_without_torch_where_no_gpu_driver_is() -> None:
    assert resolve_device("cpu") == "cpu" and resolve_device("cuda:1") == "cuda:1"
    if not any(Path(node).exists() for node in GPU_DEVICE_NODES):
        assert resolve_device("auto") == "cpu"

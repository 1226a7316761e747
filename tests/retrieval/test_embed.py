"""The embedder's facts without the model: opening a store needs the dimension, and a re-index of
unchanged files embeds nothing, so reading it must not load MiniLM (~5 s)."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

from retrieval import SentenceTransformerEmbedder, SharesTokenCounter, default_model_path
from retrieval._embed import _declared_dimension

TEXTS = [
    "How long is CCTV footage kept?",
    "def _fitting_prefix(text: str, start: int) -> int:  # snake_case and CamelCase identifiers",
    "Überprüfung der Datenschutz-Folgenabschätzung — naïve café résumé 東京 🙂",
    "x" * 3000 + " a very long line past the model's 256-token window " * 40,
    "",
]


def test_dimension_window_and_token_counts_come_without_loading_the_model() -> None:
    embedder = SentenceTransformerEmbedder(default_model_path())
    assert embedder.dimension == 384 and embedder.max_tokens == 254
    counts = [embedder.count_tokens(t) for t in TEXTS]
    assert embedder._model is None, "reading the model's facts or counting tokens loaded the model"
    loaded = embedder._load()
    assert loaded.get_embedding_dimension() == 384 and loaded.max_seq_length - 2 == embedder.max_tokens
    # Exactly the loaded model's own counts, long texts included (no truncation at the window).
    expected = [
        len(loaded.tokenizer(t, add_special_tokens=False, truncation=False)["input_ids"]) for t in TEXTS
    ]
    assert counts == expected and counts[3] > 256


def test_the_token_counter_travels_as_a_path_and_counts_as_the_embedder_does(tmp_path: Path) -> None:
    """Worker processes chunk with it (retrieval/_indexer.py): a count off by one moves a chunk edge
    and so every point id after it."""
    embedder = SentenceTransformerEmbedder(default_model_path())
    assert isinstance(embedder, SharesTokenCounter), "the indexer would never chunk in a pool"
    counter = embedder.token_counter()
    assert counter is not None
    counter("warm: the tokenizer is loaded, and must not be pickled")
    shipped = pickle.dumps(counter)
    assert len(shipped) < 1_000, "the tokenizer itself went into the pickle"
    assert [pickle.loads(shipped)(t) for t in TEXTS] == [embedder.count_tokens(t) for t in TEXTS]
    bare = tmp_path / "no-tokenizer"
    shutil.copytree(default_model_path(), bare)
    (bare / "tokenizer.json").unlink()
    assert SentenceTransformerEmbedder(bare).token_counter() is None  # counting needs the loaded model


def test_a_folder_that_declares_more_pooling_modes_or_a_dense_layer_is_read_right(tmp_path: Path) -> None:
    source = default_model_path()
    model = tmp_path / "model"
    shutil.copytree(source, model)
    pooling = model / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    pooling.write_text(json.dumps({**config, "pooling_mode_max_tokens": True}))  # mean and max: 2 x 384
    embedder = SentenceTransformerEmbedder(model)
    assert embedder.dimension == 768 and embedder._model is None
    assert len(embedder.embed_query("a question")) == 768, "the declared size is the real one"
    modules = json.loads((model / "modules.json").read_text())
    modules.insert(
        2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}
    )
    (model / "modules.json").write_text(json.dumps(modules))
    assert _declared_dimension(model) is None, "a Dense layer changes the size: ask the loaded model"


def test_half_precision_is_the_gpu_default_and_keeps_the_vectors() -> None:
    """fp16 halves the weights and runs on a GPU's tensor cores; it must not move the vectors enough
    to change a ranking. Checked on the CPU, which computes half precision too (slowly)."""
    assert SentenceTransformerEmbedder(default_model_path(), device="cpu").precision == "fp32"
    assert SentenceTransformerEmbedder(default_model_path(), device="cuda").precision == "fp16"
    full = SentenceTransformerEmbedder(default_model_path(), device="cpu", precision="fp32")
    half = SentenceTransformerEmbedder(default_model_path(), device="cpu", precision="fp16")
    texts = [t for t in TEXTS if t]
    for a, b in zip(full.embed_documents(texts), half.embed_documents(texts), strict=True):
        assert all(isinstance(x, float) for x in b)
        assert sum(x * y for x, y in zip(a, b, strict=True)) > 0.999
    assert str(next(half._load().parameters()).dtype) == "torch.float16"

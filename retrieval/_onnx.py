"""The embedding model through ONNX Runtime: the CPU backend, with no torch at query time.

The graph is exported once from the sentence-transformers folder (transformer, mean pooling and L2
normalisation inside it, so its output is the vector `SentenceTransformer.encode` gives) and cached
beside the other built artefacts, keyed by the weights' sha256; it is never committed or downloaded.
`quantized` adds dynamic int8 weights, per output channel and on MatMul only: per-tensor int8 over
every op moved MiniLM's vectors too far (cosine to the float vectors 0.93 on average, 0.87 at worst),
per-channel MatMul keeps them at 0.993 / 0.986 (docs/benchmarks.md has what that does to nDCG).

Why `torch.onnx.export` and `onnxruntime` directly rather than sentence-transformers' ONNX backend: that
backend exports through `optimum` into the model's own folder (here a read-only installed package) and
still imports torch and transformers to run, which is the start-up a CPU query should not pay.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrieval._embed import FolderEmbedder
from retrieval._errors import EmbeddingError

if TYPE_CHECKING:
    import onnxruntime

# Bump when the exported graph changes (inputs, pooling, opset, quantization recipe): cached exports of
# an older format are then rebuilt, not trusted.
EXPORT_FORMAT = 1
OPSET = 17
INPUTS = ("input_ids", "attention_mask", "token_type_ids")

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def export_folder(cache_dir: Path, model_path: Path) -> Path:
    """Where the exports of `model_path`'s weights live: one folder per weights file and format."""
    return cache_dir / f"{_folder_name(model_path)}-{_weights_sha256(model_path)[:16]}-v{EXPORT_FORMAT}"


def ensure_onnx_model(cache_dir: Path, model_path: Path, *, quantized: bool, log: Log = _quiet) -> Path:
    """The exported graph for `model_path`, built (a minute at most, once) if missing or damaged.

    Checked against its record (size and sha256) before use; a build happens under a lock, written
    beside the target and renamed into place, so two processes never see half a file."""
    from filelock import FileLock

    _check_exportable(model_path)
    folder = export_folder(cache_dir, model_path)
    target = folder / ("model-int8.onnx" if quantized else "model.onnx")
    if _verified(target):
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / ".lock")):
        if _verified(target):  # another process built it while we waited
            return target
        fp32 = folder / "model.onnx"
        if not _verified(fp32):
            log(f"exporting {_folder_name(model_path)} to ONNX (once; cached in {folder})")
            _write_verified(fp32, lambda out: _export(model_path, out))
        if quantized:
            log("quantizing the ONNX embedding model to int8 (once)")
            _write_verified(target, lambda out: _quantize(fp32, out))
    return target


class OnnxEmbedder(FolderEmbedder):
    """The folder's model run by ONNX Runtime on the CPU; tokenized by its tokenizer.json in batches
    of similar length (padding is wasted work), normalised vectors."""

    def __init__(
        self,
        model_path: Path,
        *,
        cache_dir: Path,
        quantized: bool = False,
        threads: int | None = None,
        batch_size: int | None = None,
        query_cache_size: int = 1024,
        log: Log = _quiet,
    ) -> None:
        super().__init__(model_path, batch_size=batch_size, query_cache_size=query_cache_size)
        self.cache_dir, self.quantized, self.threads = cache_dir, quantized, threads
        self._log = log
        self._session: onnxruntime.InferenceSession | None = None
        self._batcher: Any = None

    @property
    def backend(self) -> str:
        return "onnx-int8" if self.quantized else "onnx"

    def prepare(self) -> Path:
        """Export (if needed) and verify the graph now rather than at the first embedding."""
        return ensure_onnx_model(self.cache_dir, self.model_path, quantized=self.quantized, log=self._log)

    def _load(self) -> onnxruntime.InferenceSession:
        if self._session is None:
            import onnxruntime

            path = self.prepare()
            options = onnxruntime.SessionOptions()
            if self.threads:
                options.intra_op_num_threads = self.threads
            try:
                self._session = onnxruntime.InferenceSession(
                    str(path), options, providers=["CPUExecutionProvider"]
                )
            except Exception as exc:  # ORT raises its own untyped errors for unreadable graphs
                raise EmbeddingError(f"ONNX Runtime could not load {path}: {exc}") from exc
        return self._session

    def _batch_tokenizer(self) -> Any:
        if self._batcher is None:
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(self.model_path / "tokenizer.json"))
            # As sentence-transformers does: cut at the model's window, [CLS] and [SEP] included.
            tokenizer.enable_truncation(max_length=self.max_sequence)
            tokenizer.no_padding()
            self._batcher = tokenizer
        return self._batcher

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        import numpy as np

        session = self._load()
        encodings = self._batch_tokenizer().encode_batch(texts, add_special_tokens=True)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out: Any = None  # sized by the graph's first output, not by re-reading the folder per call
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            width = max(len(encodings[i].ids) for i in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for row, i in enumerate(rows):
                tokens = encodings[i].ids
                ids[row, : len(tokens)] = tokens
                mask[row, : len(tokens)] = 1
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            vectors = session.run(["embedding"], feed)[0]
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            out[rows] = vectors
        return [[float(x) for x in row] for row in out]


# -- export --------------------------------------------------------------------------------------------


def onnx_unsupported(model_path: Path) -> str | None:
    """Why the export cannot reproduce this folder's vectors, or None when it can: it covers a
    transformer, mean pooling and (optionally) normalisation, tokenized by tokenizer.json."""
    try:
        modules = json.loads((model_path / "modules.json").read_text())
        kinds = [str(m["type"]).rsplit(".", 1)[-1] for m in modules]
        pooling = json.loads((model_path / str(modules[1]["path"]) / "config.json").read_text())
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        return f"{model_path} is not a sentence-transformers folder ({exc})"
    modes = sorted(key for key, on in pooling.items() if key.startswith("pooling_mode_") and on is True)
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        return f"{model_path} has modules {kinds}; the export covers Transformer, Pooling[, Normalize]"
    if modes != ["pooling_mode_mean_tokens"]:
        return f"{model_path} pools with {modes}; the export covers mean pooling"
    if not (model_path / "tokenizer.json").exists():
        return f"{model_path} has no tokenizer.json"
    return None


def _check_exportable(model_path: Path) -> None:
    reason = onnx_unsupported(model_path)
    if reason is not None:
        raise EmbeddingError(
            f"The ONNX embedding backend cannot run this model: {reason}. "
            "Set BASTION_RETRIEVAL_EMBEDDING_BACKEND=torch."
        )


def _export(model_path: Path, out: Path) -> None:
    import torch
    from transformers import AutoModel

    bert = AutoModel.from_pretrained(str(model_path), local_files_only=True).eval()

    class Sentence(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    example = torch.ones((2, 16), dtype=torch.long)
    axes = {name: {0: "batch", 1: "tokens"} for name in INPUTS}
    # The tracer warns about every shape-dependent branch inside transformers' BERT; none depends on
    # the example's shape here (the axes are dynamic and the output equals PyTorch's, tested).
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The TorchScript exporter: it needs only `onnx`, and its graph of this model is what we measured.
        torch.onnx.export(
            Sentence(),
            (example, torch.ones_like(example), torch.zeros_like(example)),
            str(out),
            input_names=list(INPUTS),
            output_names=["embedding"],
            dynamic_axes={**axes, "embedding": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )


def _quantize(fp32: Path, out: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(fp32),
        str(out),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul"],
        # The TorchScript export leaves some intermediate tensors untyped; the quantizer needs a type.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


# -- the cache's records ---------------------------------------------------------------------------------


def _write_verified(target: Path, build: Callable[[Path], None]) -> None:
    """Builds into a temporary file beside `target`, records its size and sha256, renames it in."""
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}-", suffix=".onnx")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            build(tmp)
        except EmbeddingError:
            raise
        except Exception as exc:  # the exporters raise whatever their internals raise
            raise EmbeddingError(f"Building {target.name} failed: {type(exc).__name__}: {exc}") from exc
        record = {"format": EXPORT_FORMAT, "size": tmp.stat().st_size, "sha256": _sha256(tmp)}
        os.replace(tmp, target)
        _record_path(target).write_text(json.dumps(record) + "\n")
    finally:
        tmp.unlink(missing_ok=True)


def _verified(target: Path) -> bool:
    try:
        record = json.loads(_record_path(target).read_text())
        return bool(
            record["format"] == EXPORT_FORMAT
            and target.stat().st_size == record["size"]
            and _sha256(target) == record["sha256"]
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _record_path(target: Path) -> Path:
    return target.with_suffix(".json")


def _folder_name(model_path: Path) -> str:
    return model_path.name if model_path.name != "model" else model_path.parent.name


def _weights_sha256(model_path: Path) -> str:
    """The identity of the weights the graph is exported from (config included: it shapes the graph)."""
    digest = hashlib.sha256()
    for name in ("config.json", "model.safetensors", "pytorch_model.bin"):
        path = model_path / name
        if path.exists():
            digest.update(name.encode() + b"\0" + _sha256(path).encode())
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()

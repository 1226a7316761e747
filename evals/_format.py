"""What the HTML report and the Markdown summary say alike: suite descriptions, the headline metric,
and how numbers, intervals and changes are written."""

from __future__ import annotations

import math
import re

from evals._compare import Comparison, Row
from evals._result import EvalResult, Metric

_RETRIEVAL = (
    "How often the document that answers a question is among the first k search results{where}. "
    "Recall@k counts whether it is there at all; nDCG@10 also rewards ranking it near the top."
)
SUITE_BLURBS: dict[str, str] = {
    "retrieval-cwe": _RETRIEVAL.format(
        where=", for questions about the MITRE CWE catalogue of software weaknesses"
    ),
    "retrieval-banking": _RETRIEVAL.format(
        where=", for customer situations from a bank's internal policy knowledge base (tau2 banking); "
        "each needs several policy documents, and Recall@k is the share of them found"
    ),
    "docs-faq": _RETRIEVAL.format(
        where=", for the questions of Python's FAQ searched across all of Python's documentation "
        "(the answer is the FAQ section itself, indexed without its question)"
    ),
    "retrieval-code": _RETRIEVAL.format(
        where=", for developers' questions about the source code of the Python library rich (the answer "
        "is the file that implements it), many asked in plain words without the code's own names"
    ),
    "grounding": (
        "The share of answers whose every citation is found word for word at the cited place in its "
        "source, and how often the assistant declines to answer when the document holding the answer "
        "was removed from the index (declining is then the correct behaviour)."
    ),
    "routing": (
        "Which questions are sent to the slower, more thorough 'high' reasoning effort, and how well "
        "that choice matches questions labelled in advance as needing it."
    ),
    "cache": (
        "The share of prompt tokens the model server could reuse from its prefix cache on follow-up turns "
        "of a conversation, with Bastion's prompt layout compared to a naive one. Reused tokens are not "
        "recomputed, so a higher share means faster answers on the same hardware."
    ),
}
GENERIC_BLURB = "Measurements from the '{suite}' evaluation suite."
BENCH_BLURB = (
    "A benchmark of the speed or resource use of one part of Bastion ('{name}'). Its numbers depend "
    "on the machine named in the run details and are only comparable between runs on the same machine."
)
HEADLINE_SUFFIXES = ("ndcg@10", "recall@10", "verified_share", "accuracy", "cached_share")
EN_DASH = "\u2013"  # between an interval's ends, as print typography has it
VERDICT_ORDER: dict[str, int] = {"regression": 0, "improvement": 1, "new": 2, "gone": 3, "same": 4}


def blurb(suite: str) -> str:
    if suite in SUITE_BLURBS:
        return SUITE_BLURBS[suite]
    if suite.startswith("bench/"):
        return BENCH_BLURB.format(name=suite.removeprefix("bench/"))
    return GENERIC_BLURB.format(suite=suite)


def headline(result: EvalResult) -> Metric | None:
    for metric in result.metrics:
        if metric.name.endswith(HEADLINE_SUFFIXES):
            return metric
    return result.metrics[0] if result.metrics else None


def fmt(value: float) -> str:
    """Three significant digits, never rounding away whole digits: 0.551, 0.0123, 12.3, 1235."""
    if math.isnan(value):
        return "—"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    magnitude = abs(value)
    if magnitude == 0:
        return "0"
    if magnitude < 1e-4:
        return f"{value:.3g}"
    if magnitude >= 1:
        decimals = max(0, 3 - (math.floor(math.log10(magnitude)) + 1))
    else:
        decimals = 2 - math.floor(math.log10(magnitude))
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def fmt_value(metric: Metric) -> str:
    return f"{fmt(metric.value)} {metric.unit}" if metric.unit else fmt(metric.value)


def fmt_ci(metric: Metric) -> str:
    if metric.ci_low is None or metric.ci_high is None:
        return ""
    return f"{fmt(metric.ci_low)}{EN_DASH}{fmt(metric.ci_high)}"


def fmt_metric(metric: Metric) -> str:
    """The value with its interval, as the summary shows it: "0.55 (0.49 to 0.61)" with an en dash."""
    ci = fmt_ci(metric)
    text = fmt(metric.value) + (f" ({ci})" if ci else "")
    return f"{text} {metric.unit}" if metric.unit else text


def fmt_delta(delta: float) -> str:
    return ("+" if delta > 0 else "") + fmt(delta)


def arrow(metric: Metric) -> str:
    return {True: "↑", False: "↓", None: ""}[metric.higher_is_better]


def short_commit(result: EvalResult) -> str:
    commit = result.provenance.git_commit
    return commit[:7] if re.fullmatch(r"[0-9a-f]{8,}", commit) else commit


def data_versions(result: EvalResult) -> list[str]:
    return [f"{d.name} {d.version} ({d.source})" for d in result.data]


def ordered_changes(comparison: Comparison) -> tuple[list[Row], list[Row]]:
    """Changed rows with the regressions first, and the unchanged rest."""
    regressions = list(comparison.regressions)
    # `regressions` is the authority on what regressed; rows repeating them would be listed twice.
    others = [r for r in comparison.rows if r.verdict != "regression"]
    changed = [r for r in others if r.verdict != "same"]
    changed.sort(key=lambda r: VERDICT_ORDER.get(r.verdict, len(VERDICT_ORDER)))
    return regressions + changed, [r for r in others if r.verdict == "same"]


def comparison_warnings(comparison: Comparison) -> list[str]:
    # Not part of the Protocol: `evals._compare` has them (other data, other settings), a stand-in may not.
    return [str(w) for w in getattr(comparison, "warnings", ())]

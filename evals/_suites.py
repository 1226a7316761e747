"""The suites `bastion eval` knows, and running them one after another."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from evals._answers import answers
from evals._context import EvalContext
from evals._errors import UsageError
from evals._grounding import grounding
from evals._result import EvalResult
from evals._retrieval import docs_faq, retrieval_banking, retrieval_code, retrieval_cwe
from evals._sessions import cache, routing


@dataclass(frozen=True)
class Suite:
    name: str
    summary: str
    needs_model: bool
    run: Callable[[EvalContext], EvalResult | Awaitable[EvalResult]]


SUITES: dict[str, Suite] = {
    s.name: s
    for s in (
        Suite(
            "retrieval-cwe",
            "CWE catalogue (PyPI cwe2): CVE descriptions → their weakness; nDCG@10, Recall@1/5/10, MRR",
            False,
            retrieval_cwe,
        ),
        Suite(
            "retrieval-banking",
            "tau2 banking knowledge base (PyPI inspect-evals): task text → its required policy documents",
            False,
            retrieval_banking,
        ),
        Suite(
            "docs-faq",
            "Python's documentation (Debian python3-doc): FAQ question → the FAQ section answering it",
            False,
            docs_faq,
        ),
        Suite(
            "retrieval-code",
            "rich's source (PyPI rich): questions written here → the files that answer them",
            False,
            retrieval_code,
        ),
        Suite(
            "answers",
            "QA agent on the sample policies: facts right, right file cited, unanswerable questions declined",
            True,
            answers,
        ),
        Suite(
            "grounding",
            "QA agent on the Python FAQ: verified citations, refusals when the answer was withheld",
            True,
            grounding,
        ),
        Suite(
            "routing",
            "reasoning-effort router: held-out accuracy, share of high, tokens vs always-high",
            True,
            routing,
        ),
        Suite(
            "cache",
            "scripted 10-turn sessions: prefix-cache reuse, Bastion's layout vs a naive one",
            True,
            cache,
        ),
    )
}


def resolve(names: list[str]) -> list[Suite]:
    """Suites by name, in the order given; `all` expands to every suite."""
    if not names:
        raise UsageError(f"name at least one suite: {', '.join(SUITES)} (or all)")
    chosen: list[Suite] = []
    for name in names:
        if name == "all":
            chosen += [s for s in SUITES.values() if s not in chosen]
        elif name in SUITES:
            if SUITES[name] not in chosen:
                chosen.append(SUITES[name])
        else:
            raise UsageError(f"unknown suite {name!r}; the suites are: {', '.join(SUITES)} (or all)")
    return chosen


async def run_suite(suite: Suite, context: EvalContext) -> EvalResult:
    outcome = suite.run(context)
    return await outcome if inspect.isawaitable(outcome) else outcome

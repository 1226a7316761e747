"""The suites that replay Bastion's own scripted sessions: the reasoning-effort router and prefix-cache
reuse. Their data is Bastion's (a labelled step set, the sample policies, a few of its own modules) —
what they measure is behaviour of the system rather than knowledge of a corpus."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agents import LabelledStep, LearnedRouter, Router, default_labels, read_labels, route_effort, train
from evals._context import EvalContext
from evals._errors import UsageError
from evals._result import DataVersion, EvalResult, Metric, Series, now
from evals._stats import figure, mean_metric
from evals.bench import cache_reuse
from evals.bench.router import SESSION, always_high, heldout_split, session_tokens

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "examples" / "corpus"
TITLES = {"qa": "Compliance QA", "code": "Coding assistant"}


def _decisions(router: Router, steps: list[LabelledStep]) -> list[str]:
    return [router(s.text).effort for s in steps]


async def routing(context: EvalContext) -> EvalResult:
    started = now()
    labels = default_labels()
    steps = read_labels(labels)
    train_set, heldout = heldout_split(steps, context.seed)
    context.progress.start("routing: training the learned router on 75 % of the labels", None)
    learned = LearnedRouter(train(train_set, context.embedder, heldout=0), context.embedder)
    truth = [s.effort for s in heldout]
    metrics: list[Metric] = []
    mix = [
        Series(
            chart="Effort mix (held-out steps)",
            label="labels",
            x=["none", "high"],
            y=[truth.count("none") / len(truth), truth.count("high") / len(truth)],
            kind="bar",
            y_label="share of steps",
        )
    ]
    details: dict[str, Any] = {"labelled": len(steps), "train": len(train_set), "heldout": len(heldout)}
    for name, router in (("rules", route_effort), ("learned", learned)):
        decided = _decisions(router, heldout)
        hits = [1.0 if d == t else 0.0 for d, t in zip(decided, truth, strict=True)]
        metrics.append(mean_metric(f"{name}/accuracy", hits))
        metrics.append(
            mean_metric(
                f"{name}/share_high", [1.0 if d == "high" else 0.0 for d in decided], higher_is_better=None
            )
        )
        high_recall = [h for h, t in zip(hits, truth, strict=True) if t == "high"]
        metrics.append(mean_metric(f"{name}/recall_of_high", high_recall))
        mix.append(
            Series(
                chart="Effort mix (held-out steps)",
                label=name,
                x=["none", "high"],
                y=[decided.count("none") / len(decided), decided.count("high") / len(decided)],
                kind="bar",
                y_label="share of steps",
            )
        )
        details[name] = {"wrong": [s.text for s, h in zip(heldout, hits, strict=True) if not h]}
    notes = [f"Held-out set: {len(heldout)} of {len(steps)} labelled steps (seed {context.seed})."]
    if context.model_url:
        questions = SESSION[: context.limit] if context.limit else SESSION
        context.progress.start(f"routing: {len(questions)}-question session, routed then always high", 2)
        routed = await session_tokens(context.model_url, CORPUS, route_effort, questions)
        context.progress.advance()
        high = await session_tokens(context.model_url, CORPUS, always_high, questions)
        context.progress.advance()
        details["session"] = {"questions": questions, "routed": routed, "always_high": high}
        for label, counts in (("routed", routed), ("always_high", high)):
            metrics.append(
                figure(f"session/{label}_completion_tokens", counts["completion_tokens"], unit="tokens")
            )
        metrics.append(
            figure(
                "session/tokens_routed_to_always_high",
                routed["completion_tokens"] / max(1, high["completion_tokens"]),
                higher_is_better=False,
            )
        )
        metrics.append(
            figure("session/share_high_calls", routed["high_calls"] / max(1, routed["model_calls"]))
        )
        mix.append(
            Series(
                chart="Completion tokens, one session",
                label="tokens",
                x=["routed", "always high"],
                y=[routed["completion_tokens"], high["completion_tokens"]],
                kind="bar",
                y_label="tokens",
            )
        )
        notes.append(
            "A model that ignores reasoning_effort (SmolLM2 locally) spends the same tokens either way; "
            "on Mistral Small 4 the 'high' steps add reasoning tokens."
        )
    data = [
        DataVersion(
            name="bastion-router-labels",
            version=context.provenance.git_commit[:12],
            source="repository",
            detail=str(labels.relative_to(ROOT)) if labels.is_relative_to(ROOT) else labels.name,
        )
    ]
    return context.result(
        "routing",
        started,
        data=data,
        metrics=metrics,
        series=mix,
        notes=notes,
        details=details,
        model_url=context.model_url,
    )


async def cache(context: EvalContext) -> EvalResult:
    started = now()
    if context.model_url is None:
        raise UsageError("the cache suite needs a model server (--model-url, or let Bastion start one)")
    turns = min(context.limit or len(cache_reuse.QA_TURNS), len(cache_reuse.QA_TURNS))
    context.progress.start(f"cache: two {turns}-turn sessions, three and two layouts", None)
    report = await cache_reuse.measure(context.model_url, CORPUS, turns=turns)
    metrics: list[Metric] = []
    series: list[Series] = []
    for session in ("qa", "code"):
        for layout in report[session]:
            summary = report[session][layout]
            # Only Bastion's own layouts can regress; the naive one is the yardstick.
            direction = None if layout == "naive" else True
            metrics.append(
                figure(
                    f"{session}/{layout}/cached_share",
                    summary["follow_up_cached_share"] or 0.0,
                    higher_is_better=direction,
                )
            )
            if "follow_up_all_calls_cached_share" in summary:
                metrics.append(
                    figure(
                        f"{session}/{layout}/all_calls_cached_share",
                        summary["follow_up_all_calls_cached_share"] or 0.0,
                        higher_is_better=direction,
                    )
                )
            metrics.append(
                figure(
                    f"{session}/{layout}/follow_up_prompt_tokens",
                    summary["follow_up_prompt_tokens"],
                    unit="tokens",
                )
            )
            series.append(
                Series(
                    chart=f"{TITLES[session]}: cached share per turn",
                    label=layout,
                    x=list(range(1, len(summary["turns"]) + 1)),
                    y=[
                        round((t["cached_tokens"] or 0) / max(1, t["prompt_tokens"]), 4)
                        for t in summary["turns"]
                    ],
                    x_label="turn",
                    y_label="cached / prompt tokens",
                )
            )
    notes = [
        "Shares are over follow-up turns (turn 1 has nothing to reuse), counted by the model server.",
        f"The code session edits a file before turn {cache_reuse.CHANGE_AT + 1}.",
        f"QA 'pinned': the documents its searches reach are shown whole (budget {report['pin_tokens']} "
        "estimated tokens, at most half the server's context).",
    ]
    data = [
        DataVersion(
            name="bastion-sample-corpus",
            version=context.provenance.git_commit[:12],
            source="repository",
            detail="examples/corpus, and a few of Bastion's own modules for the code session",
        )
    ]
    return context.result(
        "cache",
        started,
        data=data,
        metrics=metrics,
        series=series,
        notes=notes,
        details=report,
        model_url=context.model_url,
    )

"""`bastion ask`: one question through the QA agent, with its citations and usage."""

from __future__ import annotations

import typer

from agents import QAResult
from bastion.cli._common import GROUPS_OPTION, JSON_OPTION, USER_OPTION, out, principal, run, say
from bastion.cli._common import settings as get_settings
from bastion.settings import Settings
from bastion.wiring import qa_agent
from retrieval import Principal


def ask(
    ctx: typer.Context,
    question: str = typer.Argument(..., help="The question."),
    thread: str | None = typer.Option(None, "--thread", help="Continue this conversation thread."),
    user: str | None = USER_OPTION,
    groups: str | None = GROUPS_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Answer QUESTION from the documents this user may read, citing them."""
    s = get_settings(ctx)
    who = principal(s, user, groups)
    if not question.strip():
        raise typer.BadParameter("the question is empty", param_hint="QUESTION")
    result = run(ask_once(s, question, who, thread))
    if as_json:
        out.print_json(result.model_dump_json())
    else:
        print_result(result)
        say(f"Continue this conversation with --thread {result.thread_id}")


async def ask_once(s: Settings, question: str, who: Principal, thread: str | None) -> QAResult:
    async with qa_agent(s, say) as agent:
        return await agent.ask(question, who, thread_id=thread)


def print_result(result: QAResult) -> None:
    out.print(f"[bold]{result.answer}[/bold]")
    for c in result.citations:
        snippet = " ".join(c.text.split())
        snippet = snippet if len(snippet) <= 140 else snippet[:139] + "…"
        out.print(f"  [cyan][{c.number}][/cyan] {c.source}:{c.start}-{c.end} [dim]{c.title}[/dim]")
        if c.quote:
            out.print(f"      quote checked: [green]“{c.quote}”[/green]")
        out.print(f"      [dim]{snippet}[/dim]")
    for flag in result.flags:
        out.print(f"  [yellow]warning:[/yellow] {_FLAG_TEXT.get(flag.split(':')[0], flag)}")
    u, t = result.usage, result.timings
    cached = "unknown" if u.cached_tokens is None else u.cached_tokens
    if result.search_query != result.question:
        out.print(f"[dim]searched for: {result.search_query}[/dim]")
    out.print(
        f"[dim]effort {result.reasoning_effort} ({result.effort_reason}) · "
        f"{len(result.steps)} model calls · prompt {u.prompt_tokens} tokens, "
        f"{cached} cached · completion {u.completion_tokens} · "
        f"retrieval {t.get('retrieve_ms', 0):.0f} ms, "
        f"generation {t.get('generate_ms', 0):.0f} ms, total {t.get('total_ms', 0):.0f} ms[/dim]"
    )


_FLAG_TEXT = {
    "unsupported": "no claim kept a citation of a retrieved passage, so nothing is shown",
    "dropped_claims": "sentences citing no passage the model was shown were removed",
    "unverified_quote": "a quote the model gave is not in the passage it cited; the sentence is unverified",
    "corrected_citations": "a quote was found in another passage than the one cited; the citation was fixed",
    "model_refused": "the model judged the passages not to answer the question",
    "model_unsure": "the model said it is not sure of this answer",
    "malformed_output": "the model did not return the expected JSON; the answer was recovered from its text",
    "truncated": "the answer hit the token limit and may be cut short",
    "escalated": "the first (reasoning none) answer failed its checks and was redone with reasoning high",
    "rewrite_failed": "the follow-up could not be rewritten; it was searched as asked",
}

"""`bastion ask`: one question through the QA agent, with its citations and usage."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from bastion.cli._common import GROUPS_OPTION, JSON_OPTION, USER_OPTION, out, principal, run, safe, say
from bastion.cli._common import settings as get_settings
from bastion.settings import Settings
from bastion.wiring import code_agent, qa_agent
from retrieval import Principal
from serving import ImageError, ImagePart

if TYPE_CHECKING:
    from agents import CodeResult, QAResult


def ask(
    ctx: typer.Context,
    question: str = typer.Argument(..., help="The question."),
    agent: str = typer.Option(
        "qa", "--agent", help="qa: the indexed documents; code: a repository (--repo)."
    ),
    repo: Path | None = typer.Option(None, "--repo", help="The repository the code agent reads."),
    thread: str | None = typer.Option(None, "--thread", help="Continue this conversation thread."),
    image: list[Path] = typer.Option(
        [],
        "--image",
        help="A picture (PNG, JPEG, WebP, GIF) asked about with the question; repeat for more. Needs a "
        "model server that reads images.",
    ),
    user: str | None = USER_OPTION,
    groups: str | None = GROUPS_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Answer QUESTION from the documents this user may read (or from a repository), citing them."""
    s = get_settings(ctx)
    who = principal(s, user, groups)
    if not question.strip():
        raise typer.BadParameter("the question is empty", param_hint="QUESTION")
    if agent not in ("qa", "code"):
        raise typer.BadParameter(f"unknown agent {agent!r}: use qa or code", param_hint="--agent")
    if image and agent != "qa":
        raise typer.BadParameter("pictures go with --agent qa", param_hint="--image")
    try:
        images = [ImagePart.from_file(path) for path in image]
    except ImageError as exc:
        raise typer.BadParameter(str(exc), param_hint="--image") from exc
    if agent == "code":
        if repo is None or not repo.is_dir():
            raise typer.BadParameter(
                "the code agent needs --repo FOLDER (an existing folder)", param_hint="--repo"
            )
        code = run(ask_code(s, question, repo, who, thread))
        if as_json:
            out.print_json(code.model_dump_json())
        else:
            print_code_result(code)
            say(f"Continue this conversation with --thread {code.thread_id}")
        return
    if repo is not None:
        raise typer.BadParameter("--repo only goes with --agent code", param_hint="--repo")
    result = run(ask_once(s, question, who, thread, images))
    if as_json:
        out.print_json(result.model_dump_json())
    else:
        print_result(result)
        say(f"Continue this conversation with --thread {result.thread_id}")


async def ask_code(s: Settings, question: str, repo: Path, who: Principal, thread: str | None) -> CodeResult:
    async with code_agent(s, say) as agent:
        return await agent.ask(question, repo, who, thread_id=thread)


def print_code_result(result: CodeResult) -> None:
    out.print(f"[bold]{safe(result.answer)}[/bold]")
    for c in result.citations:
        first = c.text.splitlines()[0].strip() if c.text.strip() else ""
        out.print(f"  [cyan]{safe(c.path)}:{c.start_line}-{c.end_line}[/cyan] [dim]{safe(first[:100])}[/dim]")
    for flag in result.flags:
        out.print(f"  [yellow]warning:[/yellow] {safe(_CODE_FLAG_TEXT.get(flag.split(':')[0], flag))}")
    u = result.usage
    cached = "unknown" if u.cached_tokens is None else u.cached_tokens
    how = (
        f"{result.packed_files} files packed whole"
        if result.mode == "whole"
        else "repository map + retrieval"
    )
    out.print(
        f"[dim]{how}{' (repacked)' if result.repacked else ''} · effort {result.reasoning_effort} · "
        f"prompt {u.prompt_tokens} tokens, {cached} cached · completion {u.completion_tokens} · "
        f"total {result.timings.get('total_ms', 0):.0f} ms[/dim]"
    )


_CODE_FLAG_TEXT = {
    "uncited": "the answer cites no existing file and line range",
    "dropped_citations": "citations of lines that do not exist were removed",
    "malformed_output": "the model did not return the expected JSON",
    "truncated": "the answer hit the token limit and may be cut short",
}


async def ask_once(
    s: Settings, question: str, who: Principal, thread: str | None, images: list[ImagePart] | None = None
) -> QAResult:
    async with qa_agent(s, say) as agent:
        return await agent.ask(question, who, thread_id=thread, images=images or ())


def print_result(result: QAResult) -> None:
    out.print(f"[bold]{safe(result.answer)}[/bold]")
    for c in result.citations:
        snippet = " ".join(c.text.split())
        snippet = snippet if len(snippet) <= 140 else snippet[:139] + "…"
        out.print(
            f"  [cyan]\\[{c.number}][/cyan] {safe(c.source)}:{c.start}-{c.end} [dim]{safe(c.title)}[/dim]"
        )
        if c.quote:
            out.print(f"      quote checked: [green]“{safe(c.quote)}”[/green]")
        out.print(f"      [dim]{safe(snippet)}[/dim]")
    for flag in result.flags:
        out.print(f"  [yellow]warning:[/yellow] {safe(_FLAG_TEXT.get(flag.split(':')[0], flag))}")
    u, t = result.usage, result.timings
    cached = "unknown" if u.cached_tokens is None else u.cached_tokens
    if result.search_query != result.question:
        out.print(f"[dim]searched for: {safe(result.search_query)}[/dim]")
    out.print(
        f"[dim]effort {result.reasoning_effort} ({safe(result.effort_reason)}) · "
        f"{len(result.steps)} model calls · prompt {u.prompt_tokens} tokens, "
        f"{cached} cached · completion {u.completion_tokens} · "
        f"retrieval {t.get('retrieve_ms', 0):.0f} ms, "
        f"generation {t.get('generate_ms', 0):.0f} ms, total {t.get('total_ms', 0):.0f} ms[/dim]"
    )


_FLAG_TEXT = {
    "unsupported": "no claim is backed by what the retrieved passages say, so nothing is shown",
    "unsupported_claim": "a sentence says more than the quote it cites; check it against the passage",
    "dropped_claims": "sentences citing no passage the model was shown were removed",
    "corrected_citations": "a quote was found in another passage than the one cited; the citation was fixed",
    "model_refused": "the model judged the passages not to answer the question",
    "malformed_output": "the model did not return the expected JSON; the answer was recovered from its text",
    "truncated": "the answer hit the token limit and may be cut short",
    "escalated": "the first (reasoning none) answer failed its checks and was redone with reasoning high",
    "rewrite_failed": "the follow-up could not be rewritten; it was searched as asked",
    "rewrite_rejected": "the follow-up's rewrite was not a search query; it was searched as asked",
}

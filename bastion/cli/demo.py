"""`bastion demo`: the main job on the embedded defaults, end to end, on the sample corpus."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from bastion.cli._common import out, run, say
from bastion.cli._common import settings as get_settings
from bastion.cli.ask import print_result
from bastion.cli.index import index_paths
from bastion.settings import Settings
from bastion.wiring import local_server, qa_agent
from retrieval import Principal

if TYPE_CHECKING:
    from agents import QAResult

SAMPLE_CORPUS = Path(__file__).resolve().parents[2] / "examples" / "corpus"

# One conversation thread: the follow-ups show the prefix cache at work on the earlier turns.
THREAD = [
    "How many days per year may staff work from abroad?",
    "Who has to approve a stay abroad?",
    "What is the minimum password length?",
    "How long is CCTV footage kept?",
]
OUTSIDER_QUESTION = "What is the minimum password length?"


def demo(
    ctx: typer.Context,
    corpus: Path = typer.Option(SAMPLE_CORPUS, "--corpus", help="Folder to index and ask about."),
) -> None:
    """Index the sample policies of a fictional insurer and ask them questions, with citations."""
    s = get_settings(ctx)
    out.rule("[bold]Bastion demo[/bold]")
    out.print(
        f"Data directory: {s.data_dir}\n"
        f"Model server: {s.model.url or f'local llama-server ({local_server(s).config.alias})'}"
    )
    out.rule("1. Index the sample corpus")
    report = index_paths(ctx, [corpus], groups=frozenset(), show_progress=True)
    out.print(
        f"{report.documents_indexed} document(s) indexed, {report.documents_unchanged} unchanged, "
        f"{report.chunks_written} chunks written."
    )
    results = run(_conversation(s))
    out.rule("3. Prefix-cache reuse across the conversation")
    table = Table("turn", "question", "prompt tokens", "cached", "reused")
    for turn, result in enumerate(results[: len(THREAD)], start=1):
        u = result.usage
        cached = u.cached_tokens
        share = f"{cached / u.prompt_tokens:.0%}" if u.prompt_tokens and cached is not None else "-"
        table.add_row(
            str(turn),
            result.question,
            str(u.prompt_tokens),
            "unknown" if cached is None else str(cached),
            share,
        )
    out.print(table)
    follow_ups = results[1 : len(THREAD)]
    prompt = sum(r.usage.prompt_tokens for r in follow_ups)
    cached = sum(r.usage.cached_tokens or 0 for r in follow_ups)
    if prompt:
        out.print(
            f"Follow-up turns reused {cached} of {prompt} prompt tokens from the server's cache "
            f"({cached / prompt:.0%})."
        )


async def _conversation(s: Settings) -> list[QAResult]:
    operator = Principal(user=s.user)
    thread = f"demo-{uuid.uuid4().hex[:8]}"
    results = []
    async with qa_agent(s, say) as agent:
        out.rule(f"2. Ask, as the local operator (thread {thread})")
        for question in THREAD:
            out.print(f"\n[bold cyan]Q:[/bold cyan] {question}")
            result = await agent.ask(question, operator, thread_id=thread)
            print_result(result)
            results.append(result)
        outsider = Principal(user="visitor")
        out.print(
            "\n[bold cyan]Q (as user 'visitor', who may read none of these documents):[/bold cyan] "
            f"{OUTSIDER_QUESTION}"
        )
        result = await agent.ask(OUTSIDER_QUESTION, outsider)
        print_result(result)
        results.append(result)
    return results

"""`bastion chat`: a persistent conversation, streamed as it is written.

bastion chat                       # a new thread; type messages, /exit or Ctrl-D to leave
bastion chat --thread 3f9c… "…"    # one message into an existing thread, from any process
bastion chat --thread 3f9c… --history
echo "hello" | bastion chat --json # one JSON event per line: node, token, reasoning, done
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer

from bastion.cli._common import (
    GROUPS_OPTION,
    JSON_OPTION,
    USER_OPTION,
    err,
    out,
    plain,
    principal,
    run,
    safe,
    say,
)
from bastion.cli._common import settings as get_settings
from bastion.settings import Settings
from bastion.wiring import chat_agent
from retrieval import Principal

if TYPE_CHECKING:
    from agents import ChatAgent, ChatEvent

EXIT_WORDS = frozenset({"/exit", "/quit"})


def chat(
    ctx: typer.Context,
    message: str | None = typer.Argument(None, help="Send this one message (default: read messages)."),
    thread: str | None = typer.Option(None, "--thread", help="Resume this thread (default: a new one)."),
    show_history: bool = typer.Option(False, "--history", help="Print the thread's messages and exit."),
    user: str | None = USER_OPTION,
    groups: str | None = GROUPS_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Talk with the model in a thread that persists across runs, streaming its reply."""
    s = get_settings(ctx)
    who = principal(s, user, groups)
    if message is not None and not message.strip():
        raise typer.BadParameter("the message is empty", param_hint="MESSAGE")
    if show_history and thread is None:
        raise typer.BadParameter("--history needs --thread ID", param_hint="--history")
    run(_session(s, who, thread, message, show_history=show_history, as_json=as_json))


async def _session(
    s: Settings, who: Principal, thread: str | None, message: str | None, *, show_history: bool, as_json: bool
) -> None:
    async with chat_agent(s, say) as agent:
        if show_history:
            assert thread is not None
            for user_text, reply in await agent.history(thread, who):
                out.print(f"[bold]you:[/bold] {safe(user_text)}\n[bold]bastion:[/bold] {safe(reply)}\n")
            return
        if message is not None:
            await _turn(agent, message, who, thread, as_json)
            return
        interactive = sys.stdin.isatty()
        if interactive:
            say("Type a message; /exit or Ctrl-D to leave.")
        while True:
            if interactive:
                err.print("[bold]you:[/bold] ", end="")
            line = sys.stdin.readline()
            if not line or line.strip() in EXIT_WORDS:
                break
            if line.strip():
                thread = await _turn(agent, line, who, thread, as_json)
        if thread is not None and not as_json:
            say(f"Resume with: bastion chat --thread {thread}")


async def _turn(agent: ChatAgent, message: str, who: Principal, thread: str | None, as_json: bool) -> str:
    done: ChatEvent | None = None
    async for event in agent.stream(message, who, thread_id=thread):
        if as_json:
            out.print_json(event.model_dump_json(exclude_none=True), indent=None)
        elif event.kind == "token":
            sys.stdout.write(plain(event.text))
            sys.stdout.flush()
        elif event.kind == "reasoning":
            err.print(f"[dim italic]{safe(event.text)}[/dim italic]", end="")
        elif event.kind == "node" and event.node == "route":
            say(f"· effort {event.effort} ({event.reason})")
        if event.kind == "done":
            done = event
    assert done is not None and done.thread_id is not None
    if not as_json:
        sys.stdout.write("\n")
        u = done.usage
        cached = "unknown" if u is None or u.cached_tokens is None else u.cached_tokens
        prompt = u.prompt_tokens if u else 0
        say(f"· thread {done.thread_id} · prompt {prompt} tokens, {cached} cached · {done.elapsed_ms:.0f} ms")
    return done.thread_id

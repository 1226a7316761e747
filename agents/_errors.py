"""The agents layer's exceptions. Errors the model causes (bad JSON, bogus citations) are not
exceptions: they become flags on the answer. These are for callers' mistakes.

    AgentError (under bastion_errors.BastionError)
    ├── QuestionError       an empty question or message; also an InputError
    ├── RepositoryError     a repository with no source files to read; also an InputError
    └── ThreadAccessError   a thread of another user, another agent or another repository
"""

from __future__ import annotations

from typing import Any

from bastion_errors import BastionError, InputError


class AgentError(BastionError):
    """Base class of every error raised by `agents`."""


class QuestionError(AgentError, InputError):
    """The question or message cannot be asked as sent."""


class RepositoryError(AgentError, InputError):
    """The coding assistant was pointed at a repository it cannot read."""


class ThreadAccessError(AgentError):
    """The thread cannot be continued by this caller or this agent: start a new one."""


async def thread_values(graph: Any, thread_id: str, user: str, agent: str) -> dict[str, Any]:
    """A thread's saved state, or {} for a new one (or without a checkpointer). Raises
    ThreadAccessError when another user owns it (its history may quote documents only they can read)
    or another agent wrote it (its turns have another shape: reading them would fail mid-answer)."""
    if graph.checkpointer is None:
        return {}
    values: dict[str, Any] = (await graph.aget_state({"configurable": {"thread_id": thread_id}})).values
    if values.get("owner") not in (None, user):
        raise ThreadAccessError(f"Thread {thread_id!r} belongs to another user; start a new thread.")
    if values.get("agent") not in (None, agent):
        raise ThreadAccessError(
            f"Thread {thread_id!r} is a {values['agent']} conversation, not a {agent} one; "
            "start a new thread."
        )
    return values

"""Bastion's agents, built in LangGraph on `serving` and `retrieval`."""

from agents._citations import Citation
from agents._errors import AgentError, ThreadAccessError
from agents._qa import REFUSAL, QAAgent, QAOptions, QAResult
from agents._router import RouteDecision, route_effort

__all__ = [
    "REFUSAL",
    "AgentError",
    "Citation",
    "QAAgent",
    "QAOptions",
    "QAResult",
    "RouteDecision",
    "ThreadAccessError",
    "route_effort",
]

"""Bastion's agents, built in LangGraph on `serving` and `retrieval`."""

from agents._citations import Citation
from agents._errors import AgentError, ThreadAccessError
from agents._qa import REFUSAL, QAAgent, QAOptions, QAResult
from agents._router import RouteDecision, route_effort

__all__ = [
    "AgentError",
    "Citation",
    "QAAgent",
    "QAOptions",
    "QAResult",
    "REFUSAL",
    "RouteDecision",
    "ThreadAccessError",
    "route_effort",
]

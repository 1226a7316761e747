"""Bastion's agents, built in LangGraph on `serving` and `retrieval`."""

from agents._citations import Citation
from agents._errors import AgentError, ThreadAccessError
from agents._learned_router import (
    LabelledStep,
    LearnedRouter,
    RouterModel,
    default_labels,
    read_labels,
    train,
)
from agents._qa import REFUSAL, QAAgent, QAOptions, QAResult
from agents._router import RouteDecision, Router, Step, StepRecord, route_effort, start_easy

__all__ = [
    "REFUSAL",
    "AgentError",
    "Citation",
    "LabelledStep",
    "LearnedRouter",
    "QAAgent",
    "QAOptions",
    "QAResult",
    "RouteDecision",
    "Router",
    "RouterModel",
    "Step",
    "StepRecord",
    "ThreadAccessError",
    "default_labels",
    "read_labels",
    "route_effort",
    "start_easy",
    "train",
]

"""Bastion's agents, built in LangGraph on `serving` and `retrieval`."""

from agents._chat import ChatAgent, ChatEvent, ChatOptions
from agents._citations import Citation
from agents._claims import answer_schema
from agents._code import CodeAgent, CodeCitation, CodeOptions, CodeResult, RetrieverFactory
from agents._errors import AgentError, QuestionError, RepositoryError, ThreadAccessError
from agents._forget import forget_sources
from agents._learned_router import (
    LabelledStep,
    LearnedRouter,
    RouterModel,
    default_labels,
    read_labels,
    train,
)
from agents._qa import QAAgent
from agents._qa_options import REFUSAL, QAOptions, QAResult
from agents._quotes import content_words
from agents._repo import RepoFile, scan
from agents._router import RouteDecision, Router, Step, StepRecord, route_effort, start_easy
from agents._search_assist import Assist, AssistedHits, AssistOptions, SearchAssist

__all__ = [
    "REFUSAL",
    "AgentError",
    "Assist",
    "AssistOptions",
    "AssistedHits",
    "ChatAgent",
    "ChatEvent",
    "ChatOptions",
    "Citation",
    "CodeAgent",
    "CodeCitation",
    "CodeOptions",
    "CodeResult",
    "LabelledStep",
    "LearnedRouter",
    "QAAgent",
    "QAOptions",
    "QAResult",
    "QuestionError",
    "RepoFile",
    "RepositoryError",
    "RetrieverFactory",
    "RouteDecision",
    "Router",
    "RouterModel",
    "SearchAssist",
    "Step",
    "StepRecord",
    "ThreadAccessError",
    "answer_schema",
    "content_words",
    "default_labels",
    "forget_sources",
    "read_labels",
    "route_effort",
    "scan",
    "start_easy",
    "train",
]

"""An LLM judge for what cannot be scored deterministically: is the answer supported by the passages it
cites (faithfulness), and does it agree with the reference answer (correctness)?

Only used with `--judge-url`: a strong model on an OpenAI-compatible server (SGLang with Mistral Small 4
in production). The verdict is constrained by a JSON schema, so a judge that rambles still yields a
verdict; one that returns something unparsable counts as no verdict rather than as a pass.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, ValidationError

from serving import ChatClient, ChatRequest, JsonSchema, Message

INSTRUCTIONS = """You grade answers given by a document assistant. You get a question, the assistant's \
answer, the passages the answer cites, and a reference answer written by the documents' authors.
- faithful: true only if every statement in the answer is supported by the cited passages.
- correct: true only if the answer agrees with the reference answer on what the question asks \
(it may be shorter; it must not contradict it).
Reply with JSON only."""

VERDICT_SCHEMA = JsonSchema(
    name="verdict",
    schema={
        "type": "object",
        "properties": {
            "reason": {"type": "string", "maxLength": 400},
            "faithful": {"type": "boolean"},
            "correct": {"type": "boolean"},
        },
        "required": ["reason", "faithful", "correct"],
        "additionalProperties": False,
    },
)


class Verdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    reason: str
    faithful: bool
    correct: bool


def verdict_request(question: str, answer: str, passages: list[str], reference: str) -> ChatRequest:
    cited = "\n\n".join(f"[{n}] {text}" for n, text in enumerate(passages, start=1)) or "(none)"
    prompt = (
        f"Question:\n{question}\n\nAnswer:\n{answer}\n\nCited passages:\n{cited}\n\n"
        f"Reference answer:\n{reference}"
    )
    return ChatRequest(
        messages=[Message(role="system", content=INSTRUCTIONS), Message(role="user", content=prompt)],
        response_format=VERDICT_SCHEMA,
        temperature=0.0,
        max_tokens=300,
        reasoning_effort="none",
    )


async def judge(
    client: ChatClient, question: str, answer: str, passages: list[str], reference: str
) -> Verdict | None:
    result = await client.complete(verdict_request(question, answer, passages, reference))
    try:
        return Verdict.model_validate(json.loads(result.content))
    except (json.JSONDecodeError, ValidationError):
        return None

"""`bastion router train`: fit the learned reasoning-effort router."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from bastion.cli._common import JSON_OPTION, out, say
from bastion.cli._common import settings as get_settings
from bastion.wiring import make_embedder, router_path

app = typer.Typer(help="The reasoning-effort router.", no_args_is_help=True)


@app.command("train")
def train_command(
    ctx: typer.Context,
    data: Path | None = typer.Option(
        None, "--data", help="Labelled JSONL (default: the set shipped with Bastion)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Train the learned router on MiniLM embeddings; BASTION_AGENT_ROUTER=learned then uses it."""
    s = get_settings(ctx)
    from agents import LearnedRouter, default_labels, read_labels, train

    steps = read_labels(data or default_labels())
    say(f"Training on {len(steps)} labelled steps…")
    embedder = make_embedder(s)
    model = train(steps, embedder)
    target = router_path(s)
    LearnedRouter(model, embedder).save(target)
    if as_json:
        out.print_json(
            json.dumps({"path": str(target), **json.loads(model.model_dump_json(exclude={"weights"}))})
        )
        return
    accuracy = "n/a" if model.heldout_accuracy is None else f"{model.heldout_accuracy:.0%}"
    out.print(
        f"Router trained on {model.examples} examples (held-out accuracy {accuracy}); saved to {target}."
    )
    say(
        'Use it with BASTION_AGENT_ROUTER=learned (or router = "learned" under \\[agent] in the config file).'
    )

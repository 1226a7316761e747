"""`bastion api`: serve the HTTP API (OpenAI-compatible chat, search, health) with uvicorn."""

from __future__ import annotations

import typer

from bastion.cli._common import say
from bastion.cli._common import settings as get_settings


def api(
    ctx: typer.Context,
    host: str | None = typer.Option(
        None, "--host", help="Interface to listen on (default: BASTION_API_HOST)."
    ),
    port: int | None = typer.Option(None, "--port", help="Port (default: BASTION_API_PORT, 8080)."),
) -> None:
    """Serve Bastion over HTTP. Create keys first: `bastion keys create --user alice --groups hr`."""
    import uvicorn

    from bastion.api import create_app

    s = get_settings(ctx)
    host, port = host or s.api.host, port or s.api.port
    docs = "; docs at /docs" if s.api.docs else "; /docs is off (BASTION_API_DOCS=true turns it on)"
    say(f"Bastion API on http://{host}:{port} (OpenAPI schema at /openapi.json{docs})")
    uvicorn.run(create_app(s), host=host, port=port, log_level="info", access_log=False)

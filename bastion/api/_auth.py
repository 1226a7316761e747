"""Who is asking: the API key's record, from the `Authorization: Bearer` header and nothing else."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

from bastion.api._services import Services
from bastion.keys import KeyInfo


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def caller(request: Request, authorization: Annotated[str | None, Header()] = None) -> KeyInfo:
    """The API key's record. Every route but health checks depends on this."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(
            401, "Missing API key: send `Authorization: Bearer <key>`.", {"WWW-Authenticate": "Bearer"}
        )
    info = await asyncio.to_thread(services_of(request).keys.authenticate, token)
    if info is None:
        raise HTTPException(401, "Invalid or revoked API key.", {"WWW-Authenticate": "Bearer"})
    return info


Caller = Annotated[KeyInfo, Depends(caller)]


async def administrator(who: Caller) -> KeyInfo:
    if who.role != "admin":
        raise HTTPException(
            403, "Only administrator keys may manage documents (bastion keys create --admin)."
        )
    return who


Admin = Annotated[KeyInfo, Depends(administrator)]

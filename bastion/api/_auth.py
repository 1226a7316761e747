"""Who is asking: the API key's record, from the `Authorization: Bearer` header and nothing else."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from bastion.api._gate import CALLER
from bastion.api._services import Services
from bastion.keys import KeyInfo


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


_bearer = HTTPBearer(auto_error=False, description="an API key from `bastion keys create`")


async def caller(
    request: Request, _declared: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> KeyInfo:
    """The API key's record, as the gate found it from the headers before the body was read. Every
    route but the public ones depends on this; `_bearer` only declares the scheme in the OpenAPI
    schema, since the gate has already refused requests without a valid key."""
    info = request.scope.get("state", {}).get(CALLER)
    if not isinstance(info, KeyInfo):  # a route the gate treats as public must not depend on a caller
        raise HTTPException(
            401, "Missing API key: send `Authorization: Bearer <key>`.", {"WWW-Authenticate": "Bearer"}
        )
    return info


Caller = Annotated[KeyInfo, Depends(caller)]


async def administrator(who: Caller) -> KeyInfo:
    if who.role != "admin":
        raise HTTPException(
            403, "Only administrator keys may manage documents (bastion keys create --admin)."
        )
    return who


Admin = Annotated[KeyInfo, Depends(administrator)]

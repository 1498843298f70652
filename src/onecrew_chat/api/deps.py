"""Request dependencies as Annotated aliases: runtime, unit-of-work session, authenticated caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from onecrew_chat.auth import check_service_token
from onecrew_chat.db import unit_of_work
from onecrew_chat.runtime import Runtime

# Every dependency here is `async def`: FastAPI runs a plain `def` dependency in the thread pool, a hop that costs
# more than the work (reading app.state, verifying a JWT). tests/api/test_request_edge.py checks none is sync.


async def get_runtime(request: Request) -> Runtime:
    """The process-wide Runtime built by create_app."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    """One unit of work per request: committed when the route returns, rolled back when it raises."""
    async with unit_of_work(runtime.sessionmaker) as session:
        yield session


# scope="function" commits before the response is sent, so a 200 always means the data is stored.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


# Documentation only (auto_error=False): the verifiers below read the raw header, so their 401 words are the app's.
_USER_JWT = HTTPBearer(
    scheme_name="OneCrewJWT",
    bearerFormat="JWT",
    description="The OneCrew backend's JWT (`sub` = the user's uuid); 401 `Invalid or expired token` otherwise.",
    auto_error=False,
)
_SERVICE_TOKEN = HTTPBearer(
    scheme_name="ServiceToken",
    description="ONECREW_SERVICE_TOKEN, held only by the main OneCrew backend; 401 `Invalid service token` otherwise.",
    auto_error=False,
)
# The raw header, hidden from the document (the security schemes above describe it).
RawAuthorization = Annotated[str | None, Header(alias="authorization", include_in_schema=False)]


async def current_user_id(
    runtime: RuntimeDep,
    _scheme: Annotated[HTTPAuthorizationCredentials | None, Security(_USER_JWT)],
    authorization: RawAuthorization = None,
) -> str:
    """The OneCrew user uuid from the bearer JWT (401 `Invalid or expired token` otherwise)."""
    return runtime.verifier.user_id(authorization)


CurrentUserId = Annotated[str, Depends(current_user_id)]


async def require_service(
    runtime: RuntimeDep,
    _scheme: Annotated[HTTPAuthorizationCredentials | None, Security(_SERVICE_TOKEN)],
    authorization: RawAuthorization = None,
) -> None:
    """Only the main OneCrew backend (ONECREW_SERVICE_TOKEN) may call /api/internal/*."""
    check_service_token(runtime.settings, authorization)


ServiceCaller = Annotated[None, Depends(require_service)]

"""Request dependencies as Annotated aliases: runtime, unit-of-work session, authenticated caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession

from onecrew_chat.auth import check_service_token
from onecrew_chat.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    """The process-wide Runtime built by create_app."""
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    """One unit of work per request: committed when the route returns, rolled back when it raises."""
    async with runtime.sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


# scope="function" commits before the response is sent, so a 200 always means the data is stored.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


def current_user_id(runtime: RuntimeDep, authorization: Annotated[str | None, Header()] = None) -> str:
    """The OneCrew user uuid from the bearer JWT (401 `Invalid or expired token` otherwise)."""
    return runtime.verifier.user_id(authorization)


CurrentUserId = Annotated[str, Depends(current_user_id)]


def require_service(runtime: RuntimeDep, authorization: Annotated[str | None, Header()] = None) -> None:
    """Only the main OneCrew backend (ONECREW_SERVICE_TOKEN) may call /api/internal/*."""
    check_service_token(runtime.settings, authorization)


ServiceCaller = Annotated[None, Depends(require_service)]

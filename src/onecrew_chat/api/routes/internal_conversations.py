"""The main backend's server-side duties: ensure a conversation on behalf of an identity, send a server message."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from onecrew_chat.api.deps import RuntimeDep, ServiceCaller
from onecrew_chat.api.idempotent import keep, replay, run_keyed
from onecrew_chat.api.presenters import conversation_json, ok, server_message_json
from onecrew_chat.api.schemas import ConversationEnvelope, Envelope
from onecrew_chat.conversations import idempotency, on_behalf
from onecrew_chat.conversations.create import Created
from onecrew_chat.conversations.idempotency import Answer
from onecrew_chat.conversations.request import CreateConversationRequest
from onecrew_chat.errors import Unprocessable
from onecrew_chat.identity import Identity, Kind, normalize_uuid

router = APIRouter(prefix="/api/internal", tags=["internal"])

# Stream's message ids: at most 255 characters, no ',' or '%'; kept to URL- and log-safe characters here.
MESSAGE_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,255}$")


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain the NUL character (\\u0000)")
    return value


class Acting(BaseModel):
    """Whom the service acts for: a user, or a company."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["user", "company"]
    id: str

    def identity(self, what: str) -> Identity:
        try:
            return Identity(Kind(self.type), normalize_uuid(self.id))
        except ValueError:
            raise Unprocessable(f"{what}.id must be a uuid, got {self.id[:64]!r}", code="invalid_id") from None


class EnsureConversationIn(CreateConversationRequest):
    """The app's create body plus `acting`; `company_id` is taken from `acting` and ignored here."""

    acting: Acting = Field(description="The identity the conversation is ensured for: {type: user|company, id: uuid}")


class ServerMessageIn(BaseModel):
    """A message the service sends as one of the participants."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(
        description="The Stream message id, chosen by the caller; sending the same id again changes nothing"
    )
    sender: Acting = Field(description="The participant the message is sent as: {type: user|company, id: uuid}")
    text: Annotated[str, StringConstraints(max_length=5000), AfterValidator(_no_nul)]
    custom_data: dict[str, Any] = Field(
        default_factory=dict,
        description="Stored on the message as `custom_data` (course registration: course_id, course_title, user_id, "
        "user_name, registered_at)",
    )


class ServerMessageOut(BaseModel):
    """What became of a server-side message."""

    model_config = ConfigDict(extra="forbid")

    id: str
    conversation_id: str
    sender: str = Field(description="The sender's Stream user id")
    status: Literal["sent", "queued"]


class ServerMessageEnvelope(Envelope[ServerMessageOut]):
    """`{success: true, data: {id, conversation_id, sender, status}}`."""


@router.post(
    "/conversations",
    summary="Ensure a conversation on behalf of a user or company (idempotent)",
    response_model=ConversationEnvelope,
)
async def ensure_conversation(
    _caller: ServiceCaller,
    runtime: RuntimeDep,
    body: EnsureConversationIn,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    """The app's create as `acting`: the pair's one conversation (an adopted old channel included), every member in it."""
    acting = body.acting.identity("acting")
    request = CreateConversationRequest.model_validate(body.model_dump(exclude={"acting"}))

    if idempotency_key is None:
        created = await on_behalf.ensure_conversation(runtime, acting, request)
        return JSONResponse(ok(conversation_json(created.conversation, created.directory)))

    async def work(claim: idempotency.Claim) -> Created:
        return await on_behalf.ensure_conversation(runtime, acting, request, bind=claim.bind, resume_id=claim.resume_id)

    ran = await run_keyed(
        runtime,
        caller=f"service:{acting.stream_id}",
        key=idempotency.parse_key(idempotency_key),
        print_=idempotency.fingerprint(request.fingerprint_source()),
        work=work,
    )
    if isinstance(ran, Answer):
        return replay(ran)
    # Kept whatever `chat.status` says: this route answers a conversation still provisioning with 200 too.
    return await keep(runtime, ran.claim, ok(conversation_json(ran.result.conversation, ran.result.directory)))


@router.post(
    "/conversations/{conversation_id}/messages",
    summary="Send a server-side message as a participant (idempotent by id)",
    response_model=ServerMessageEnvelope,
)
async def post_server_message(
    _caller: ServiceCaller, runtime: RuntimeDep, conversation_id: str, body: ServerMessageIn
) -> dict[str, Any]:
    """`status: sent` when Stream has the message, `queued` when the outbox worker delivers it (Stream down or busy)."""
    if not MESSAGE_ID.match(body.id):
        raise Unprocessable(
            "id must be 1 to 255 letters, digits or . _ : @ - (a uuid is a good choice)", code="invalid_message_id"
        )
    custom = {"custom_data": body.custom_data} if body.custom_data else {}
    sent = await on_behalf.send_message(
        runtime, conversation_id, body.sender.identity("sender"), body.id, body.text, custom
    )
    return ok(server_message_json(sent))

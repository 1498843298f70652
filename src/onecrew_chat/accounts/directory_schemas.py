"""The directory's row shapes and their validation rules, shared by every way rows come in.

`PUT /api/internal/users/{id}` (and companies, members) validates its body with `UserIn`, `CompanyIn`,
`MemberIn`; the bulk `PUT /api/internal/users` and `onecrew-chat import users FILE` validate each row with
the `...Record` models, which are the same bodies plus their ids. One set of rules, whatever the door.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, StringConstraints, ValidationError

from onecrew_chat.identity import normalize_uuid


def _no_nul(value: str) -> str:
    # PostgreSQL cannot store the NUL character in text; without this it would be a 500 there (and kept on SQLite).
    if "\x00" in value:
        raise ValueError("must not contain the NUL character (\\u0000)")
    return value


def _limits(max_length: int, *, min_length: int = 0) -> StringConstraints:
    """Stripped, at most `max_length` characters (with `_NO_NUL`: a string every database can store)."""
    return StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length)


_NO_NUL = AfterValidator(_no_nul)


def _uuid(value: Any) -> str:
    try:
        if not isinstance(value, str):
            raise ValueError
        return normalize_uuid(value)
    except ValueError:
        raise ValueError(f"must be a uuid, got {str(value)[:64]!r}") from None


Name = Annotated[str, _limits(255, min_length=1), _NO_NUL]
Url = Annotated[str, _limits(2048), _NO_NUL]
Category = Annotated[str, _limits(32), _NO_NUL]
Subcategory = Annotated[str, _limits(64), _NO_NUL]
Uuid = Annotated[str, BeforeValidator(_uuid)]


class DirectoryBody(BaseModel):
    # The main backend may send more fields than we keep; they are ignored rather than refused.
    model_config = ConfigDict(extra="ignore")

    def values(self) -> dict[str, Any]:
        """The stored fields (ids excluded); empty optional text is stored as absent."""
        return {field: getattr(self, field) or None for field in type(self).stored_fields()}

    @classmethod
    def stored_fields(cls) -> tuple[str, ...]:
        """The body's own fields, in declaration order, without the ids a record adds."""
        return tuple(name for name in cls.model_fields if name not in ("id", "company_id", "user_id"))


class UserIn(DirectoryBody):
    """PUT /api/internal/users/{id}."""

    name: Name
    image_url: Url | None = None
    category: Category | None = None


class CompanyIn(DirectoryBody):
    """PUT /api/internal/companies/{id}."""

    name: Name
    logo_url: Url | None = None
    subcategory: Subcategory | None = None


class MemberIn(DirectoryBody):
    """PUT /api/internal/companies/{id}/members/{user_id}."""

    role: Literal["owner", "admin", "manager", "member"]
    invitation_status: Literal["pending", "accepted", "rejected"]

    def values(self) -> dict[str, Any]:
        """Role and invitation status, as stored."""
        return {"role": self.role, "invitation_status": self.invitation_status}


class UserRecord(UserIn):
    """One user of a bulk PUT or an import file: `id, name, image_url, category`."""

    id: Uuid


class CompanyRecord(CompanyIn):
    """One company of a bulk PUT or an import file: `id, name, logo_url, subcategory`."""

    id: Uuid


class MemberRecord(MemberIn):
    """One membership of a bulk PUT or an import file: `company_id, user_id, role, invitation_status`."""

    company_id: Uuid
    user_id: Uuid


def describe(exc: ValidationError) -> str:
    """Pydantic's errors for one row as one readable sentence: `name: is required; role: ...`."""
    parts = []
    for err in exc.errors()[:5]:
        path = ".".join(str(p) for p in err.get("loc", ()))
        message = str(err.get("msg", "is invalid")).removeprefix("Value error, ")
        if err.get("type") == "missing":
            message = "is required"
        elif err.get("type") == "model_type":
            message = "must be a JSON object"
        parts.append(f"{path}: {message}" if path else message)
    return "; ".join(parts) or "is invalid"

"""Request and response bodies, and the shapes of ids, amounts and emails as they travel.

Amounts travel as decimal strings ("12.50"), never as JSON numbers, which would pass through
binary floating point. Request bodies refuse unknown fields: a misspelt field is an error, not
silently lost.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

from example_app.money import DECIMAL_PLACES

Amount = Annotated[
    str,
    Field(
        pattern=rf"^-?\d{{1,15}}(\.\d{{1,{DECIMAL_PLACES}}})?$",
        examples=["12.50"],
        description=(
            "A decimal amount as a string, at most two decimal places. A JSON number is refused: "
            "it would have passed through binary floating point."
        ),
    ),
]
ID_MAX_LENGTH = 200
ID_PATTERN = r"^[^\s\x00-\x1f\x7f]+$"
"""Ids, in bodies and in paths alike: 1 to 200 characters, no whitespace or control characters."""

Identifier = Annotated[
    str,
    Field(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN, examples=["acc-1"]),
]
AccountIdInPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=ID_MAX_LENGTH,
        pattern=ID_PATTERN,
        examples=["acc-1"],
        description="the account's id: 1 to 200 characters, no whitespace",
    ),
]
HoldIdInPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=ID_MAX_LENGTH,
        pattern=ID_PATTERN,
        examples=["hold-7"],
        description="the hold's id, `hold-{version}` (the version a held withdrawal answered)",
    ),
]
UserIdInPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=ID_MAX_LENGTH,
        pattern=ID_PATTERN,
        examples=["user-1"],
        description="the user's id: 1 to 200 characters, no whitespace",
    ),
]
Email = Annotated[str, Field(min_length=3, max_length=320, examples=["ann@example.com"])]


class _Body(BaseModel):
    """Request bodies refuse unknown fields: a misspelt field is an error, not silently lost."""

    model_config = ConfigDict(extra="forbid")


class OpenAccountBody(_Body):
    account_id: Identifier
    owner: Annotated[str, Field(min_length=1, max_length=200, examples=["Ann"])]
    owner_id: Identifier | None = Field(
        default=None,
        description=(
            "the user who holds the account: the owner's name is then that user's personal "
            "data, erased from the account when the user is forgotten"
        ),
    )


class AmountBody(_Body):
    amount: Amount


class TransferBody(_Body):
    source_account_id: Identifier
    target_account_id: Identifier
    amount: Amount


class RegisterUserBody(_Body):
    user_id: Annotated[
        str,
        Field(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN, examples=["user-1"]),
    ]
    name: Annotated[str, Field(min_length=1, max_length=200, examples=["Ann"])]
    email: Email


class EmailBody(_Body):
    email: Email


class CommandResponse(BaseModel):
    """What a command did: the new version of each stream it changed."""

    command_id: str = Field(description="the command's id: the Idempotency-Key when one was sent")
    change_set_id: str | None = Field(description="the id of the transaction that committed it")
    versions: dict[str, int] = Field(
        description="each changed stream (`{type}#{id}`) and its new version",
        examples=[{"Account#acc-1": 2}],
    )
    duplicate: bool = Field(
        description="true when the command id had been handled before: the first result stands"
    )


class AccountView(BaseModel):
    """A row of the account balances read model."""

    account_id: str
    owner: str = Field(description="the owner's name; a forgotten user's reads `(erased)`")
    owner_id: str | None = Field(default=None, description="the user who holds the account")
    balance: str = Field(description="a decimal string", examples=["17.75"])
    closed: bool
    version: int = Field(description="the account's version this row reflects")


class StatementLineView(BaseModel):
    """A money movement of an account: deposits are positive, withdrawals negative."""

    version: int
    kind: str = Field(examples=["deposit", "withdrawal"])
    amount: str = Field(description="a decimal string", examples=["-12.25"])
    occurred_at: str = Field(description="ISO 8601 with offset")


class UserView(BaseModel):
    """A row of the user directory; a forgotten user's name and email read `(erased)`."""

    user_id: str
    name: str
    email: str
    forgotten: bool


class HealthView(BaseModel):
    """The server is up. Needs no token."""

    status: str = Field(examples=["ok"])


class Problem(BaseModel):
    """An RFC 9457 problem document, served as ``application/problem+json``.

    Some refusals add their facts as extension members (``insufficient funds``: ``account_id``,
    ``balance``, ``requested``), so that a client acts on them without parsing ``detail``.
    """

    model_config = ConfigDict(extra="allow")

    type: str = Field(default="about:blank")
    title: str
    status: int
    detail: str


MAX_BODY_BYTES = 64 * 1024
"""The largest request body accepted; a larger one is refused with 413 before it is read whole."""

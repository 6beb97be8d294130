"""Users: commands (register, change email, forget) and the user directory."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from example_app.api.commands import Commands, IdempotencyKey, command_endpoint, user_stream
from example_app.api.problems import problem
from example_app.api.reads import Reads, read_endpoint
from example_app.api.schemas import (
    EmailBody,
    RegisterUserBody,
    UserIdInPath,
    UserView,
)
from example_app.users import ChangeEmail, ForgetUser, RegisterUser

router = APIRouter()
"""Commands on users (tag ``users``) and the user directory (tag ``read models``)."""


@command_endpoint(router, "/users", tag="users", summary="Register a user", status_code=201)
async def register(
    body: RegisterUserBody, commands: Commands, key: IdempotencyKey = None
) -> JSONResponse:
    """Register a user; the email must not belong to another user (409)."""
    command = RegisterUser(user_id=body.user_id, name=body.name, email=body.email)
    return await commands.run(command, key, [user_stream(body.user_id)], 201)


@command_endpoint(router, "/users/{user_id}/email", tag="users", summary="Change a user's email")
async def change_email(
    user_id: UserIdInPath, body: EmailBody, commands: Commands, key: IdempotencyKey = None
) -> JSONResponse:
    """Change a user's email; the claim on the address moves in the same transaction."""
    command = ChangeEmail(user_id=user_id, email=body.email)
    return await commands.run(command, key, [user_stream(user_id)])


@command_endpoint(router, "/users/{user_id}/forget", tag="users", summary="Forget a user")
async def forget(
    user_id: UserIdInPath, commands: Commands, key: IdempotencyKey = None
) -> JSONResponse:
    """Forget a user: their key is deleted, so their name and email are unreadable for good."""
    return await commands.run(ForgetUser(user_id=user_id), key, [user_stream(user_id)])


@read_endpoint(router, "/users/{user_id}", response_model=UserView, summary="A user")
async def get_user(user_id: UserIdInPath, reads: Reads) -> Any:
    """The user directory entry; a forgotten user's name and email read `(erased)`."""
    models = reads.models
    row: Any = await reads.read(
        reads.users_table, lambda: models.users.get(user_id, consistent_read=True)
    )
    if row is None:
        return problem(404, "not found", f"user {user_id!r} is unknown")
    return UserView(
        user_id=row.user_id, name=row.name, email=row.email, forgotten=bool(row.forgotten)
    )

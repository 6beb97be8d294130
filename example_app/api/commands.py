"""Running a command for an endpoint: the idempotency key bound to it, the read models brought
up to date before the response, the result as JSON.

Both jobs are the framework's (``framework.http``); this module only says how this app uses them:
every POST accepts an ``Idempotency-Key`` header, and, when the app projects synchronously, the
streams a command changed are projected before it answers (``ReadYourWrites``, with a background
catch-up as the guarantee).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from fastapi.types import DecoratedCallable

from example_app.api.problems import problem_responses
from example_app.api.schemas import CommandResponse
from example_app.api.work import RequestWork
from framework import Command
from framework.application import CommandResult
from framework.http import (
    IDEMPOTENCY_KEY_HEADER,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    ReadYourWrites,
    bind_idempotency_key,
    bind_request,
    check_repeat,
)

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=IDEMPOTENCY_KEY_HEADER,
        min_length=1,
        max_length=MAX_IDEMPOTENCY_KEY_LENGTH,
        description=(
            "Becomes the command's id. Retrying the POST with the same key returns the first "
            "response (with `duplicate: true`) and writes nothing; the same key with another "
            "request is refused (409)."
        ),
    ),
]


COMMAND_ERRORS = problem_responses(404, 409, 413, 422)
"""What a command can answer besides success: unknown (404), conflict or reused key (409), too
large (413), refused by the domain or malformed (422)."""


def command_endpoint(
    router: APIRouter, path: str, *, tag: str, summary: str, status_code: int = 200
) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """Declare a POST of ``router`` that runs a command: its response and its problems."""
    return router.post(
        path,
        status_code=status_code,
        response_model=CommandResponse,
        responses=COMMAND_ERRORS,
        tags=[tag],
        summary=summary,
    )


def account_stream(account_id: str) -> str:
    return f"Account#{account_id}"


def user_stream(user_id: str) -> str:
    return f"User#{user_id}"


class CommandRunner:
    """Handles an endpoint's command and answers with its result.

    ``work`` runs the command (awaited through the async application) and the projection
    before the response (see ``example_app.api.work``); ``read_models`` is ``None`` when the
    app does not project in the request.
    """

    def __init__(self, work: RequestWork, read_models: ReadYourWrites | None) -> None:
        self.work = work
        self.read_models = read_models

    async def run(
        self, command: Command, key: str | None, streams: Sequence[str], status: int = 200
    ) -> JSONResponse:
        """Handle ``command`` under the id ``key`` derives, refresh the read models, answer.

        ``streams`` are those the command targets: a repeat whose first result changed none of
        them means the key was first used for another request (``CommandIdReused``, 409).
        """
        command = bind_request(bind_idempotency_key(command, key))  # ids of the request
        result = check_repeat(await self.work.handle(command), streams)
        if self.read_models is not None:
            await self.work.call(functools.partial(self.read_models.after, result))
        return JSONResponse(result_body(result), status_code=status)


def result_body(result: CommandResult) -> dict[str, Any]:
    return {
        "command_id": result.command_id,
        "change_set_id": result.change_set_id,
        "versions": dict(result.versions),
        "duplicate": result.duplicate,
    }


def _runner(request: Request) -> CommandRunner:
    runner: CommandRunner = request.app.state.commands
    return runner


Commands = Annotated[CommandRunner, Depends(_runner)]
"""An endpoint parameter: the app's ``CommandRunner``."""

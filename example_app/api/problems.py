"""Errors as RFC 9457 problem documents (``application/problem+json``), chosen by type.

The first matching class of ``STATUS_OF`` decides; subclasses come before their bases. A business
rule's refusal (a ``DomainError``) is 422: the request was well formed and understood, but its
content cannot be processed in the resource's current state. 409 is kept for conflicts with other
writers or taken identities, where the same request may well succeed against other state. A
refusal whose facts a client may act on (``InsufficientFunds``) gets its own title and carries
them as extension members: the mapping reads the error's attributes, never its message.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pynamodb.exceptions import PynamoDBException
from starlette.exceptions import HTTPException as StarletteHTTPException

from example_app.api.schemas import MAX_BODY_BYTES, Problem
from example_app.bank import InsufficientFunds
from framework import ConcurrencyError, DomainError
from framework.errors import (
    AggregateAlreadyExists,
    AggregateNotFound,
    ConfigurationError,
    ConflictError,
    DuplicateCommand,
    FrameworkError,
    InvalidCommand,
    StoreUnavailable,
    UniqueConstraintViolated,
)

log = structlog.get_logger(__name__)

RETRY_AFTER_SECONDS = 1
"""What a 503 tells the client to wait: DynamoDB's own hiccups last about that long."""

STATUS_OF: list[tuple[type[Exception], int, str]] = [
    (InvalidCommand, 422, "invalid command"),
    (InsufficientFunds, 422, "insufficient funds"),
    (DomainError, 422, "refused by a business rule"),
    (AggregateNotFound, 404, "not found"),
    (AggregateAlreadyExists, 409, "already exists"),
    (UniqueConstraintViolated, 409, "value already taken"),
    (ConcurrencyError, 409, "conflict"),
    (DuplicateCommand, 409, "duplicate command"),
    (ConflictError, 409, "conflict"),
    (ConfigurationError, 500, "server misconfigured"),
    (StoreUnavailable, 503, "store unavailable"),
]

MEANING = {
    401: "no valid `Authorization: Bearer` token (when the server has one configured)",
    404: "the account or user does not exist",
    409: "a conflict: the id or email is taken, an Idempotency-Key was reused for another "
    "request, or a concurrency race was lost",
    413: f"the request body is over {MAX_BODY_BYTES} bytes",
    422: "the request does not validate, or a business rule refused the command",
    500: "the server is misconfigured (the detail says how; retrying will not help), or a bug",
    503: "DynamoDB did not answer; retry after `Retry-After` seconds (same Idempotency-Key)",
}


def problem(
    status: int,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **facts: Any,
) -> JSONResponse:
    """An RFC 9457 problem document; ``facts`` become extension members."""
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail, **facts},
        status_code=status,
        media_type="application/problem+json",
        headers=headers,
    )


def unavailable(detail: str) -> JSONResponse:
    return problem(
        503, "store unavailable", detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
    )


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem documents an endpoint may answer with (500 and 503
    always: any endpoint may meet a misconfiguration or an unreachable DynamoDB)."""
    schema = Problem.model_json_schema()
    return {
        status: {
            "description": MEANING[status],
            "content": {"application/problem+json": {"schema": schema}},
        }
        for status in (*statuses, 500, 503)
    }


def for_error(error: FrameworkError) -> JSONResponse:
    """The problem document for one of the framework's (or the domain's) errors."""
    if isinstance(error, InsufficientFunds):
        return problem(
            422,
            "insufficient funds",
            str(error),
            account_id=error.account_id,
            balance=str(error.balance),
            requested=str(error.requested),
        )
    if isinstance(error, UniqueConstraintViolated):  # the claimed value is a hash
        return problem(409, "value already taken", f"that {error.scope} belongs to someone else")
    if isinstance(error, StoreUnavailable):
        return unavailable(str(error))
    if isinstance(error, ConfigurationError):
        # Not 503: a client would retry a misconfiguration forever. The operator must act.
        log.error("http_api.misconfigured", error_type=type(error).__name__, error=str(error))
        return problem(500, "server misconfigured", str(error))
    for error_type, status, title in STATUS_OF:
        if isinstance(error, error_type):
            return problem(status, title, str(error))
    log.error("http_api.unexpected_error", error_type=type(error).__name__, error=str(error))
    return problem(500, "internal error", type(error).__name__)


def install(api: FastAPI) -> None:
    """Answer every error of ``api`` with a problem document."""

    @api.exception_handler(RequestValidationError)
    def _validation(request: Request, error: RequestValidationError) -> JSONResponse:
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}"
            for e in error.errors()
        )
        return problem(422, "invalid request", details)

    @api.exception_handler(StarletteHTTPException)
    def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        # Unknown paths, wrong methods: problem documents too, like every other error.
        return problem(
            error.status_code,
            str(error.detail),
            str(error.detail),
            dict(error.headers) if error.headers else None,
        )

    @api.exception_handler(FrameworkError)
    def _framework_error(request: Request, error: FrameworkError) -> JSONResponse:
        return for_error(error)

    @api.exception_handler(PynamoDBException)
    def _read_model_error(request: Request, error: PynamoDBException) -> JSONResponse:
        # Read-model errors are translated in ``reads``; one that escapes it is a bug.
        log.error("http_api.read_model_error", code=error.cause_response_code, error=str(error))
        return problem(500, "internal error", f"read model: {type(error).__name__}")

"""``python -m example_app serve``: the example app over HTTP (FastAPI).

Commands are POSTs; read models are GETs. Amounts travel as decimal strings ("12.50"), never as
JSON numbers, which would pass through binary floating point. An ``Idempotency-Key`` header
becomes the command's id, so a retried POST gets the first response back and writes nothing.
Errors are RFC 9457 problem documents (``application/problem+json``).

After each command the read models of the streams it changed are brought up to date before the
response (``project_synchronously``), so that a client can read its own writes. That suits a demo;
a production deployment runs the projectors from the stream (poller or Lambda) and lets reads
trail writes by a moment.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Annotated, Any

from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from pynamodb.exceptions import DoesNotExist
from starlette.exceptions import HTTPException as StarletteHTTPException

from example_app.bank import (
    CloseAccount,
    DepositMoney,
    OpenAccount,
    TransferMoney,
    WithdrawMoney,
)
from example_app.read_models import all_projectors, create_read_model_tables, models_for
from example_app.users import ChangeEmail, ForgetUser, RegisterUser
from example_app.wiring import build_application
from framework import (
    AggregateAlreadyExists,
    AggregateNotFound,
    Command,
    CommandResult,
    ConcurrencyError,
    DomainError,
    DuplicateCommand,
    DynamoDBEventStore,
    DynamoDBPositionStore,
    FrameworkError,
    InvalidCommand,
    StoreUnavailable,
    UniqueConstraintViolated,
)
from framework.projections import ProjectionEngine
from framework.store.items import split_stream

Money = Annotated[
    str,
    Field(
        pattern=r"^-?\d{1,15}(\.\d{1,2})?$",
        examples=["12.50"],
        description="a decimal amount as a string, at most two decimal places",
    ),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="retrying a POST with the same key returns the first response",
    ),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OpenAccountBody(_Body):
    account_id: str = Field(min_length=1, max_length=200)
    owner: str = Field(min_length=1, max_length=200)


class AmountBody(_Body):
    amount: Money


class TransferBody(_Body):
    source_account_id: str = Field(min_length=1, max_length=200)
    target_account_id: str = Field(min_length=1, max_length=200)
    amount: Money


class RegisterUserBody(_Body):
    user_id: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=320)


class EmailBody(_Body):
    email: str = Field(min_length=3, max_length=320)


class CommandResponse(BaseModel):
    """What a command did: the new version of each stream it changed."""

    command_id: str
    change_set_id: str | None
    versions: dict[str, int]
    duplicate: bool


class AccountView(BaseModel):
    account_id: str
    owner: str
    balance: str
    closed: bool
    version: int


class StatementLineView(BaseModel):
    version: int
    kind: str
    amount: str
    occurred_at: str


class UserView(BaseModel):
    user_id: str
    name: str
    email: str
    forgotten: bool


_STATUS_OF: list[tuple[type[Exception], int, str]] = [
    (InvalidCommand, 422, "invalid command"),
    (DomainError, 422, "refused by a business rule"),
    (AggregateNotFound, 404, "not found"),
    (AggregateAlreadyExists, 409, "already exists"),
    (UniqueConstraintViolated, 409, "value already taken"),
    (ConcurrencyError, 409, "conflict"),
    (DuplicateCommand, 409, "duplicate command"),
    (StoreUnavailable, 503, "store unavailable"),
]


def problem(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """An RFC 9457 problem document."""
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status_code=status,
        media_type="application/problem+json",
        headers=headers,
    )


def create_app(store: DynamoDBEventStore, *, project_synchronously: bool = True) -> FastAPI:
    """The HTTP API over the example application on ``store`` (tables must exist)."""
    application = build_application(store)
    models = models_for(store)
    positions = DynamoDBPositionStore(store)
    engines = [ProjectionEngine(p, store, positions) for p in all_projectors(store)]
    # Endpoints are plain functions run in FastAPI's thread pool. The embedded moto backend is
    # not thread-safe (it copies tables inside each transaction), so with it every request runs
    # alone; on DynamoDB, requests run concurrently.
    serialise = store.endpoint_url is None and not os.environ.get("AWS_REGION")
    lock: contextlib.AbstractContextManager[Any] = (
        threading.Lock() if serialise else contextlib.nullcontext()
    )

    api = FastAPI(
        title="Example bank",
        version="1.0",
        description="Accounts, transfers and users on an event-sourced DynamoDB store.",
    )

    def run(command: Command, status: int = 200) -> JSONResponse:
        with lock:
            result = application.handle(command)
            if project_synchronously:
                for stream in result.versions:
                    aggregate_type, aggregate_id = split_stream(stream)
                    for engine in engines:
                        engine.catch_up_stream(aggregate_type, aggregate_id)
        return JSONResponse(_result(result), status_code=status)

    def with_key(key: str | None) -> dict[str, str]:
        return {"command_id": key} if key else {}

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
        return problem(error.status_code, str(error.detail), str(error.detail), error.headers)

    @api.exception_handler(FrameworkError)
    def _framework_error(request: Request, error: FrameworkError) -> JSONResponse:
        if isinstance(error, UniqueConstraintViolated):  # the claimed value is a hash
            return problem(
                409, "value already taken", f"that {error.scope} belongs to someone else"
            )
        for error_type, status, title in _STATUS_OF:
            if isinstance(error, error_type):
                headers = {"Retry-After": "1"} if status == 503 else None
                return problem(status, title, str(error), headers)
        return problem(500, "internal error", type(error).__name__)

    @api.post("/accounts", status_code=201, response_model=CommandResponse, tags=["accounts"])
    def open_account(body: OpenAccountBody, key: IdempotencyKey = None) -> JSONResponse:
        """Open an account with a balance of zero."""
        return run(OpenAccount(account_id=body.account_id, owner=body.owner, **with_key(key)), 201)

    @api.post("/accounts/{account_id}/deposits", response_model=CommandResponse, tags=["accounts"])
    def deposit(account_id: str, body: AmountBody, key: IdempotencyKey = None) -> JSONResponse:
        """Deposit money into an open account."""
        return run(
            DepositMoney(account_id=account_id, amount=Decimal(body.amount), **with_key(key))
        )

    @api.post(
        "/accounts/{account_id}/withdrawals", response_model=CommandResponse, tags=["accounts"]
    )
    def withdraw(account_id: str, body: AmountBody, key: IdempotencyKey = None) -> JSONResponse:
        """Withdraw money; an overdraft is refused (422)."""
        return run(
            WithdrawMoney(account_id=account_id, amount=Decimal(body.amount), **with_key(key))
        )

    @api.post("/accounts/{account_id}/close", response_model=CommandResponse, tags=["accounts"])
    def close(account_id: str, key: IdempotencyKey = None) -> JSONResponse:
        """Close an account whose balance is zero."""
        return run(CloseAccount(account_id=account_id, **with_key(key)))

    @api.post("/transfers", response_model=CommandResponse, tags=["accounts"])
    def transfer(body: TransferBody, key: IdempotencyKey = None) -> JSONResponse:
        """Move money between two accounts, atomically."""
        return run(
            TransferMoney(
                source_account_id=body.source_account_id,
                target_account_id=body.target_account_id,
                amount=Decimal(body.amount),
                **with_key(key),
            )
        )

    @api.post("/users", status_code=201, response_model=CommandResponse, tags=["users"])
    def register(body: RegisterUserBody, key: IdempotencyKey = None) -> JSONResponse:
        """Register a user; the email must not belong to another user (409)."""
        command = RegisterUser(
            user_id=body.user_id, name=body.name, email=body.email, **with_key(key)
        )
        return run(command, 201)

    @api.post("/users/{user_id}/email", response_model=CommandResponse, tags=["users"])
    def change_email(user_id: str, body: EmailBody, key: IdempotencyKey = None) -> JSONResponse:
        """Change a user's email; the claim on the address moves in the same transaction."""
        return run(ChangeEmail(user_id=user_id, email=body.email, **with_key(key)))

    @api.post("/users/{user_id}/forget", response_model=CommandResponse, tags=["users"])
    def forget(user_id: str, key: IdempotencyKey = None) -> JSONResponse:
        """Forget a user: their personal data is no longer shown."""
        return run(ForgetUser(user_id=user_id, **with_key(key)))

    @api.get("/accounts/{account_id}", response_model=AccountView, tags=["read models"])
    def get_account(account_id: str) -> Any:
        """The account's balance (read model)."""
        row = _get(lambda: models.balances.get(account_id, consistent_read=True))
        if row is None:
            return problem(404, "not found", f"account {account_id!r} is unknown")
        return AccountView(
            account_id=row.account_id,
            owner=row.owner,
            balance=f"{row.balance:.2f}",
            closed=bool(row.closed),
            version=int(row.version),
        )

    @api.get(
        "/accounts/{account_id}/statement",
        response_model=list[StatementLineView],
        tags=["read models"],
    )
    def get_statement(account_id: str) -> Any:
        """Every movement of the account, oldest first (read model)."""
        if _get(lambda: models.balances.get(account_id, consistent_read=True)) is None:
            return problem(404, "not found", f"account {account_id!r} is unknown")
        return [
            StatementLineView(
                version=int(line.version),
                kind=line.kind,
                amount=f"{line.amount:.2f}",
                occurred_at=line.occurred_at,
            )
            for line in models.statements.query(account_id, consistent_read=True)
        ]

    @api.get("/users/{user_id}", response_model=UserView, tags=["read models"])
    def get_user(user_id: str) -> Any:
        """The user directory entry (read model); forgotten users show as erased."""
        row = _get(lambda: models.users.get(user_id, consistent_read=True))
        if row is None:
            return problem(404, "not found", f"user {user_id!r} is unknown")
        return UserView(
            user_id=row.user_id, name=row.name, email=row.email, forgotten=bool(row.forgotten)
        )

    def _get(read: Callable[[], Any]) -> Any:
        with lock:
            try:
                return read()
            except DoesNotExist:
                return None

    return api


def _result(result: CommandResult) -> dict[str, Any]:
    return {
        "command_id": result.command_id,
        "change_set_id": result.change_set_id,
        "versions": dict(result.versions),
        "duplicate": result.duplicate,
    }


@contextlib.contextmanager
def serving_store() -> Iterator[DynamoDBEventStore]:
    """DynamoDB from the environment, or the embedded moto store, with all tables created."""
    from framework.store.embedded import embedded_dynamodb_store

    if os.environ.get("DYNAMO_ENDPOINT") or os.environ.get("AWS_REGION"):
        store = DynamoDBEventStore.from_env()
        store.create_tables()
        create_read_model_tables(store)
        yield store
        return
    with embedded_dynamodb_store(table_prefix="serve") as store:
        create_read_model_tables(store)
        yield store


def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the API with uvicorn until interrupted."""
    import uvicorn

    with serving_store() as store:
        uvicorn.run(create_app(store), host=host, port=port, workers=1, log_level="warning")

"""``python -m example_app serve``: the example app over HTTP (FastAPI).

Commands are POSTs; read models are GETs. Amounts travel as decimal strings ("12.50"), never as
JSON numbers, which would pass through binary floating point. An ``Idempotency-Key`` header
becomes the command's id, so a retried POST gets the first response back and writes nothing.
Errors are RFC 9457 problem documents (``application/problem+json``).

After each command the read models of the streams it changed are brought up to date before the
response (``project_synchronously``), so that a client reads its own writes. That suits a demo;
a production deployment runs the projectors from the events table's stream (the Streams poller
or the Lambda handler) and lets reads trail writes by a moment.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Annotated, Any, TypeVar

import structlog
from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from pynamodb.exceptions import DoesNotExist, PynamoDBConnectionError
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
    ConflictError,
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

log = structlog.get_logger(__name__)

T = TypeVar("T")

RETRY_AFTER_SECONDS = 1
"""What a 503 tells the client to wait: DynamoDB's own hiccups last about that long."""

MAX_PROJECTION_ROUNDS = 5
"""How often a request re-runs a stream's catch-up after another request's projection won."""

_THROTTLING_CODES = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}
)

# -- request and response bodies -----------------------------------------------------------

Money = Annotated[
    str,
    Field(
        pattern=r"^-?\d{1,15}(\.\d{1,2})?$",
        examples=["12.50"],
        description=(
            "A decimal amount as a string, at most two decimal places. A JSON number is refused: "
            "it would have passed through binary floating point."
        ),
    ),
]
Identifier = Annotated[str, Field(min_length=1, max_length=200, examples=["acc-1"])]
Email = Annotated[str, Field(min_length=3, max_length=320, examples=["ann@example.com"])]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description=(
            "Becomes the command's id. Retrying the POST with the same key returns the first "
            "response (with `duplicate: true`) and writes nothing."
        ),
    ),
]


class _Body(BaseModel):
    """Request bodies refuse unknown fields: a misspelt field is an error, not silently lost."""

    model_config = ConfigDict(extra="forbid")


class OpenAccountBody(_Body):
    account_id: Identifier
    owner: Annotated[str, Field(min_length=1, max_length=200, examples=["Ann"])]


class AmountBody(_Body):
    amount: Money


class TransferBody(_Body):
    source_account_id: Identifier
    target_account_id: Identifier
    amount: Money


class RegisterUserBody(_Body):
    user_id: Annotated[str, Field(min_length=1, max_length=200, examples=["user-1"])]
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
    owner: str
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


class Problem(BaseModel):
    """An RFC 9457 problem document, served as ``application/problem+json``."""

    type: str = Field(default="about:blank")
    title: str
    status: int
    detail: str


def _problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem documents an endpoint may answer with."""
    meaning = {
        404: "the account or user does not exist",
        409: "a conflict: the id or email is taken, or a concurrency race was lost",
        422: "the request does not validate, or a business rule refused the command",
        503: "DynamoDB did not answer; retry after `Retry-After` seconds (same Idempotency-Key)",
    }
    schema = Problem.model_json_schema()
    return {
        status: {
            "description": meaning[status],
            "content": {"application/problem+json": {"schema": schema}},
        }
        for status in (*statuses, 503)
    }


_COMMAND_ERRORS = _problem_responses(404, 409, 422)
_READ_ERRORS = _problem_responses(404)

# -- errors --------------------------------------------------------------------------------

# The first matching class decides; subclasses come before their bases. A business rule's
# refusal (DomainError, an overdraft for instance) is 422: the request was well formed and
# understood, but its content cannot be processed in the resource's current state. 409 is kept
# for conflicts with other writers or taken identities, where the same request may well succeed
# against other state.
_STATUS_OF: list[tuple[type[Exception], int, str]] = [
    (InvalidCommand, 422, "invalid command"),
    (DomainError, 422, "refused by a business rule"),
    (AggregateNotFound, 404, "not found"),
    (AggregateAlreadyExists, 409, "already exists"),
    (UniqueConstraintViolated, 409, "value already taken"),
    (ConcurrencyError, 409, "conflict"),
    (DuplicateCommand, 409, "duplicate command"),
    (ConflictError, 409, "conflict"),
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


def _unavailable(detail: str) -> JSONResponse:
    return problem(
        503, "store unavailable", detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
    )


class IdempotencyKeyReused(Exception):
    """The key was first used for a request on other resources: answering would mislead."""


# -- synchronous projection -----------------------------------------------------------------


class ReadModelUpdater:
    """Brings the read models of the streams a command changed up to date, in the request.

    Why per stream rather than a ``CatchUpRunner`` over the feed index: the feed is a global
    secondary index, eventually consistent, so the newest commit may not be in it yet, whereas
    ``ProjectionEngine.catch_up_stream`` reads the stream itself with consistent reads; the work
    is proportional to the command, not to the hour's traffic; and it never moves the runner's
    feed checkpoint (which a catch-up run ending in the future could move past commits still in
    flight).

    Engines are kept per thread: a ``Projector`` queues its writes on the instance between a
    handler call and the commit, so two request threads must never share one.
    """

    def __init__(self, store: DynamoDBEventStore) -> None:
        self.store = store
        self.positions = DynamoDBPositionStore(store)
        self._local = threading.local()

    def _engines(self) -> list[ProjectionEngine]:
        engines: list[ProjectionEngine] | None = getattr(self._local, "engines", None)
        if engines is None:
            engines = [
                ProjectionEngine(projector, self.store, self.positions)
                for projector in all_projectors(self.store)
            ]
            self._local.engines = engines
        return engines

    def catch_up(self, streams: Iterable[str]) -> None:
        """Apply every stored event of ``streams`` beyond each projector's position.

        A position conflict means another request's catch-up advanced the stream first, maybe
        only up to an earlier version than this command's: so go again until a round meets no
        conflict, and this command's events are in the read model when the response leaves.
        """
        for stream in streams:
            aggregate_type, _, aggregate_id = stream.partition("#")  # types never contain "#"
            for engine in self._engines():
                if not engine.projector.follows(aggregate_type):
                    continue
                for _ in range(MAX_PROJECTION_ROUNDS):
                    if not engine.catch_up_stream(aggregate_type, aggregate_id).conflicts:
                        break


# -- the application ------------------------------------------------------------------------


def create_app(
    store: DynamoDBEventStore,
    *,
    project_synchronously: bool = True,
    serialize_requests: bool | None = None,
) -> FastAPI:
    """The HTTP API over the example application on ``store`` (its tables must exist).

    ``serialize_requests`` makes requests run one at a time; the default does so only for the
    embedded moto store (no endpoint, no ``AWS_REGION``), which is not thread-safe.
    """
    application = build_application(store)
    models = models_for(store)
    updater = ReadModelUpdater(store)
    # Endpoints are plain ``def`` functions, run in FastAPI's thread pool, so a slow DynamoDB
    # call holds up one request and not the event loop. The embedded moto backend is not
    # thread-safe (its transactions deep-copy tables), so on it one lock makes every request
    # run alone; on DynamoDB (Local or AWS) requests run concurrently and optimistic
    # concurrency in the store keeps them correct. moto's tables live in the process's memory,
    # which is one more reason ``serve`` runs a single worker process.
    if serialize_requests is None:
        serialize_requests = store.endpoint_url is None and not os.environ.get("AWS_REGION")
    lock: contextlib.AbstractContextManager[Any] = (
        threading.Lock() if serialize_requests else contextlib.nullcontext()
    )

    api = FastAPI(
        title="Example bank",
        version="1.0",
        description=(
            "Accounts, transfers and users of the example app, on an event-sourced DynamoDB "
            "store. Commands are POSTs answering with the command's result; read models are "
            "GETs. Amounts are decimal strings. Every POST accepts an `Idempotency-Key` header. "
            "Errors are RFC 9457 problem documents (`application/problem+json`)."
        ),
        openapi_tags=[
            {"name": "accounts", "description": "Commands on bank accounts."},
            {"name": "users", "description": "Commands on users; emails are unique."},
            {"name": "read models", "description": "Projections, up to date after each POST."},
        ],
    )

    def run(
        command: Command, streams: list[str], key: str | None, status: int = 200
    ) -> JSONResponse:
        """Handle ``command``, refresh the read models, answer with its result.

        ``streams`` are those the command targets: a duplicate whose first result changed none
        of them means the key was first used for another request.
        """
        with lock:
            result = application.handle(command)
            if result.duplicate and result.versions and not set(streams) <= set(result.versions):
                raise IdempotencyKeyReused(key)
            if project_synchronously:
                try:
                    updater.catch_up(result.versions)
                except Exception as error:
                    # The command is committed: answering with an error would invite a retry
                    # that is not idempotent without a key. The read model catches up at the
                    # stream's next command.
                    log.warning(
                        "http_api.projection_failed",
                        command_id=result.command_id,
                        error_type=type(error).__name__,
                        error=str(error),
                    )
        return JSONResponse(_result(result), status_code=status)

    def with_key(key: str | None) -> dict[str, str]:
        return {"command_id": key} if key else {}

    def read(load: Callable[[], T]) -> T | None:
        """A read-model read, ``None`` when the row does not exist.

        Rows come back typed ``Any`` at the call sites: the PynamoDB model classes are built per
        table prefix at run time, so their attributes are unknown to the type checker.
        """
        with lock:
            try:
                return load()
            except DoesNotExist:
                return None

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

    @api.exception_handler(IdempotencyKeyReused)
    def _key_reused(request: Request, error: IdempotencyKeyReused) -> JSONResponse:
        return problem(
            422,
            "idempotency key reused",
            f"the Idempotency-Key {error.args[0]!r} was used for another request",
        )

    @api.exception_handler(FrameworkError)
    def _framework_error(request: Request, error: FrameworkError) -> JSONResponse:
        if isinstance(error, UniqueConstraintViolated):  # the claimed value is a hash
            return problem(
                409, "value already taken", f"that {error.scope} belongs to someone else"
            )
        if isinstance(error, StoreUnavailable):
            return _unavailable(str(error))
        for error_type, status, title in _STATUS_OF:
            if isinstance(error, error_type):
                return problem(status, title, str(error))
        log.error("http_api.unexpected_error", error_type=type(error).__name__, error=str(error))
        return problem(500, "internal error", type(error).__name__)

    @api.exception_handler(PynamoDBConnectionError)
    def _read_model_error(request: Request, error: PynamoDBConnectionError) -> JSONResponse:
        # The read models go through PynamoDB, which has errors of its own: no answer or
        # throttling is the same 503 as for the event store; anything else is a bug.
        if error.cause_response_code is None or error.cause_response_code in _THROTTLING_CODES:
            cause = type(error.cause).__name__
            return _unavailable(f"DynamoDB did not answer the read model: {error.msg} ({cause})")
        log.error("http_api.read_model_error", code=error.cause_response_code, error=str(error))
        return problem(500, "internal error", f"read model: {error.cause_response_code}")

    @api.post(
        "/accounts",
        status_code=201,
        response_model=CommandResponse,
        responses=_COMMAND_ERRORS,
        tags=["accounts"],
        summary="Open an account",
    )
    def open_account(body: OpenAccountBody, key: IdempotencyKey = None) -> JSONResponse:
        """Open an account with a balance of zero; 409 when the id is taken."""
        command = OpenAccount(account_id=body.account_id, owner=body.owner, **with_key(key))
        return run(command, [f"Account#{body.account_id}"], key, 201)

    @api.post(
        "/accounts/{account_id}/deposits",
        response_model=CommandResponse,
        responses=_COMMAND_ERRORS,
        tags=["accounts"],
        summary="Deposit money",
    )
    def deposit(account_id: str, body: AmountBody, key: IdempotencyKey = None) -> JSONResponse:
        """Deposit money into an open account; the amount must be positive (422)."""
        command = DepositMoney(account_id=account_id, amount=Decimal(body.amount), **with_key(key))
        return run(command, [f"Account#{account_id}"], key)

    @api.post(
        "/accounts/{account_id}/withdrawals",
        response_model=CommandResponse,
        responses=_COMMAND_ERRORS,
        tags=["accounts"],
        summary="Withdraw money",
    )
    def withdraw(account_id: str, body: AmountBody, key: IdempotencyKey = None) -> JSONResponse:
        """Withdraw money from an open account; an overdraft is refused (422)."""
        command = WithdrawMoney(account_id=account_id, amount=Decimal(body.amount), **with_key(key))
        return run(command, [f"Account#{account_id}"], key)

    @api.post(
        "/accounts/{account_id}/close",
        response_model=CommandResponse,
        responses=_COMMAND_ERRORS,
        tags=["accounts"],
        summary="Close an account",
    )
    def close(account_id: str, key: IdempotencyKey = None) -> JSONResponse:
        """Close an account; only an empty account can be closed (422 otherwise)."""
        return run(
            CloseAccount(account_id=account_id, **with_key(key)), [f"Account#{account_id}"], key
        )

    @api.post(
        "/transfers",
        response_model=CommandResponse,
        responses=_COMMAND_ERRORS,
        tags=["accounts"],
        summary="Transfer money between two accounts",
    )
    def transfer(body: TransferBody, key: IdempotencyKey = None) -> JSONResponse:
        """Debit one account and credit the other in one transaction: both or neither."""
        command = TransferMoney(
            source_account_id=body.source_account_id,
            target_account_id=body.target_account_id,
            amount=Decimal(body.amount),
            **with_key(key),
        )
        streams = [f"Account#{body.source_account_id}", f"Account#{body.target_account_id}"]
        return run(command, streams, key)

    @api.post(
        "/users",
        status_code=201,
        response_model=CommandResponse,
        responses=_COMMAND_ERRORS,
        tags=["users"],
        summary="Register a user",
    )
    def register(body: RegisterUserBody, key: IdempotencyKey = None) -> JSONResponse:
        """Register a user; the email must not belong to another user (409)."""
        command = RegisterUser(
            user_id=body.user_id, name=body.name, email=body.email, **with_key(key)
        )
        return run(command, [f"User#{body.user_id}"], key, 201)

    @api.post(
        "/users/{user_id}/email",
        response_model=CommandResponse,
        responses=_COMMAND_ERRORS,
        tags=["users"],
        summary="Change a user's email",
    )
    def change_email(user_id: str, body: EmailBody, key: IdempotencyKey = None) -> JSONResponse:
        """Change a user's email; the claim on the address moves in the same transaction."""
        command = ChangeEmail(user_id=user_id, email=body.email, **with_key(key))
        return run(command, [f"User#{user_id}"], key)

    @api.post(
        "/users/{user_id}/forget",
        response_model=CommandResponse,
        responses=_COMMAND_ERRORS,
        tags=["users"],
        summary="Forget a user",
    )
    def forget(user_id: str, key: IdempotencyKey = None) -> JSONResponse:
        """Forget a user: their key is deleted, so their name and email are unreadable for good."""
        return run(ForgetUser(user_id=user_id, **with_key(key)), [f"User#{user_id}"], key)

    @api.get(
        "/accounts/{account_id}",
        response_model=AccountView,
        responses=_READ_ERRORS,
        tags=["read models"],
        summary="An account's balance",
    )
    def get_account(account_id: str) -> Any:
        """The account's balance, owner and status (balances read model)."""
        row: Any = read(lambda: models.balances.get(account_id, consistent_read=True))
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
        responses=_READ_ERRORS,
        tags=["read models"],
        summary="An account's statement",
    )
    def get_statement(account_id: str) -> Any:
        """Every money movement of the account, in version order (statements read model)."""
        if read(lambda: models.balances.get(account_id, consistent_read=True)) is None:
            return problem(404, "not found", f"account {account_id!r} is unknown")
        lines: list[Any] | None = read(
            lambda: list(models.statements.query(account_id, consistent_read=True))
        )
        return [
            StatementLineView(
                version=int(line.version),
                kind=line.kind,
                amount=f"{line.amount:.2f}",
                occurred_at=line.occurred_at,
            )
            for line in lines or []
        ]

    @api.get(
        "/users/{user_id}",
        response_model=UserView,
        responses=_READ_ERRORS,
        tags=["read models"],
        summary="A user",
    )
    def get_user(user_id: str) -> Any:
        """The user directory entry; a forgotten user's name and email read `(erased)`."""
        row: Any = read(lambda: models.users.get(user_id, consistent_read=True))
        if row is None:
            return problem(404, "not found", f"user {user_id!r} is unknown")
        return UserView(
            user_id=row.user_id, name=row.name, email=row.email, forgotten=bool(row.forgotten)
        )

    return api


def _result(result: CommandResult) -> dict[str, Any]:
    return {
        "command_id": result.command_id,
        "change_set_id": result.change_set_id,
        "versions": dict(result.versions),
        "duplicate": result.duplicate,
    }


# -- serving --------------------------------------------------------------------------------


@contextlib.contextmanager
def serving_store() -> Iterator[tuple[DynamoDBEventStore, bool]]:
    """The store to serve, all tables created, and whether it is the embedded (moto) one.

    DynamoDB from the environment when ``DYNAMO_ENDPOINT`` or ``AWS_REGION`` is set, as in the
    demo; otherwise the embedded moto store, which lives as long as the ``with`` block.
    """
    if os.environ.get("DYNAMO_ENDPOINT") or os.environ.get("AWS_REGION"):
        store = DynamoDBEventStore.from_env()
        store.create_tables()
        create_read_model_tables(store)
        yield store, False
        return
    from framework.store.embedded import embedded_dynamodb_store

    with embedded_dynamodb_store(table_prefix="serve") as store:
        create_read_model_tables(store)
        yield store, True


def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the API with uvicorn until interrupted: one worker process, whatever the store."""
    import uvicorn

    with serving_store() as (store, embedded):
        where = store.endpoint_url or f"AWS region {store.region_name}"
        if embedded:
            where = "embedded DynamoDB (moto, in process; gone when the server stops)"
        print(f"serving on http://{host}:{port} (docs at /docs); store: {where}", flush=True)
        app = create_app(store, serialize_requests=embedded)
        uvicorn.run(app, host=host, port=port, workers=1, log_level="warning")

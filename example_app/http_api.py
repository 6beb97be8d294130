"""``python -m example_app serve``: the example app over HTTP (FastAPI).

Commands are POSTs; read models are GETs. Amounts travel as decimal strings ("12.50"), never as
JSON numbers, which would pass through binary floating point. An ``Idempotency-Key`` header
becomes the command's id, so a retried POST gets the first response back and writes nothing.
Errors are RFC 9457 problem documents (``application/problem+json``).

After each command the read models of the streams it changed are brought up to date before the
response (``project_synchronously``), so that a client reads its own writes. That is an
optimisation, never the only path: a background catch-up (``ReadModelCatchUp``, started and
stopped with the app) retries the streams whose in-request projection failed and periodically
catches up over the events table's feed index, so a crashed process recovers too. A production
deployment runs the projectors from the events table's stream (the Streams poller or the Lambda
handler) and lets reads trail writes by a moment.

Every endpoint but ``/health`` and the docs needs ``Authorization: Bearer <EXAMPLE_API_TOKEN>``
when a token is configured; without one, ``serve`` listens on loopback only. Request bodies are
limited to ``MAX_BODY_BYTES``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import ipaddress
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Iterator
from decimal import Decimal
from typing import Annotated, Any, TypeVar

import attrs
import structlog
from fastapi import APIRouter, FastAPI, Header, Path, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from pynamodb.exceptions import DoesNotExist, PynamoDBException, TableDoesNotExist
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from example_app.bank import (
    CloseAccount,
    DepositMoney,
    OpenAccount,
    TransferMoney,
    WithdrawMoney,
)
from example_app.read_models import (
    all_projectors,
    create_read_model_tables,
    models_for,
    owner_name,
)
from example_app.users import ChangeEmail, ForgetUser, RegisterUser
from example_app.wiring import build_application
from framework import Command, ConcurrencyError, DomainError, DynamoDBEventStore
from framework.application import CommandResult
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
from framework.projections import (
    DEFAULT_SAFETY_WINDOW,
    ApplyReport,
    CatchUpRunner,
    ProjectionEngine,
)
from framework.store import DynamoDBPositionStore, translated_errors

log = structlog.get_logger(__name__)

T = TypeVar("T")

RETRY_AFTER_SECONDS = 1
"""What a 503 tells the client to wait: DynamoDB's own hiccups last about that long."""

MAX_PROJECTION_ROUNDS = 5
"""How often a request re-runs a stream's catch-up after another request's projection won."""

TOKEN_ENV = "EXAMPLE_API_TOKEN"
"""The environment variable holding the bearer token every endpoint but health and docs needs."""

MIN_TOKEN_LENGTH = 16
"""A shorter token is refused at start-up: it could be guessed."""

MAX_BODY_BYTES = 64 * 1024
"""The largest request body accepted; a larger one is refused with 413 before it is read whole."""

PUBLIC_PATHS = frozenset({"/health", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"})
"""What answers without the token: health checks and the API's description."""

RETRY_INTERVAL_SECONDS = 1.0
"""How often the background catch-up retries the streams whose projection failed."""

FEED_INTERVAL_SECONDS = 60.0
"""How often the background catch-up runs over the feed index (and once at start-up)."""

MAX_PENDING_STREAMS = 10_000
"""Streams remembered for a retry at most; beyond, the feed catch-up alone brings them."""

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
    owner_id: Identifier | None = Field(
        default=None,
        description=(
            "the user who holds the account: the owner's name is then that user's personal "
            "data, erased from the account when the user is forgotten"
        ),
    )


class AmountBody(_Body):
    amount: Money


class TransferBody(_Body):
    source_account_id: Identifier
    target_account_id: Identifier
    amount: Money


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
    """An RFC 9457 problem document, served as ``application/problem+json``."""

    type: str = Field(default="about:blank")
    title: str
    status: int
    detail: str


def _problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem documents an endpoint may answer with."""
    meaning = {
        401: "no valid `Authorization: Bearer` token (when the server has one configured)",
        404: "the account or user does not exist",
        409: "a conflict: the id or email is taken, or a concurrency race was lost",
        413: f"the request body is over {MAX_BODY_BYTES} bytes",
        422: "the request does not validate, or a business rule refused the command",
        500: "the server is misconfigured (the detail says how; retrying will not help), or a bug",
        503: "DynamoDB did not answer; retry after `Retry-After` seconds (same Idempotency-Key)",
    }
    schema = Problem.model_json_schema()
    return {
        status: {
            "description": meaning[status],
            "content": {"application/problem+json": {"schema": schema}},
        }
        for status in (*statuses, 500, 503)
    }


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
    (ConfigurationError, 500, "server misconfigured"),
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


class UnsafeServing(ValueError):
    """``serve`` refuses a configuration that would expose the API: the message says why."""


# -- authentication and body size -----------------------------------------------------------


def api_token_from_env() -> str | None:
    """The bearer token from ``EXAMPLE_API_TOKEN``, ``None`` when unset; a short one is refused."""
    token = os.environ.get(TOKEN_ENV) or None
    if token is not None:
        check_token(token)
    return token


def check_token(token: str) -> None:
    """Refuse a token that could be guessed, or that cannot travel in a header."""
    if len(token) < MIN_TOKEN_LENGTH:
        raise UnsafeServing(
            f"{TOKEN_ENV} is shorter than {MIN_TOKEN_LENGTH} characters: use a random one, "
            'for example python -c "import secrets; print(secrets.token_urlsafe(32))"'
        )
    if not token.isascii() or not token.isprintable() or " " in token:
        raise UnsafeServing(f"{TOKEN_ENV} must be printable ASCII without spaces")


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` keeps the server reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()


class RequestGuard:
    """ASGI middleware: the bearer token, then the body size, before the app sees the request.

    The token is compared in constant time (both sides hashed to equal lengths first, then
    ``hmac.compare_digest``). The body is read here, up to ``max_body`` bytes, and handed to the
    app only once it is known to fit: a declared ``Content-Length`` over the limit is refused
    before a byte of the body is read, and a chunked body as soon as it goes over.
    """

    def __init__(self, app: ASGIApp, *, token: str | None, max_body: int) -> None:
        self.app = app
        self.token_digest = None if token is None else _digest(token)
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if self.token_digest is not None and scope["path"] not in PUBLIC_PATHS:
            refusal = self._refuse_unauthorised(headers.get("authorization"))
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await self._too_large()(scope, receive, send)
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left: nobody to answer
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body:
                await self._too_large()(scope, receive, send)
                return
        await self.app(scope, _replay(bytes(body), receive), send)

    def _refuse_unauthorised(self, authorization: str | None) -> JSONResponse | None:
        realm = 'Bearer realm="example-bank"'
        scheme, _, presented = (authorization or "").partition(" ")
        if not authorization or scheme.lower() != "bearer" or not presented.strip():
            return problem(
                401,
                "unauthorized",
                "this endpoint needs an 'Authorization: Bearer <token>' header",
                headers={"WWW-Authenticate": realm},
            )
        assert self.token_digest is not None
        if hmac.compare_digest(_digest(presented.strip()), self.token_digest):
            return None
        return problem(
            401,
            "unauthorized",
            "the bearer token is not valid",
            headers={"WWW-Authenticate": f'{realm}, error="invalid_token"'},
        )

    def _too_large(self) -> JSONResponse:
        return problem(
            413,
            "request body too large",
            f"request bodies are limited to {self.max_body} bytes",
            headers={"Connection": "close"},
        )


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands over the buffered body, then whatever the client sends next."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


# -- read models: in the request, and caught up in the background --------------------------


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


@attrs.define
class CatchUpStep:
    """What one ``ReadModelCatchUp.step`` did."""

    retried: list[str] = attrs.field(factory=list)
    still_failing: list[str] = attrs.field(factory=list)
    feed: ApplyReport | None = None


class ReadModelCatchUp:
    """Keeps the read models up to date from the store, whatever happened in the requests.

    The projection in the request (``project``) is an optimisation: when it fails, the command
    is committed all the same, so the streams are remembered and retried here, every
    ``retry_interval`` seconds until they succeed. A run over the feed index (``CatchUpRunner``)
    every ``feed_interval`` seconds, and at start-up, brings whatever was never projected
    (the process crashed between a commit and its projection, or the retry list was full).

    ``start``/``stop`` run ``step`` in a background thread; tests call ``step`` directly.
    """

    def __init__(
        self,
        store: DynamoDBEventStore,
        *,
        lock: contextlib.AbstractContextManager[Any] | None = None,
        retry_interval: float = RETRY_INTERVAL_SECONDS,
        feed_interval: float = FEED_INTERVAL_SECONDS,
        safety_window: dt.timedelta = DEFAULT_SAFETY_WINDOW,
    ) -> None:
        self.store = store
        self.updater = ReadModelUpdater(store)
        self.runner = CatchUpRunner(
            store, DynamoDBPositionStore(store), all_projectors(store), safety_window=safety_window
        )
        self.lock = lock or contextlib.nullcontext()
        self.retry_interval = retry_interval
        self.feed_interval = feed_interval
        self._pending: set[str] = set()
        self._pending_lock = threading.Lock()
        self._step_lock = threading.Lock()  # one step at a time: projectors queue on themselves
        self._next_feed_run = time.monotonic()  # the first step runs over the feed
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def pending(self) -> frozenset[str]:
        """The streams waiting for a retry of their projection."""
        with self._pending_lock:
            return frozenset(self._pending)

    def project(self, streams: Collection[str], command_id: str) -> bool:
        """Project ``streams`` now, in the request; on failure remember them for a retry.

        Never raises: the command is committed, and answering with an error would invite a
        retry that is not idempotent without a key.
        """
        try:
            self.updater.catch_up(streams)
        except Exception as error:
            log.warning(
                "http_api.projection_failed",
                command_id=command_id,
                streams=len(streams),
                error_type=type(error).__name__,
                error=str(error),
            )
            self._remember(streams)
            return False
        return True

    def _remember(self, streams: Iterable[str]) -> None:
        with self._pending_lock:
            for stream in streams:
                if len(self._pending) >= MAX_PENDING_STREAMS:
                    log.warning("http_api.projection_retries_full", limit=MAX_PENDING_STREAMS)
                    return  # the feed catch-up brings the others
                self._pending.add(stream)

    def step(self, *, feed: bool | None = None) -> CatchUpStep:
        """Retry the remembered streams; run over the feed when due (or when ``feed`` says)."""
        with self._step_lock:
            report = CatchUpStep()
            with self._pending_lock:
                streams = sorted(self._pending)
                self._pending.clear()
            for stream in streams:
                try:
                    with self.lock:
                        self.updater.catch_up([stream])
                    report.retried.append(stream)
                except Exception as error:
                    report.still_failing.append(stream)
                    log.warning(
                        "http_api.projection_retry_failed",
                        error_type=type(error).__name__,
                        error=str(error),
                    )
            self._remember(report.still_failing)
            if feed if feed is not None else time.monotonic() >= self._next_feed_run:
                self._next_feed_run = time.monotonic() + self.feed_interval
                try:
                    with self.lock:
                        report.feed = self.runner.run()
                except Exception as error:
                    log.warning(
                        "http_api.feed_catch_up_failed",
                        error_type=type(error).__name__,
                        error=str(error),
                    )
            return report

    def start(self) -> None:
        """Run ``step`` in a background thread until ``stop``."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="read-model-catch-up", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the background thread, letting a step under way finish."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.step()
            except Exception:  # never let the thread die: the next round tries again
                log.exception("http_api.catch_up_step_failed")
            self._stopping.wait(self.retry_interval)


def _read_model_error(error: PynamoDBException, table: str) -> Exception:
    """A PynamoDB error as the framework's error for the same cause, so that it answers alike."""
    if isinstance(error, TableDoesNotExist) or error.cause_response_code in (
        "ResourceNotFoundException",
    ):
        return ConfigurationError(
            f"the read-model table {table!r} does not exist: create it with "
            "example_app.read_models.create_read_model_tables(store) (python -m example_app "
            "serve does at start-up), or check DYNAMO_TABLE_PREFIX"
        )
    cause = error.cause
    if cause is None:
        return error
    try:
        with translated_errors(table):  # botocore's errors become the framework's, others pass
            raise cause
    except StoreUnavailable as unavailable:
        if type(unavailable) is StoreUnavailable:  # not Throttled: name the read model
            return StoreUnavailable(
                f"DynamoDB did not answer the read model ({type(cause).__name__})"
            )
        return unavailable
    except FrameworkError as translated:
        return translated
    except Exception:
        return error


# -- the application ------------------------------------------------------------------------


def create_app(
    store: DynamoDBEventStore,
    *,
    api_token: str | None = None,
    project_synchronously: bool = True,
    background_catch_up: bool | None = None,
    serialize_requests: bool | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    read_models: ReadModelCatchUp | None = None,
) -> FastAPI:
    """The HTTP API over the example application on ``store`` (its tables must exist).

    ``api_token``: the bearer token every endpoint but ``/health`` and the docs requires; by
    default ``EXAMPLE_API_TOKEN``; without one the API is open (``serve`` then listens on
    loopback only). ``background_catch_up`` (default: when ``project_synchronously``) runs a
    ``ReadModelCatchUp`` for the app's lifespan; it is ``app.state.read_models``. Pass your own
    ``read_models`` to choose its intervals. ``serialize_requests`` makes requests run one at a
    time; the default does so only for the embedded moto store (no endpoint, no
    ``AWS_REGION``), which is not thread-safe.
    """
    token = api_token if api_token is not None else api_token_from_env()
    if token is not None:
        check_token(token)
    application = build_application(store)
    models = models_for(store)
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
    keeper = read_models or ReadModelCatchUp(store)
    keeper.lock = lock
    if background_catch_up is None:
        background_catch_up = project_synchronously

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if background_catch_up:
            keeper.start()
        try:
            yield
        finally:
            await asyncio.to_thread(keeper.stop)

    secured = token is not None
    protected = APIRouter(
        dependencies=[Security(HTTPBearer(auto_error=False))] if secured else [],
    )
    auth_errors = (401,) if secured else ()
    command_errors = _problem_responses(*auth_errors, 404, 409, 413, 422)
    read_errors = _problem_responses(*auth_errors, 404, 422)

    api = FastAPI(
        title="Example bank",
        version="1.0",
        description=(
            "Accounts, transfers and users of the example app, on an event-sourced DynamoDB "
            "store. Commands are POSTs answering with the command's result; read models are "
            "GETs. Amounts are decimal strings. Every POST accepts an `Idempotency-Key` header. "
            "Errors are RFC 9457 problem documents (`application/problem+json`). "
            + (
                "Every endpoint but `/health` and the docs needs `Authorization: Bearer <token>`. "
                if secured
                else ""
            )
            + f"Request bodies are limited to {max_body_bytes} bytes."
        ),
        openapi_tags=[
            {"name": "accounts", "description": "Commands on bank accounts."},
            {"name": "users", "description": "Commands on users; emails are unique."},
            {"name": "read models", "description": "Projections, up to date after each POST."},
            {"name": "operations", "description": "For load balancers and monitoring."},
        ],
        lifespan=lifespan,
    )
    api.state.read_models = keeper
    api.add_middleware(RequestGuard, token=token, max_body=max_body_bytes)

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
                keeper.project(list(result.versions), result.command_id)
        return JSONResponse(_result(result), status_code=status)

    def with_key(key: str | None) -> dict[str, str]:
        return {"command_id": key} if key else {}

    def read(table: str, load: Callable[[], T]) -> T | None:
        """A read-model read, ``None`` when the row does not exist.

        Rows come back typed ``Any`` at the call sites: the PynamoDB model classes are built per
        table prefix at run time, so their attributes are unknown to the type checker.
        """
        with lock:
            try:
                with translated_errors(table):
                    return load()
            except DoesNotExist:
                return None
            except PynamoDBException as error:
                raise _read_model_error(error, table) from error

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
        if isinstance(error, ConfigurationError):
            # Not 503: a client would retry a misconfiguration forever. The operator must act.
            log.error("http_api.misconfigured", error_type=type(error).__name__, error=str(error))
            return problem(500, "server misconfigured", str(error))
        for error_type, status, title in _STATUS_OF:
            if isinstance(error, error_type):
                return problem(status, title, str(error))
        log.error("http_api.unexpected_error", error_type=type(error).__name__, error=str(error))
        return problem(500, "internal error", type(error).__name__)

    @api.exception_handler(PynamoDBException)
    def _read_model_error_handler(request: Request, error: PynamoDBException) -> JSONResponse:
        # Read-model errors are translated in ``read``; one that escapes it is a bug.
        log.error("http_api.read_model_error", code=error.cause_response_code, error=str(error))
        return problem(500, "internal error", f"read model: {type(error).__name__}")

    @api.get(
        "/health",
        response_model=HealthView,
        tags=["operations"],
        summary="Is the server up?",
    )
    def health() -> HealthView:
        """Answers 200 while the server runs; needs no token and does not call DynamoDB."""
        return HealthView(status="ok")

    @protected.post(
        "/accounts",
        status_code=201,
        response_model=CommandResponse,
        responses=command_errors,
        tags=["accounts"],
        summary="Open an account",
    )
    def open_account(body: OpenAccountBody, key: IdempotencyKey = None) -> JSONResponse:
        """Open an account with a balance of zero; 409 when the id is taken."""
        command = OpenAccount(
            account_id=body.account_id, owner=body.owner, owner_id=body.owner_id, **with_key(key)
        )
        return run(command, [f"Account#{body.account_id}"], key, 201)

    @protected.post(
        "/accounts/{account_id}/deposits",
        response_model=CommandResponse,
        responses=command_errors,
        tags=["accounts"],
        summary="Deposit money",
    )
    def deposit(
        account_id: AccountIdInPath, body: AmountBody, key: IdempotencyKey = None
    ) -> JSONResponse:
        """Deposit money into an open account; the amount must be positive (422)."""
        command = DepositMoney(account_id=account_id, amount=Decimal(body.amount), **with_key(key))
        return run(command, [f"Account#{account_id}"], key)

    @protected.post(
        "/accounts/{account_id}/withdrawals",
        response_model=CommandResponse,
        responses=command_errors,
        tags=["accounts"],
        summary="Withdraw money",
    )
    def withdraw(
        account_id: AccountIdInPath, body: AmountBody, key: IdempotencyKey = None
    ) -> JSONResponse:
        """Withdraw money from an open account; an overdraft is refused (422)."""
        command = WithdrawMoney(account_id=account_id, amount=Decimal(body.amount), **with_key(key))
        return run(command, [f"Account#{account_id}"], key)

    @protected.post(
        "/accounts/{account_id}/close",
        response_model=CommandResponse,
        responses=command_errors,
        tags=["accounts"],
        summary="Close an account",
    )
    def close(account_id: AccountIdInPath, key: IdempotencyKey = None) -> JSONResponse:
        """Close an account; only an empty account can be closed (422 otherwise)."""
        return run(
            CloseAccount(account_id=account_id, **with_key(key)), [f"Account#{account_id}"], key
        )

    @protected.post(
        "/transfers",
        response_model=CommandResponse,
        responses=command_errors,
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

    @protected.post(
        "/users",
        status_code=201,
        response_model=CommandResponse,
        responses=command_errors,
        tags=["users"],
        summary="Register a user",
    )
    def register(body: RegisterUserBody, key: IdempotencyKey = None) -> JSONResponse:
        """Register a user; the email must not belong to another user (409)."""
        command = RegisterUser(
            user_id=body.user_id, name=body.name, email=body.email, **with_key(key)
        )
        return run(command, [f"User#{body.user_id}"], key, 201)

    @protected.post(
        "/users/{user_id}/email",
        response_model=CommandResponse,
        responses=command_errors,
        tags=["users"],
        summary="Change a user's email",
    )
    def change_email(
        user_id: UserIdInPath, body: EmailBody, key: IdempotencyKey = None
    ) -> JSONResponse:
        """Change a user's email; the claim on the address moves in the same transaction."""
        command = ChangeEmail(user_id=user_id, email=body.email, **with_key(key))
        return run(command, [f"User#{user_id}"], key)

    @protected.post(
        "/users/{user_id}/forget",
        response_model=CommandResponse,
        responses=command_errors,
        tags=["users"],
        summary="Forget a user",
    )
    def forget(user_id: UserIdInPath, key: IdempotencyKey = None) -> JSONResponse:
        """Forget a user: their key is deleted, so their name and email are unreadable for good."""
        return run(ForgetUser(user_id=user_id, **with_key(key)), [f"User#{user_id}"], key)

    balances_table = models.balances.Meta.table_name
    statements_table = models.statements.Meta.table_name
    users_table = models.users.Meta.table_name

    @protected.get(
        "/accounts/{account_id}",
        response_model=AccountView,
        responses=read_errors,
        tags=["read models"],
        summary="An account's balance",
    )
    def get_account(account_id: AccountIdInPath) -> Any:
        """The account's balance, owner and status (balances read model)."""
        row: Any = read(
            balances_table, lambda: models.balances.get(account_id, consistent_read=True)
        )
        if row is None:
            return problem(404, "not found", f"account {account_id!r} is unknown")
        owner = read(users_table, lambda: owner_name(models, row)) or "(unknown user)"
        return AccountView(
            account_id=row.account_id,
            owner=owner,
            owner_id=row.owner_id,
            balance=f"{row.balance:.2f}",
            closed=bool(row.closed),
            version=int(row.version),
        )

    @protected.get(
        "/accounts/{account_id}/statement",
        response_model=list[StatementLineView],
        responses=read_errors,
        tags=["read models"],
        summary="An account's statement",
    )
    def get_statement(account_id: AccountIdInPath) -> Any:
        """Every money movement of the account, in version order (statements read model)."""
        if (
            read(balances_table, lambda: models.balances.get(account_id, consistent_read=True))
            is None
        ):
            return problem(404, "not found", f"account {account_id!r} is unknown")
        lines: list[Any] | None = read(
            statements_table,
            lambda: list(models.statements.query(account_id, consistent_read=True)),
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

    @protected.get(
        "/users/{user_id}",
        response_model=UserView,
        responses=read_errors,
        tags=["read models"],
        summary="A user",
    )
    def get_user(user_id: UserIdInPath) -> Any:
        """The user directory entry; a forgotten user's name and email read `(erased)`."""
        row: Any = read(users_table, lambda: models.users.get(user_id, consistent_read=True))
        if row is None:
            return problem(404, "not found", f"user {user_id!r} is unknown")
        return UserView(
            user_id=row.user_id, name=row.name, email=row.email, forgotten=bool(row.forgotten)
        )

    api.include_router(protected)
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
    from framework.store import embedded_dynamodb_store

    with embedded_dynamodb_store(table_prefix="serve") as store:
        create_read_model_tables(store)
        yield store, True


def check_binding(host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback without a token: anyone could read and forget users
    and move money."""
    if token is None and not is_loopback(host):
        raise UnsafeServing(
            f"refusing to listen on {host} without {TOKEN_ENV}: anyone who can reach it could "
            f"read and forget users and move money; set {TOKEN_ENV} or listen on 127.0.0.1"
        )


def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the API with uvicorn until interrupted: one worker process, whatever the store.

    Raises ``UnsafeServing`` before anything starts when ``host`` is not loopback and no
    ``EXAMPLE_API_TOKEN`` is set, or when the token is too short.
    """
    import uvicorn

    token = api_token_from_env()
    check_binding(host, token)
    with serving_store() as (store, embedded):
        where = store.endpoint_url or f"AWS region {store.region_name}"
        if embedded:
            where = "embedded DynamoDB (moto, in process; gone when the server stops)"
        print(f"serving on http://{host}:{port} (docs at /docs); store: {where}", flush=True)
        if token is None:
            print(
                f"no {TOKEN_ENV} set: no authentication, so listening on this machine only "
                "(loopback)",
                flush=True,
            )
        else:
            print(
                f"every endpoint but /health and the docs needs the {TOKEN_ENV} bearer token",
                flush=True,
            )
        app = create_app(store, api_token=token, serialize_requests=embedded)
        uvicorn.run(app, host=host, port=port, workers=1, log_level="warning")

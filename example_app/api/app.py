"""``create_app``: the routers, the middleware and the error handlers, put together."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncIterator
from typing import Any

import structlog
from fastapi import FastAPI, Security
from fastapi.security import HTTPBearer

from example_app.api import accounts, operations, problems, users
from example_app.api.catch_up import ReadModelCatchUp
from example_app.api.commands import CommandRunner
from example_app.api.correlation import Correlation
from example_app.api.reads import ReadModelReader
from example_app.api.schemas import MAX_BODY_BYTES
from example_app.api.security import RequestGuard, api_token_from_env, check_token
from example_app.api.work import ConcurrentWork, RequestWork, SerialGate, SerializedWork
from example_app.read_models import models_for
from example_app.wiring import build_application
from framework import DynamoDBEventStore
from framework.projections import DeadlineRunner, DynamoDBDeadlineStore

log = structlog.get_logger(__name__)

DEADLINE_INTERVAL_SECONDS = 5.0
"""How often the server fires the deadlines that fell due (the release of held withdrawals)."""


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
    ``AWS_REGION``), which is not thread-safe. The background work also fires due deadlines
    (``app.state.deadlines``, a ``DeadlineRunner``; its table must exist too).

    Commands are awaited through ``AsyncApplication``. On DynamoDB the lifespan opens an
    aiobotocore copy of ``store`` for them (``app.state.work``, a ``ConcurrentWork``); the
    projection, the reads and the background work keep ``store`` itself, in threads.
    """
    token = api_token if api_token is not None else api_token_from_env()
    if token is not None:
        check_token(token)
    # The endpoints are ``async def``: commands are awaited through the async application (see
    # ``example_app.api.work`` for what runs where, and why). The embedded moto backend is not
    # thread-safe (its transactions deep-copy tables), so on it one gate makes every piece of
    # work run alone; on DynamoDB (Local or AWS) requests run concurrently and optimistic
    # concurrency in the store keeps them correct. moto's tables live in the process's memory,
    # which is one more reason ``serve`` runs a single worker process.
    if serialize_requests is None:
        serialize_requests = store.endpoint_url is None and not os.environ.get("AWS_REGION")
    application = build_application(store)
    work: RequestWork
    lock: contextlib.AbstractContextManager[Any]
    if serialize_requests:
        gate = SerialGate()
        work, lock = SerializedWork(application, gate), gate.lock
    else:
        work, lock = ConcurrentWork(store, application), contextlib.nullcontext()
    keeper = read_models or ReadModelCatchUp(store, application=application)
    keeper.lock = lock
    if background_catch_up is None:
        background_catch_up = project_synchronously
    deadlines = DeadlineRunner(application, DynamoDBDeadlineStore(store))
    stop_firing = threading.Event()

    def fire_deadlines() -> None:
        while not stop_firing.wait(DEADLINE_INTERVAL_SECONDS):
            try:
                with lock:
                    deadlines.run_due()
            except Exception as error:  # the next round tries again
                log.error("deadlines.run_failed", error_type=type(error).__name__)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        firing = threading.Thread(target=fire_deadlines, name="deadlines", daemon=True)
        async with work.open():
            if background_catch_up:
                keeper.start()
                firing.start()
            try:
                yield
            finally:
                stop_firing.set()
                await asyncio.to_thread(keeper.stop)
                if firing.is_alive():
                    await asyncio.to_thread(firing.join)

    secured = token is not None
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
    api.state.deadlines = deadlines
    api.state.work = work
    api.state.commands = CommandRunner(work, keeper if project_synchronously else None)
    api.state.reads = ReadModelReader(models_for(store), work)
    api.add_middleware(RequestGuard, token=token, max_body=max_body_bytes)
    api.add_middleware(Correlation)  # outermost: even a refusal answers with the request's ids
    problems.install(api)

    api.include_router(operations.router)
    # Everything else needs the token when there is one: the OpenAPI description then declares
    # the bearer scheme (the /docs page's Authorize button) and the 401 answer.
    protected: dict[str, Any] = (
        {
            "dependencies": [Security(HTTPBearer(auto_error=False))],
            "responses": problems.problem_responses(401),
        }
        if secured
        else {}
    )
    api.include_router(accounts.router, **protected)
    api.include_router(users.router, **protected)
    return api

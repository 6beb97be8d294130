"""``python -m example_app serve``: the example app over HTTP (FastAPI).

Commands are POSTs; read models are GETs. Amounts travel as decimal strings ("12.50"), never as
JSON numbers, which would pass through binary floating point. An ``Idempotency-Key`` header is
bound to the command (``framework.http.bind_idempotency_key``): a retried POST gets the first
response back and writes nothing; the same key with another request is refused (409). Errors are
RFC 9457 problem documents (``application/problem+json``).

After each command the read models of the streams it changed are brought up to date before the
response (``framework.http.ReadYourWrites``), so that a client reads its own writes. That is an
optimisation, never the only path: a background catch-up (``ReadModelCatchUp``, started and
stopped with the app) retries the streams whose in-request projection failed and periodically
catches up over the events table's feed index, so a crashed process recovers too. A production
deployment runs the projectors from the events table's stream (the Streams poller or the Lambda
handler) and lets reads trail writes by a moment.

Every endpoint but ``/health`` and the docs needs ``Authorization: Bearer <EXAMPLE_API_TOKEN>``
when a token is configured; without one, ``serve`` listens on loopback only. Request bodies are
limited to ``MAX_BODY_BYTES``.

The code is in ``example_app.api``, one module per job and one router per area; this module
gathers what callers use.
"""

from __future__ import annotations

from example_app.api.app import create_app
from example_app.api.catch_up import ReadModelCatchUp, ReadModelUpdater
from example_app.api.problems import problem
from example_app.api.schemas import MAX_BODY_BYTES
from example_app.api.security import (
    MIN_TOKEN_LENGTH,
    TOKEN_ENV,
    RequestGuard,
    UnsafeServing,
    api_token_from_env,
    check_binding,
    check_token,
    is_loopback,
)
from example_app.api.serving import serve, serving_store

__all__ = [
    "MAX_BODY_BYTES",
    "MIN_TOKEN_LENGTH",
    "TOKEN_ENV",
    "ReadModelCatchUp",
    "ReadModelUpdater",
    "RequestGuard",
    "UnsafeServing",
    "api_token_from_env",
    "check_binding",
    "check_token",
    "create_app",
    "is_loopback",
    "problem",
    "serve",
    "serving_store",
]

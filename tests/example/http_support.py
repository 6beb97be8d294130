"""Serving the example app's HTTP API in tests: uvicorn on loopback, a client holding the token."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from example_app.read_models import create_read_model_tables, models_for
from framework import DynamoDBEventStore
from framework.projections import DynamoDBDeadlineStore
from framework.testing.dynamodb_local import free_port
from framework.testing.pytest_plugin import unique_prefix

TOKEN = "test-token-0123456789abcdef"
"""The bearer token the tests configure: long enough for ``check_token``."""

AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Server:
    """uvicorn serving an app in a background thread on a free loopback port.

    The app's lifespan runs (uvicorn runs it): the background read-model catch-up starts and
    stops with the server. The client sends ``headers`` (by default the test token) with every
    request.
    """

    def __init__(self, app: FastAPI, headers: dict[str, str] | None = None) -> None:
        self.app = app
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)
        self.headers = AUTH if headers is None else headers
        self.client: httpx.Client | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> httpx.Client:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self.thread.is_alive(), "uvicorn stopped while starting"
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        self.client = httpx.Client(base_url=self.base_url, timeout=30, headers=self.headers)
        return self.client

    def __exit__(self, *exc_info: object) -> None:
        if self.client is not None:
            self.client.close()
        self.server.should_exit = True
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "uvicorn did not shut down"


def delete_read_model_tables(store: DynamoDBEventStore) -> None:
    for model in models_for(store).all():
        if model.exists():
            model.delete_table()


EXTENSIONS = {"insufficient funds": {"account_id", "balance", "requested"}}
"""The problems that carry facts as extension members, by title."""


def problem_of(response: httpx.Response) -> dict[str, Any]:
    """The response's RFC 9457 problem document, checked for shape: the four members every
    problem has, and extension members only where a refusal carries its facts."""
    assert response.headers["content-type"] == "application/problem+json", response.text
    body: dict[str, Any] = response.json()
    extensions = set(body) - {"type", "title", "status", "detail"}
    assert set(body) >= {"type", "title", "status", "detail"}
    assert extensions <= EXTENSIONS.get(body["title"], set()), body
    assert body["status"] == response.status_code
    return body


def new_id(kind: str) -> str:
    """Ids unique per test run, so that the tests never depend on each other's accounts."""
    return f"{kind}-{uuid.uuid4().hex[:8]}"


CREDENTIAL_VARIABLES = frozenset(
    {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
    }
)
"""Every environment variable botocore finds credentials through."""


def without_aws_credentials(environ: dict[str, str], home: str) -> dict[str, str]:
    """``environ`` as on a machine with no AWS credentials at all: none in the environment, no
    credentials or config file (``home`` is an empty directory), no instance metadata."""
    return {k: v for k, v in environ.items() if k not in CREDENTIAL_VARIABLES} | {
        "HOME": home,
        "AWS_SHARED_CREDENTIALS_FILE": f"{home}/no-credentials",
        "AWS_CONFIG_FILE": f"{home}/no-config",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@contextlib.contextmanager
def example_tables(endpoint: str) -> Iterator[DynamoDBEventStore]:
    """An event store with the example's read-model tables, under a prefix of its own."""
    store = DynamoDBEventStore(table_prefix=unique_prefix(), endpoint_url=endpoint)
    store.create_tables()
    create_read_model_tables(store)
    deadlines = DynamoDBDeadlineStore(store)
    deadlines.create_table()
    try:
        yield store
    finally:
        store.delete_tables()
        delete_read_model_tables(store)
        deadlines.delete_table()

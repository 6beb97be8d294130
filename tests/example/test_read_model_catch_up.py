"""The read models catch up from the store: a failed in-request projection is never final.

The case that matters most: a user asks to be forgotten, the command commits, and the projection
in the request fails. The client gets 200 (the command did happen), and the directory row must
still come to read ``(erased)``, although a forgotten user never gets another command that would
project the stream again. Over real HTTP on DynamoDB Local.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from typing import Any

import httpx
import pytest

from example_app.http_api import ReadModelCatchUp, ReadModelUpdater, create_app
from example_app.read_models import ERASED
from example_app.users import ForgetUser, RegisterUser
from example_app.wiring import build_application
from framework import DynamoDBEventStore
from framework.errors import StoreUnavailable
from tests.example.http_support import (
    TOKEN,
    Server,
    example_tables,
    new_id,
)
from tests.support.timing import wait_until

pytestmark = pytest.mark.dynamodb_local


@pytest.fixture
def store(dynamodb_local_endpoint: str) -> Iterator[DynamoDBEventStore]:
    with example_tables(dynamodb_local_endpoint) as store:
        yield store


class FailsOnce(ReadModelUpdater):
    """The in-request projection of ``stream`` fails the first time once armed, as when
    DynamoDB drops the projection's transaction; every later attempt goes through."""

    def __init__(self, store: DynamoDBEventStore, stream: str) -> None:
        super().__init__(store)
        self.stream = stream
        self.armed = False
        self.failures = 0

    def catch_up(self, streams: Iterable[str]) -> None:
        streams = list(streams)
        if self.armed and self.stream in streams:
            self.armed = False
            self.failures += 1
            raise StoreUnavailable("injected: the projection's transaction was lost")
        super().catch_up(streams)


def register(http: httpx.Client) -> str:
    user = new_id("user")
    body = {"user_id": user, "name": "Fay", "email": f"{user}@example.com"}
    assert http.post("/users", json=body).status_code == 201
    assert http.get(f"/users/{user}").json()["name"] == "Fay"
    return user


def erased(http: httpx.Client, user: str) -> dict[str, Any] | None:
    row: dict[str, Any] = http.get(f"/users/{user}").json()
    return row if row["name"] == ERASED else None


def test_a_failed_projection_of_a_forget_is_retried_by_the_next_step(
    store: DynamoDBEventStore,
) -> None:
    """The background step called directly: the test decides when it runs."""
    keeper = ReadModelCatchUp(store)
    app = create_app(store, api_token=TOKEN, read_models=keeper, background_catch_up=False)
    with Server(app) as http:
        user = register(http)
        keeper.updater = failing = FailsOnce(store, f"User#{user}")
        failing.armed = True

        forgotten = http.post(f"/users/{user}/forget")
        assert forgotten.status_code == 200, forgotten.text
        assert forgotten.json()["versions"] == {f"User#{user}": 2}
        assert failing.failures == 1
        # The failure is visible until the catch-up runs: the row is still in clear...
        assert http.get(f"/users/{user}").json()["name"] == "Fay"
        assert keeper.pending == {f"User#{user}"}

        step = keeper.step(feed=False)
        assert step.retried == [f"User#{user}"] and step.still_failing == []
        assert keeper.pending == frozenset()
        assert http.get(f"/users/{user}").json() == {
            "user_id": user,
            "name": ERASED,
            "email": ERASED,
            "forgotten": True,
        }


def test_a_retry_that_fails_again_stays_pending(store: DynamoDBEventStore) -> None:
    keeper = ReadModelCatchUp(store)
    app = create_app(store, api_token=TOKEN, read_models=keeper, background_catch_up=False)
    with Server(app) as http:
        user = register(http)
        keeper.updater = failing = FailsOnce(store, f"User#{user}")
        failing.armed = True
        assert http.post(f"/users/{user}/forget").status_code == 200
        failing.armed = True  # the first retry fails too
        step = keeper.step(feed=False)
        assert step.still_failing == [f"User#{user}"] and keeper.pending == {f"User#{user}"}
        assert keeper.step(feed=False).retried == [f"User#{user}"]
        assert erased(http, user)


def test_the_served_app_catches_up_in_the_background(store: DynamoDBEventStore) -> None:
    """The app's lifespan runs the catch-up thread: nothing but time brings the row."""
    keeper = ReadModelCatchUp(store, retry_interval=0.05)
    with Server(create_app(store, api_token=TOKEN, read_models=keeper)) as http:
        user = register(http)
        keeper.updater = failing = FailsOnce(store, f"User#{user}")
        failing.armed = True
        assert http.post(f"/users/{user}/forget").status_code == 200
        assert failing.failures == 1
        row = wait_until(lambda: erased(http, user), timeout=10)
        assert row["email"] == ERASED and row["forgotten"] is True
    assert keeper._thread is None  # stopped with the app


def test_a_process_that_crashed_before_projecting_is_caught_up_over_the_feed(
    store: DynamoDBEventStore,
) -> None:
    """The commit happened, the projection never did, and the retry list died with the
    process: the next server's catch-up over the feed index brings the row at start-up."""
    user = new_id("user")
    writer = build_application(store)  # the crashed process: commands, no projection
    crashed = create_app(store, api_token=TOKEN, background_catch_up=False)
    with Server(crashed) as http:
        assert http.post(
            "/users", json={"user_id": user, "name": "Gil", "email": f"{user}@example.com"}
        ).is_success
        writer.handle(ForgetUser(user_id=user))
        assert http.get(f"/users/{user}").json()["name"] == "Gil"
    restarted = ReadModelCatchUp(store, safety_window=dt.timedelta(0))
    with Server(create_app(store, api_token=TOKEN, read_models=restarted)) as http:
        row = wait_until(lambda: erased(http, user), timeout=10)
        assert row["forgotten"] is True


def test_a_feed_step_projects_every_stream_nobody_projected(store: DynamoDBEventStore) -> None:
    writer = build_application(store)
    users = [new_id("user") for _ in range(3)]
    for user in users:
        writer.handle(RegisterUser(user_id=user, name="H", email=f"{user}@example.com"))
    writer.handle(ForgetUser(user_id=users[0]))
    keeper = ReadModelCatchUp(store, safety_window=dt.timedelta(0))
    report = keeper.step(feed=True).feed
    assert report is not None and report.applied >= 4
    app = create_app(store, api_token=TOKEN, read_models=keeper, background_catch_up=False)
    with Server(app) as http:
        assert erased(http, users[0])
        assert [http.get(f"/users/{u}").json()["name"] for u in users[1:]] == ["H", "H"]

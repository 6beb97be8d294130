"""framework.http: idempotency keys bound to commands, and read-your-writes, without a web app."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections.abc import Iterable
from decimal import Decimal

import pytest

from framework import Application, InMemoryEventStore, Projector
from framework.application import CommandResult
from framework.errors import CommandIdReused, StoreUnavailable
from framework.http import (
    MAX_IDEMPOTENCY_KEY_LENGTH,
    InvalidIdempotencyKey,
    ReadYourWrites,
    StreamProjection,
    bind_idempotency_key,
    check_repeat,
)
from framework.store import InMemoryPositionStore
from framework.testing.bank import Account, Deposit, OpenAccount, Transfer, transfer
from tests.support.projectors import Balances


@pytest.fixture
def app() -> Application:
    return Application(store=InMemoryEventStore(), aggregates=[Account], handlers=[transfer])


def test_a_key_becomes_the_command_id_and_no_key_leaves_the_command_alone() -> None:
    command = Deposit(account_id="a", amount=Decimal(1))
    assert bind_idempotency_key(command, None) is command
    bound = bind_idempotency_key(command, "key-1")
    assert bound.command_id == "key-1"
    assert (bound.account_id, bound.amount) == ("a", Decimal(1))


def test_a_scope_keeps_two_callers_keys_apart() -> None:
    command = Deposit(account_id="a", amount=Decimal(1))
    ann = bind_idempotency_key(command, "key-1", scope="ann")
    bob = bind_idempotency_key(command, "key-1", scope="bob")
    assert ann.command_id != bob.command_id
    assert ann.command_id.endswith(":key-1")
    assert bind_idempotency_key(command, "key-1", scope="ann").command_id == ann.command_id


@pytest.mark.parametrize(
    "key", ["", " key", "key\n", "a\x00b", "k" * (MAX_IDEMPOTENCY_KEY_LENGTH + 1)]
)
def test_a_key_that_cannot_be_a_command_id_is_refused(key: str) -> None:
    with pytest.raises(InvalidIdempotencyKey):
        bind_idempotency_key(Deposit(account_id="a", amount=Decimal(1)), key)


def test_same_key_same_command_is_the_first_result_and_another_payload_is_refused(
    app: Application,
) -> None:
    app.handle(OpenAccount(account_id="a", owner="Ann"))
    app.handle(OpenAccount(account_id="b", owner="Bob"))
    first = app.handle(bind_idempotency_key(Deposit(account_id="a", amount=Decimal(5)), "k"))
    again = app.handle(bind_idempotency_key(Deposit(account_id="a", amount=Decimal(5)), "k"))
    assert again.duplicate and again.versions == first.versions
    check_repeat(again, ["Account#a"])
    with pytest.raises(CommandIdReused):  # another target
        app.handle(bind_idempotency_key(Deposit(account_id="b", amount=Decimal(5)), "k"))
    with pytest.raises(CommandIdReused):  # another amount
        app.handle(bind_idempotency_key(Deposit(account_id="a", amount=Decimal(6)), "k"))
    with pytest.raises(CommandIdReused):  # another command type
        app.handle(
            bind_idempotency_key(Transfer(source_id="a", target_id="b", amount=Decimal(5)), "k")
        )


def test_check_repeat_refuses_a_repeat_whose_first_run_changed_other_streams() -> None:
    # What a command record without a payload fingerprint (stored before they were) yields.
    first_elsewhere = CommandResult(
        command_id="k", change_set_id="cs", versions={"Account#b": 2}, duplicate=True
    )
    with pytest.raises(CommandIdReused):
        check_repeat(first_elsewhere, ["Account#a"])
    same = CommandResult(
        command_id="k", change_set_id="cs", versions={"Account#a": 2}, duplicate=True
    )
    assert check_repeat(same, ["Account#a"]) is same
    fresh = CommandResult(command_id="k", change_set_id="cs", versions={"Account#b": 2})
    assert check_repeat(fresh, ["Account#a"]) is fresh  # not a repeat: nothing to compare


class Flaky(StreamProjection):
    """Fails the next ``failures`` catch-ups, as when DynamoDB drops the projection's write."""

    failures = 0

    def catch_up(self, streams: Iterable[str]) -> None:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("injected")
        super().catch_up(streams)


def _read_your_writes(app: Application) -> tuple[ReadYourWrites, list[Balances]]:
    made: list[Balances] = []

    def projectors() -> list[Projector]:
        made.append(Balances())
        return [made[-1]]

    keeper = ReadYourWrites(
        app.store, InMemoryPositionStore(), projectors, safety_window=dt.timedelta(0)
    )
    return keeper, made


def test_the_read_model_holds_the_write_when_after_returns(app: Application) -> None:
    keeper, made = _read_your_writes(app)
    assert keeper.after(app.handle(OpenAccount(account_id="a", owner="Ann")))
    assert keeper.after(app.handle(Deposit(account_id="a", amount=Decimal(7))))
    in_request = made[-1]  # the runner's projector comes first; the request's is built on use
    assert in_request.balances == {"a": Decimal(7)}
    assert keeper.pending == frozenset()


def test_a_failed_projection_is_retried_by_a_step_and_the_feed_brings_the_rest(
    app: Application,
) -> None:
    positions = InMemoryPositionStore()
    projector = Balances()
    keeper = ReadYourWrites(
        app.store, positions, lambda: [projector], safety_window=dt.timedelta(0)
    )
    keeper.updater = flaky = Flaky(app.store, positions, lambda: [projector])
    flaky.failures = 1
    assert not keeper.after(app.handle(OpenAccount(account_id="a", owner="Ann")))
    assert keeper.pending == {"Account#a"} and projector.balances == {}
    flaky.failures = 1
    step = keeper.step(feed=False)
    assert step.still_failing == ["Account#a"] and keeper.pending == {"Account#a"}
    step = keeper.step(feed=False)
    assert step.retried == ["Account#a"] and keeper.pending == frozenset()
    assert projector.balances == {"a": Decimal(0)}
    # A commit nobody projected in the request (a crash after the commit): the feed brings it.
    app.handle(Deposit(account_id="a", amount=Decimal(3)))
    report = keeper.step(feed=True).feed
    assert report is not None and projector.balances == {"a": Decimal(3)}


def test_the_background_thread_starts_and_stops(app: Application) -> None:
    keeper, _ = _read_your_writes(app)
    keeper.retry_interval = 0.01
    keeper.start()
    assert keeper.running
    keeper.stop()
    assert not keeper.running


def test_framework_http_imports_no_web_framework_and_no_aws_sdk() -> None:
    # (botocore comes with PynamoDB, which the projection engine's read-model writes use.)
    heavy = "{'fastapi', 'starlette', 'pydantic', 'boto3'}"
    code = f"import sys, framework.http; print(sorted({heavy} & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"

"""Held withdrawals: the rule in the account, the release by a deadline, the confirmation over
HTTP. Time is driven (events given at a set time, deadlines run at a given ``now``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI

from example_app.bank import (
    HOLD_FOR,
    Account,
    ConfirmWithdrawal,
    DepositMoney,
    HoldReleased,
    InsufficientFunds,
    MoneyWithdrawn,
    OpenAccount,
    ReleaseHold,
    TransferMoney,
    UnknownHold,
    WithdrawalConfirmed,
    WithdrawalHeld,
    WithdrawMoney,
)
from example_app.money import Money
from example_app.processes import WithdrawalHolds
from example_app.wiring import build_application
from framework import Application, DynamoDBEventStore, InMemoryEventStore
from framework.projections import (
    CancelResult,
    DeadlineRunner,
    DeadlineStatus,
    InMemoryDeadlineStore,
    ProjectionEngine,
)
from framework.store import InMemoryPositionStore
from framework.testing import ProcessManagerScenario, ScenarioFailed
from tests.example.http_support import TOKEN as API_TOKEN
from tests.example.http_support import Server


@pytest.fixture
def app() -> Application:
    application = build_application(InMemoryEventStore())
    application.handle(OpenAccount(account_id="a", owner="Ann"))
    application.handle(OpenAccount(account_id="b", owner="Ben"))
    application.handle(DepositMoney(account_id="a", amount=Decimal(3000)))
    return application


def test_a_large_withdrawal_is_held_and_the_money_reserved(app: Application) -> None:
    small = app.handle(WithdrawMoney(account_id="a", amount=Decimal(1000)))
    assert [type(e) for e in small.events] == [MoneyWithdrawn]  # the threshold itself: paid
    held = app.handle(WithdrawMoney(account_id="a", amount=Decimal("1500.50")))
    assert held.events == (WithdrawalHeld(hold_id="hold-4", amount=Money("1500.50")),)
    account = app.get(Account, "a")
    assert account.balance == Money(2000) and account.available == Money("499.50")
    with pytest.raises(InsufficientFunds) as refused:
        app.handle(WithdrawMoney(account_id="a", amount=Decimal(500)))
    assert refused.value.balance == Money("499.50")
    with pytest.raises(InsufficientFunds):
        app.handle(TransferMoney(source_account_id="a", target_account_id="b", amount=Money(500)))
    confirmed = app.handle(ConfirmWithdrawal(account_id="a", hold_id="hold-4"))
    assert confirmed.events == (
        WithdrawalConfirmed(hold_id="hold-4"),
        MoneyWithdrawn(amount=Money("1500.50")),
    )
    account = app.get(Account, "a")
    assert account.balance == account.available == Money("499.50")
    with pytest.raises(UnknownHold):
        app.handle(ConfirmWithdrawal(account_id="a", hold_id="hold-4"))
    with pytest.raises(UnknownHold):
        app.handle(ReleaseHold(account_id="a", hold_id="hold-4"))


def test_a_released_hold_gives_the_money_back(app: Application) -> None:
    app.handle(WithdrawMoney(account_id="a", amount=Decimal(2000)))
    released = app.handle(ReleaseHold(account_id="a", hold_id="hold-3"))
    assert released.events == (HoldReleased(hold_id="hold-3"),)
    assert app.get(Account, "a").available == Money(3000)
    with pytest.raises(UnknownHold):
        app.handle(ConfirmWithdrawal(account_id="a", hold_id="hold-3"))


# -- the process manager, with the testing kit ------------------------------------------------

T0 = dt.datetime(2030, 1, 1, 9, 0, tzinfo=dt.UTC)


def test_the_manager_schedules_the_release_and_cancels_it_on_confirmation() -> None:
    with ProcessManagerScenario(WithdrawalHolds(), now=T0) as holds:
        holds.given(Account, "a", WithdrawalHeld(hold_id="hold-2", amount=Money(1500)))
        deadline_id = holds.then_scheduled(
            ReleaseHold(account_id="a", hold_id="hold-2"), at=T0 + HOLD_FOR
        )
        assert deadline_id == WithdrawalHolds.deadline_id(("a", "hold-2"))
        holds.then_nothing_issued()
        holds.redeliver()
        assert len(holds.scheduled) == 1
        assert [d.deadline_id for d in holds.due(T0 + HOLD_FOR)] == [deadline_id]
        holds.advance(dt.timedelta(minutes=3))
        holds.given(Account, "a", WithdrawalConfirmed(hold_id="hold-2"))
        assert holds.then_cancelled(deadline_id) is CancelResult.CANCELLED
        assert holds.due(T0 + HOLD_FOR) == []
        with pytest.raises(ScenarioFailed):
            holds.then_scheduled(ReleaseHold(account_id="a", hold_id="hold-9"), at=T0)


def test_an_unconfirmed_hold_is_released_after_fifteen_minutes(app: Application) -> None:
    deadlines = InMemoryDeadlineStore()
    engine = ProjectionEngine(
        WithdrawalHolds(app, deadlines=deadlines),
        app.store,
        InMemoryPositionStore(),
        mapper=app.mapper,
    )
    app.handle(WithdrawMoney(account_id="a", amount=Decimal(2500)))
    app.handle(WithdrawMoney(account_id="a", amount=Decimal(500)))  # paid, never held
    engine.apply(list(app.store.read_feed()))
    (deadline,) = deadlines.list()
    held_at = app.store.load_events("Account", "a", 2)[0].occurred_at
    assert deadline.due_at == held_at + HOLD_FOR
    runner = DeadlineRunner(app, deadlines)
    assert runner.run_due(held_at + HOLD_FOR - dt.timedelta(seconds=1)).fired == 0
    assert runner.run_due(held_at + HOLD_FOR).fired == 1
    account = app.get(Account, "a")
    assert account.holds == {} and account.balance == account.available == Money(2500)
    engine.apply(list(app.store.read_feed()))  # the release is followed too: nothing more
    assert len(deadlines.list()) == 1


# -- over HTTP, on DynamoDB Local ---------------------------------------------------------------


@pytest.fixture(scope="module")
def served(example_store: DynamoDBEventStore) -> Iterator[tuple[FastAPI, httpx.Client]]:
    from example_app.http_api import create_app

    api = create_app(example_store, api_token=API_TOKEN, background_catch_up=False)
    with Server(api) as client:
        yield api, client


@pytest.mark.dynamodb_local
def test_confirm_over_http_and_release_by_the_deadline(
    served: tuple[FastAPI, httpx.Client], example_store: DynamoDBEventStore
) -> None:
    from framework.projections import DynamoDBDeadlineStore

    api, http = served
    account = f"hold-{dt.datetime.now(dt.UTC).timestamp()}"
    assert http.post("/accounts", json={"account_id": account, "owner": "Hal"}).is_success
    http.post(f"/accounts/{account}/deposits", json={"amount": "5000"})
    held = http.post(f"/accounts/{account}/withdrawals", json={"amount": "1500"})
    assert held.status_code == 200, held.text
    hold_id = f"hold-{held.json()['versions'][f'Account#{account}']}"
    assert http.get(f"/accounts/{account}").json()["balance"] == "5000.00"  # only held
    deadlines = DynamoDBDeadlineStore(example_store)
    release_id = WithdrawalHolds.deadline_id((account, hold_id))
    scheduled = deadlines.get(release_id)  # scheduled in the request, with the read models
    assert scheduled is not None and scheduled.status is DeadlineStatus.PENDING

    confirmed = http.post(f"/accounts/{account}/withdrawals/{hold_id}/confirm")
    assert confirmed.status_code == 200, confirmed.text
    assert http.get(f"/accounts/{account}").json()["balance"] == "3500.00"
    cancelled = deadlines.get(release_id)
    assert cancelled is not None and cancelled.status is DeadlineStatus.CANCELLED
    again = http.post(f"/accounts/{account}/withdrawals/{hold_id}/confirm")
    assert again.status_code == 422

    second = http.post(f"/accounts/{account}/withdrawals", json={"amount": "2000"})
    second_hold = f"hold-{second.json()['versions'][f'Account#{account}']}"
    pending = deadlines.get(WithdrawalHolds.deadline_id((account, second_hold)))
    assert pending is not None
    runner: DeadlineRunner = api.state.deadlines
    runner.run_due(pending.due_at - dt.timedelta(seconds=1))
    assert http.post(f"/accounts/{account}/withdrawals", json={"amount": "1600"}).status_code == 422
    runner.run_due(pending.due_at)
    fired = deadlines.get(pending.deadline_id)
    assert fired is not None and fired.status is DeadlineStatus.FIRED
    late = http.post(f"/accounts/{account}/withdrawals/{second_hold}/confirm")
    assert late.status_code == 422 and "no hold" in late.json()["detail"]
    assert http.post(f"/accounts/{account}/withdrawals", json={"amount": "900"}).is_success
    assert http.get(f"/accounts/{account}").json()["balance"] == "2600.00"


@pytest.mark.dynamodb_local
def test_built_without_arguments_it_takes_the_application_from_the_settings(
    example_store: DynamoDBEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the Lambda handler and the command line build it: ``PROJECTORS`` names the class,
    ``APPLICATION`` the factory, the settings the store; deadlines go to its table."""
    from framework.projections import CatchUpRunner, DynamoDBDeadlineStore
    from framework.projections.aws_lambda import load_projectors
    from framework.store import DynamoDBPositionStore

    assert example_store.endpoint_url is not None
    monkeypatch.setenv("DYNAMO_ENDPOINT", example_store.endpoint_url)
    monkeypatch.setenv("DYNAMO_TABLE_PREFIX", example_store.tables.prefix)
    monkeypatch.setenv("APPLICATION", "example_app.wiring:build_application")
    app = build_application(example_store)
    account = f"lambda-{dt.datetime.now(dt.UTC).timestamp()}"
    app.handle(OpenAccount(account_id=account, owner="Lou"))
    app.handle(DepositMoney(account_id=account, amount=Decimal(4000)))
    app.handle(WithdrawMoney(account_id=account, amount=Decimal(3000)))
    (manager,) = load_projectors("example_app.processes:WithdrawalHolds")
    CatchUpRunner(example_store, DynamoDBPositionStore(example_store), [manager]).run(
        until=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    )
    found = DynamoDBDeadlineStore(example_store).get(
        WithdrawalHolds.deadline_id((account, "hold-3"))
    )
    assert found is not None and found.command_type == "ReleaseHold"

"""framework.testing: scenarios pass when they should and fail, clearly, when they should."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest

from framework import DomainError, InMemoryEventStore
from framework.errors import AggregateNotFound
from framework.testing import ScenarioFailed, scenario
from framework.testing.bank import (
    Account,
    AccountOpened,
    Currency,
    Deposit,
    Deposited,
    OpenAccount,
    Transfer,
    Withdraw,
    Withdrawn,
    transfer,
)


def opened(owner: str) -> AccountOpened:
    """The event OpenAccount emits in the test bank (fixed time and reference)."""
    return AccountOpened(
        owner=owner,
        currency=Currency.EUR,
        opened_at=dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC),
        reference=uuid.UUID(int=42),
    )


OPENED = opened("Ann")


def test_then_checks_the_emitted_events() -> None:
    result = (
        scenario(Account)
        .given(OPENED, Deposited(amount=Decimal(10)))
        .when(Withdraw(account_id="a", amount=Decimal(4)))
        .then(Withdrawn(amount=Decimal(4)))
    )
    assert result.version == 3


def test_then_fails_on_other_events() -> None:
    run = scenario(Account).given(OPENED).when(Deposit(account_id="a", amount=Decimal(1)))
    with pytest.raises(ScenarioFailed, match="expected events"):
        run.then(Deposited(amount=Decimal(2)))


def test_then_raises_checks_type_and_message() -> None:
    run = scenario(Account).given(OPENED).when(Withdraw(account_id="a", amount=Decimal(1)))
    run.then_raises(DomainError, match="insufficient funds")
    with pytest.raises(ScenarioFailed, match="does not match"):
        run.then_raises(DomainError, match="closed")
    with pytest.raises(ScenarioFailed, match="expected AggregateNotFound, but got DomainError"):
        run.then_raises(AggregateNotFound)
    with pytest.raises(ScenarioFailed, match="but the command raised DomainError"):
        run.then(Withdrawn(amount=Decimal(1)))


def test_then_raises_fails_when_the_command_succeeds() -> None:
    run = scenario(Account).given(OPENED).when(Deposit(account_id="a", amount=Decimal(1)))
    with pytest.raises(ScenarioFailed, match="expected DomainError, but the command emitted"):
        run.then_raises(DomainError)


def test_creation_with_no_history() -> None:
    scenario(Account).when(OpenAccount(account_id="new", owner="Bo")).then(opened("Bo"))


def test_multi_aggregate_handlers_with_given_stream() -> None:
    run = (
        scenario(Account, handlers=[transfer])
        .given_stream(Account, "a", OPENED, Deposited(amount=Decimal(10)))
        .given_stream(Account, "b", OPENED)
        .when(Transfer(source_id="a", target_id="b", amount=Decimal(3)))
    )
    run.then(Withdrawn(amount=Decimal(3)), Deposited(amount=Decimal(3)))
    assert run.aggregate(Account, "b").balance == Decimal(3)


def test_plugin_fixture_gives_a_fresh_store(event_store: InMemoryEventStore) -> None:
    assert event_store.load_events("Account", "a") == []


def test_scenarios_work_with_personal_data() -> None:
    from example_app.users import ForgetUser, RegisterUser, User, UserForgotten, UserRegistered

    scenario(User).when(RegisterUser(user_id="u", name="Ann", email="Ann@Example.org")).then(
        UserRegistered(name="Ann", email="ann@example.org")
    )
    run = scenario(User).given(UserRegistered(name="Ann", email="ann@example.org"))
    run.when(ForgetUser(user_id="u")).then(UserForgotten())

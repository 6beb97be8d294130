"""The projector test kit: given events, then the read model holds this, without DynamoDB."""

from __future__ import annotations

from decimal import Decimal

import pytest

from example_app.bank import (
    UPCASTERS,
    AccountClosed,
    AccountOpened,
    MoneyDeposited,
    MoneyWithdrawn,
)
from example_app.read_models import (
    ERASED,
    AccountBalance,
    AccountBalances,
    UserDirectory,
    UserEntry,
)
from example_app.users import UserForgotten, UserRegistered
from framework.testing import ProjectorScenario, ScenarioFailed
from framework.testing.bank import Deposited
from tests.support.projectors import Balances


def test_a_read_model_projector_in_memory() -> None:
    with ProjectorScenario(AccountBalances(), upcasters=UPCASTERS) as scenario:
        scenario.given(
            "Account",
            "a",
            AccountOpened(owner="Ann"),
            MoneyDeposited(amount=Decimal("10.50")),
            MoneyWithdrawn(amount=Decimal("0.25")),
        )
        scenario.given("Account", "b", AccountOpened(owner="Bob"))
        scenario.given("Account", "a", AccountClosed())

        row = scenario.row(AccountBalance, "a")
        assert row is not None
        assert (row.owner, row.balance, row.closed, row.version) == (
            "Ann",
            Decimal("10.25"),
            True,
            4,
        )
        assert sorted(r.account_id for r in scenario.rows(AccountBalance)) == ["a", "b"]
        assert scenario.row(AccountBalance, "nobody") is None
        redelivered = scenario.redeliver()  # as after a crash: nothing applied twice
        assert redelivered.applied == 0 and redelivered.skipped == 5
        again = scenario.row(AccountBalance, "a")
        assert again is not None and again.attribute_values == row.attribute_values
        assert scenario.parked() == []


def test_personal_fields_are_read_and_erased(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DYNAMO_ENDPOINT", "http://127.0.0.1:9")  # never called: the kit's keys
    with ProjectorScenario(UserDirectory()) as scenario:
        scenario.given("User", "u1", UserRegistered(name="Ann", email="ann@example.org"))
        entry = scenario.row(UserEntry, "u1")
        assert entry is not None and entry.email == "ann@example.org"
        scenario.given("User", "u1", UserForgotten())
        entry = scenario.row(UserEntry, "u1")
        assert entry is not None and (entry.name, entry.forgotten) == (ERASED, True)


def test_a_projector_keeping_its_own_state() -> None:
    projector = Balances()
    scenario = ProjectorScenario(projector)
    scenario.given("Account", "a", Deposited(amount=Decimal(2)))
    assert projector.balances == {} and scenario.parked() == ["Account#a@1: KeyError: 'a'"]
    with pytest.raises(ScenarioFailed, match="declares no read models"):
        scenario.rows(AccountBalance)

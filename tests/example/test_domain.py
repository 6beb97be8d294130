"""The example app's business rules, on the in-memory store."""

from __future__ import annotations

from decimal import Decimal

import pytest

from example_app.bank import (
    Account,
    CloseAccount,
    DepositMoney,
    OpenAccount,
    TransferMoney,
    WithdrawMoney,
)
from example_app.users import ChangeEmail, ForgetUser, RegisterUser, User
from example_app.wiring import build_application
from framework import Application, DomainError, InMemoryEventStore
from framework.encryption import ERASED
from framework.errors import SubjectForgotten, UniqueConstraintViolated


@pytest.fixture
def app() -> Application:
    application = build_application(InMemoryEventStore())
    application.handle(OpenAccount(account_id="a", owner="Ann"))
    application.handle(OpenAccount(account_id="b", owner="Ben"))
    application.handle(DepositMoney(account_id="a", amount=Decimal(50)))
    return application


def test_no_overdraft(app: Application) -> None:
    with pytest.raises(DomainError, match="insufficient funds"):
        app.handle(WithdrawMoney(account_id="a", amount=Decimal("50.01")))
    with pytest.raises(DomainError, match="insufficient funds"):
        app.handle(TransferMoney(source_account_id="a", target_account_id="b", amount=Decimal(51)))
    assert app.get(Account, "b").balance == 0


@pytest.mark.parametrize("amount", [Decimal(0), Decimal(-1)])
def test_amounts_must_be_positive(app: Application, amount: Decimal) -> None:
    with pytest.raises(DomainError, match="must be positive"):
        app.handle(DepositMoney(account_id="a", amount=amount))


def test_close_only_at_zero_and_closed_accounts_refuse_money(app: Application) -> None:
    with pytest.raises(DomainError, match="still holds 50"):
        app.handle(CloseAccount(account_id="a"))
    app.handle(CloseAccount(account_id="b"))
    with pytest.raises(DomainError, match="is closed"):
        app.handle(DepositMoney(account_id="b", amount=Decimal(1)))
    with pytest.raises(DomainError, match="is closed"):
        app.handle(TransferMoney(source_account_id="a", target_account_id="b", amount=Decimal(1)))
    assert app.get(Account, "a").balance == Decimal(50)


def test_transfer_to_the_same_account_is_refused(app: Application) -> None:
    with pytest.raises(DomainError, match="the same"):
        app.handle(TransferMoney(source_account_id="a", target_account_id="a", amount=Decimal(1)))


def test_emails_are_unique_case_insensitively_and_move_with_changes(app: Application) -> None:
    app.handle(RegisterUser(user_id="u1", name="Una", email="Una@Example.com "))
    with pytest.raises(UniqueConstraintViolated):
        app.handle(RegisterUser(user_id="u2", name="Ulf", email="una@example.COM"))
    app.handle(ChangeEmail(user_id="u1", email="una@example.org"))
    app.handle(RegisterUser(user_id="u2", name="Ulf", email="una@example.com"))
    with pytest.raises(UniqueConstraintViolated):
        app.handle(ChangeEmail(user_id="u2", email="UNA@example.org"))
    assert app.get(User, "u1").email == "una@example.org"


def test_forgetting_a_user_erases_the_state_and_frees_the_email(app: Application) -> None:
    app.handle(RegisterUser(user_id="u1", name="Una", email="una@example.com"))
    app.handle(ForgetUser(user_id="u1"))
    user = app.get(User, "u1")
    assert (user.name, user.email, user.forgotten, user.version) == (None, None, True, 2)
    app.handle(RegisterUser(user_id="u2", name="Ulf", email="una@example.com"))
    with pytest.raises(DomainError, match="was forgotten"):
        app.handle(ChangeEmail(user_id="u1", email="x@example.com"))


def test_forgetting_a_user_erases_their_name_from_their_accounts(app: Application) -> None:
    app.handle(RegisterUser(user_id="u7", name="Ursula", email="ursula@example.com"))
    app.handle(OpenAccount(account_id="acc-u7", owner="Ursula", owner_id="u7"))
    app.handle(OpenAccount(account_id="acc-own", owner="Otto"))  # no user: the account's own
    app.handle(DepositMoney(account_id="acc-u7", amount=Decimal(5)))
    app.handle(ForgetUser(user_id="u7"))
    account = app.get(Account, "acc-u7")
    assert (account.owner, account.owner_id, account.balance) == (ERASED, "u7", Decimal(5))
    assert app.get(Account, "acc-own").owner == "Otto"
    with pytest.raises(SubjectForgotten):  # no new personal data of a forgotten user
        app.handle(OpenAccount(account_id="acc-u7-2", owner="Ursula", owner_id="u7"))


@pytest.mark.parametrize("email", ["", "no-at-sign", "a@b", "@example.com"])
def test_malformed_emails_are_refused(app: Application, email: str) -> None:
    with pytest.raises(DomainError, match="not an email address"):
        app.handle(RegisterUser(user_id="u9", name="X", email=email))

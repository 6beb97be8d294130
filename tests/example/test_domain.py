"""The example app's business rules, on the in-memory store."""

from __future__ import annotations

from decimal import Decimal

import pytest

from example_app.bank import (
    Account,
    AccountClosedError,
    AccountNotEmpty,
    CloseAccount,
    DepositMoney,
    InsufficientFunds,
    MoneyDeposited,
    MoneyWithdrawn,
    OpenAccount,
    TransferMoney,
    WithdrawMoney,
)
from example_app.money import InvalidAmount, Money
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
    assert app.get(Account, "b").balance == Money(0)


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
    assert app.get(Account, "a").balance == Money(50)


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
    assert (account.owner, account.owner_id, account.balance) == (ERASED, "u7", Money(5))
    assert app.get(Account, "acc-own").owner == "Otto"
    with pytest.raises(SubjectForgotten):  # no new personal data of a forgotten user
        app.handle(OpenAccount(account_id="acc-u7-2", owner="Ursula", owner_id="u7"))


@pytest.mark.parametrize("email", ["", "no-at-sign", "a@b", "@example.com"])
def test_malformed_emails_are_refused(app: Application, email: str) -> None:
    with pytest.raises(DomainError, match="not an email address"):
        app.handle(RegisterUser(user_id="u9", name="X", email=email))


# -- typed refusals: callers act on the type and its facts, not on the message --------------


def test_an_overdraft_is_insufficient_funds_with_its_facts(app: Application) -> None:
    with pytest.raises(InsufficientFunds) as raised:
        app.handle(WithdrawMoney(account_id="a", amount=Decimal("50.01")))
    assert (raised.value.account_id, raised.value.balance, raised.value.requested) == (
        "a",
        Money(50),
        Money("50.01"),
    )
    with pytest.raises(InsufficientFunds) as raised:  # the transfer's debit: the same rule
        app.handle(TransferMoney(source_account_id="b", target_account_id="a", amount=1))
    assert (raised.value.account_id, raised.value.balance) == ("b", Money(0))


def test_closing_and_closed_accounts_refuse_with_their_own_types(app: Application) -> None:
    with pytest.raises(AccountNotEmpty) as not_empty:
        app.handle(CloseAccount(account_id="a"))
    assert not_empty.value.balance == Money(50)
    app.handle(CloseAccount(account_id="b"))
    with pytest.raises(AccountClosedError) as closed:  # the transfer's credit: the same rule
        app.handle(TransferMoney(source_account_id="a", target_account_id="b", amount=1))
    assert closed.value.account_id == "b"


def test_a_transfer_moves_money_with_the_accounts_own_methods(app: Application) -> None:
    result = app.handle(TransferMoney(source_account_id="a", target_account_id="b", amount="12.5"))
    assert [type(event) for event in result.events] == [MoneyWithdrawn, MoneyDeposited]
    assert app.get(Account, "a").balance == Money("37.50")
    assert app.get(Account, "b").balance == Money("12.5")


# -- Money ----------------------------------------------------------------------------------


def test_money_is_exact_and_compares_by_amount() -> None:
    assert Money("12.50") == Money(Decimal("12.5")) == Money(Decimal("12.50"))
    assert Money("0.10") + Money("0.20") == Money("0.30")
    assert Money(10) - Money("0.01") == Money("9.99")
    assert Money(1) < Money("1.01") and Money.zero().is_zero and str(Money("7.50")) == "7.50"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("-1", "positive or zero"),
        ("0.001", "decimal places"),
        ("NaN", "finite"),
        ("Infinity", "finite"),
        ("ten", "number"),
        (1.5, "Decimal, an int or a decimal string"),
        (True, "Decimal, an int or a decimal string"),
    ],
)
def test_money_refuses_what_is_not_an_amount(value: object, reason: str) -> None:
    with pytest.raises(InvalidAmount, match=reason):
        Money(value)  # type: ignore[arg-type]  # what a caller ignoring the types could pass
    assert issubclass(InvalidAmount, DomainError)  # a refusal like any business rule


def test_a_difference_below_zero_is_refused() -> None:
    with pytest.raises(InvalidAmount):
        Money(1) - Money(2)


def test_commands_and_events_take_money_or_plain_amounts() -> None:
    assert DepositMoney(account_id="a", amount=Decimal("5")).amount == Money(5)
    assert DepositMoney(account_id="a", amount="5.00").amount == Money(5)
    assert MoneyDeposited(amount=Money(5)).amount == Money(5)
    with pytest.raises(InvalidAmount):
        DepositMoney(account_id="a", amount="-5")

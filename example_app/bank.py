"""The bank domain: accounts that can be opened, credited, debited, closed, and transfers.

Rules worth copying: every business rule lives in a method of the aggregate (``deposit``,
``withdraw``, ``close``) and refuses with a ``DomainError`` subclass that carries its facts
(``InsufficientFunds``: the account, its balance, the amount asked), so that callers act on the
type and the attributes, never on the message; command handlers only unpack their command and call
those methods; state changes only in ``@event_handler`` methods; amounts are ``Money``. A transfer
touches two accounts and so is a plain function handler, committed as one transaction, that calls
the same domain methods on both accounts. An account's owner name is personal data of the
user who holds the account: it is stored encrypted with that user's key, and forgetting the user
erases it from the account too.

A cash withdrawal above ``HOLD_THRESHOLD`` is not paid at once: the money is held
(``WithdrawalHeld``, with a hold id) until the owner confirms it (``ConfirmWithdrawal``); held money
cannot be spent twice. Unconfirmed after ``HOLD_FOR`` the hold is released (``ReleaseHold``): that
rule spans time, so it is a process manager's (``example_app.processes``), which schedules the
release as a deadline and cancels it on confirmation.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from attrs import field, frozen

from example_app.money import Money, money
from framework import (
    Aggregate,
    Command,
    DomainError,
    Event,
    UnitOfWork,
    command_handler,
    event_handler,
    subject_of,
    upcaster,
)
from framework.mapping import Upcaster

# -- commands ------------------------------------------------------------------------------


@frozen
class OpenAccount(Command, target="account_id", personal=("owner",)):
    """Open an account for ``owner`` (a name), held by the user ``owner_id`` when given."""

    account_id: str
    owner: str
    owner_id: str | None = None


@frozen
class DepositMoney(Command, target="account_id"):
    account_id: str
    amount: Money = field(converter=money)


@frozen
class WithdrawMoney(Command, target="account_id"):
    account_id: str
    amount: Money = field(converter=money)


@frozen
class ConfirmWithdrawal(Command, target="account_id"):
    """The owner confirms a held withdrawal: the money leaves the account."""

    account_id: str
    hold_id: str


@frozen
class ReleaseHold(Command, target="account_id"):
    """Give held money back to the balance (an unconfirmed withdrawal, after ``HOLD_FOR``)."""

    account_id: str
    hold_id: str


@frozen
class CloseAccount(Command, target="account_id"):
    account_id: str


@frozen
class TransferMoney(Command):
    source_account_id: str
    target_account_id: str
    amount: Money = field(converter=money)


# -- events --------------------------------------------------------------------------------


@frozen
class AccountOpened(Event, personal={"owner": subject_of("User", field="owner_id")}):
    """The owner's name is personal data of the user who holds the account (of the account
    itself when no user is named): forgetting that user erases it here too."""

    owner: str
    owner_id: str | None = None


@frozen
class MoneyDeposited(Event, version=2):
    """Version 1 stored the amount as a bare decimal string (see ``_amount_as_money``)."""

    amount: Money = field(converter=money)


@frozen
class MoneyWithdrawn(Event, version=2):
    """Version 1 stored the amount as a bare decimal string (see ``_amount_as_money``)."""

    amount: Money = field(converter=money)


@frozen
class AccountClosed(Event):
    pass


@frozen
class WithdrawalHeld(Event):
    """A withdrawal above ``HOLD_THRESHOLD``, held until confirmed: ``amount`` is reserved."""

    hold_id: str
    amount: Money = field(converter=money)


@frozen
class WithdrawalConfirmed(Event):
    """The held withdrawal was confirmed; a ``MoneyWithdrawn`` of its amount follows it."""

    hold_id: str


@frozen
class HoldReleased(Event):
    """The held amount is available again; nothing left the account."""

    hold_id: str


# -- refusals: the facts as attributes, for callers that act on them ------------------------


class InsufficientFunds(DomainError):
    """A withdrawal (or the debit of a transfer) larger than the balance: no overdraft."""

    def __init__(self, account_id: str, balance: Money, requested: Money) -> None:
        super().__init__(
            f"insufficient funds in {account_id}: balance {balance}, asked {requested}"
        )
        self.account_id = account_id
        self.balance = balance
        self.requested = requested


class AccountClosedError(DomainError):
    """Money cannot move in or out of a closed account."""

    def __init__(self, account_id: str) -> None:
        super().__init__(f"account {account_id} is closed")
        self.account_id = account_id


class AccountNotEmpty(DomainError):
    """Only an empty account can be closed."""

    def __init__(self, account_id: str, balance: Money) -> None:
        super().__init__(f"account {account_id} still holds {balance}")
        self.account_id = account_id
        self.balance = balance


class UnknownHold(DomainError):
    """No such hold on the account: never made, or already confirmed or released."""

    def __init__(self, account_id: str, hold_id: str) -> None:
        super().__init__(f"account {account_id} has no hold {hold_id!r}")
        self.account_id = account_id
        self.hold_id = hold_id


class NonPositiveAmount(DomainError):
    """Deposits, withdrawals and transfers move a positive amount."""

    def __init__(self, amount: Money) -> None:
        super().__init__(f"amount must be positive, got {amount}")
        self.amount = amount


class SameAccountTransfer(DomainError):
    """A transfer needs two different accounts."""

    def __init__(self, account_id: str) -> None:
        super().__init__(f"source and target account are the same: {account_id}")
        self.account_id = account_id


# -- the aggregate -------------------------------------------------------------------------


def _positive(amount: Money) -> None:
    if amount.is_zero:
        raise NonPositiveAmount(amount)


HOLD_THRESHOLD = Money("1000")
"""Cash withdrawals above this amount are held until the owner confirms them."""
HOLD_FOR = dt.timedelta(minutes=15)
"""How long a held withdrawal waits for confirmation before the hold is released."""


class Account(Aggregate):
    """A bank account: no overdraft, closed only when empty, large withdrawals held."""

    owner: str
    owner_id: str | None
    balance: Money
    closed: bool
    holds: dict[str, Money]

    # Command handlers unpack their command; the rules are in the domain methods below, which
    # the transfer handler calls too.

    @command_handler(OpenAccount, creates=True)
    def open(self, command: OpenAccount) -> None:
        if not command.owner.strip():
            raise DomainError("an account needs an owner")
        self.emit(AccountOpened(owner=command.owner, owner_id=command.owner_id))

    @command_handler(DepositMoney)
    def _deposit_money(self, command: DepositMoney) -> None:
        self.deposit(command.amount)

    @command_handler(WithdrawMoney)
    def _withdraw_money(self, command: WithdrawMoney) -> None:
        if command.amount > HOLD_THRESHOLD:
            self.hold(command.amount)
        else:
            self.withdraw(command.amount)

    @command_handler(ConfirmWithdrawal)
    def _confirm_withdrawal(self, command: ConfirmWithdrawal) -> None:
        self.confirm(command.hold_id)

    @command_handler(ReleaseHold)
    def _release_hold(self, command: ReleaseHold) -> None:
        self.release(command.hold_id)

    @command_handler(CloseAccount)
    def _close_account(self, command: CloseAccount) -> None:
        self.close()

    def deposit(self, amount: Money) -> None:
        """Credit ``amount``: refused on a closed account or for nothing."""
        self._require_open()
        _positive(amount)
        self.emit(MoneyDeposited(amount=amount))

    @property
    def available(self) -> Money:
        """The balance less what is held: what can be withdrawn or transferred."""
        held = sum(self.holds.values(), Money.zero())
        return self.balance - held

    def withdraw(self, amount: Money) -> None:
        """Debit ``amount``: refused on a closed account, for nothing, or beyond what is
        available (held money is not)."""
        self._require_open()
        _positive(amount)
        if amount > self.available:
            raise InsufficientFunds(self.id, self.available, amount)
        self.emit(MoneyWithdrawn(amount=amount))

    def hold(self, amount: Money) -> None:
        """Reserve ``amount`` for a withdrawal the owner must confirm; the same refusals as
        ``withdraw``. The hold id is ``hold-{version}``, the version of its event."""
        self._require_open()
        _positive(amount)
        if amount > self.available:
            raise InsufficientFunds(self.id, self.available, amount)
        self.emit(WithdrawalHeld(hold_id=f"hold-{self.version + 1}", amount=amount))

    def confirm(self, hold_id: str) -> None:
        """Pay out a held withdrawal: the hold goes, the money leaves."""
        amount = self._held(hold_id)
        self.emit(WithdrawalConfirmed(hold_id=hold_id))
        self.emit(MoneyWithdrawn(amount=amount))

    def release(self, hold_id: str) -> None:
        """Give a held amount back to what is available."""
        self._held(hold_id)
        self.emit(HoldReleased(hold_id=hold_id))

    def _held(self, hold_id: str) -> Money:
        amount = self.holds.get(hold_id)
        if amount is None:
            raise UnknownHold(self.id, hold_id)
        return amount

    def close(self) -> None:
        """Close the account: refused while it holds money."""
        self._require_open()
        if not self.balance.is_zero:
            raise AccountNotEmpty(self.id, self.balance)
        self.emit(AccountClosed())

    def _require_open(self) -> None:
        if self.closed:
            raise AccountClosedError(self.id)

    @event_handler(AccountOpened)
    def _opened(self, event: AccountOpened) -> None:
        self.owner, self.owner_id = event.owner, event.owner_id
        self.balance = Money.zero()
        self.closed = False
        self.holds = {}

    @event_handler(MoneyDeposited)
    def _deposited(self, event: MoneyDeposited) -> None:
        self.balance += event.amount

    @event_handler(MoneyWithdrawn)
    def _withdrawn(self, event: MoneyWithdrawn) -> None:
        self.balance -= event.amount

    @event_handler(AccountClosed)
    def _closed(self, event: AccountClosed) -> None:
        self.closed = True

    @event_handler(WithdrawalHeld)
    def _held_withdrawal(self, event: WithdrawalHeld) -> None:
        self.holds = {**self.holds, event.hold_id: event.amount}

    @event_handler(WithdrawalConfirmed)
    def _confirmed(self, event: WithdrawalConfirmed) -> None:
        self.holds = {k: v for k, v in self.holds.items() if k != event.hold_id}

    @event_handler(HoldReleased)
    def _released(self, event: HoldReleased) -> None:
        self.holds = {k: v for k, v in self.holds.items() if k != event.hold_id}


# -- a command that changes two aggregates -------------------------------------------------


@command_handler(TransferMoney)
def transfer_money(uow: UnitOfWork, command: TransferMoney) -> None:
    """Debit one account and credit another: both or neither, in one transaction.

    The same domain methods as a withdrawal and a deposit, so the same rules: no overdraft, no
    closed account, a positive amount.
    """
    if command.source_account_id == command.target_account_id:
        raise SameAccountTransfer(command.source_account_id)
    source = uow.get(Account, command.source_account_id)
    target = uow.get(Account, command.target_account_id)
    source.withdraw(command.amount)
    target.deposit(command.amount)


# -- events stored before amounts were Money -------------------------------------------------


@upcaster(MoneyDeposited, from_version=1)
def _deposit_amount_as_money(document: dict[str, Any]) -> dict[str, Any]:
    return _amount_as_money(document)


@upcaster(MoneyWithdrawn, from_version=1)
def _withdrawal_amount_as_money(document: dict[str, Any]) -> dict[str, Any]:
    return _amount_as_money(document)


def _amount_as_money(document: dict[str, Any]) -> dict[str, Any]:
    """Version 1 held ``{"amount": "12.50"}``; version 2 holds ``Money`` as
    ``{"amount": {"amount": "12.50"}}``."""
    return {**document, "amount": {"amount": document["amount"]}}


UPCASTERS: list[Upcaster] = [_deposit_amount_as_money, _withdrawal_amount_as_money]
"""Every upcaster of the bank's events: the application is given them, and so is every runner of
the projectors that read these events (``--upcasters example_app.bank:UPCASTERS`` on the command
line, ``UPCASTERS`` on Lambda), so that old events read the same way everywhere."""

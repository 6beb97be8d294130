"""The small bank the shipped contracts run commands with; the framework's own tests use it too.

It is a test fixture, not an example: ``example_app`` is the domain to copy from. It is shaped to
reach every corner a store must handle: accounts with a unique handle (claims, and a claim handed
from one account to another), transfers and a joint withdrawal over two aggregates (one changed,
one only read), many events from one command, and enums, dates and nested values to encode.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from decimal import Decimal

from attrs import frozen

from framework import (
    Aggregate,
    Command,
    DomainError,
    Event,
    UnitOfWork,
    command_handler,
    event_handler,
)

__all__ = [
    "Account",
    "AccountOpened",
    "Address",
    "ClaimHandle",
    "Currency",
    "Deposit",
    "DepositMany",
    "Deposited",
    "HandleClaimed",
    "HandleReleased",
    "JointWithdraw",
    "MoveHandle",
    "OpenAccount",
    "Transfer",
    "Withdraw",
    "Withdrawn",
    "joint_withdraw",
    "move_handle",
    "transfer",
]


class Currency(enum.Enum):
    EUR = "EUR"
    USD = "USD"


@frozen
class Address:
    street: str
    city: str


@frozen
class OpenAccount(Command, target="account_id"):
    account_id: str
    owner: str
    currency: Currency = Currency.EUR


@frozen
class Deposit(Command, target="account_id"):
    account_id: str
    amount: Decimal


@frozen
class DepositMany(Command, target="account_id"):
    """Emits one ``Deposited`` per amount: a cheap way to grow long streams in tests."""

    account_id: str
    amounts: tuple[Decimal, ...]


@frozen
class Withdraw(Command, target="account_id"):
    account_id: str
    amount: Decimal


@frozen
class ClaimHandle(Command, target="account_id"):
    account_id: str
    handle: str


@frozen
class Transfer(Command):
    source_id: str
    target_id: str
    amount: Decimal


@frozen
class JointWithdraw(Command):
    """Withdraw from one account of a pair, as long as the pair together stays in credit."""

    account_id: str
    partner_id: str
    amount: Decimal


@frozen
class MoveHandle(Command):
    """Hand the source account's handle over to the target account, in one command."""

    source_id: str
    target_id: str


@frozen
class AccountOpened(Event):
    owner: str
    currency: Currency
    opened_at: dt.datetime
    reference: uuid.UUID
    address: Address | None = None


@frozen
class Deposited(Event):
    amount: Decimal


@frozen
class Withdrawn(Event):
    amount: Decimal


@frozen
class HandleClaimed(Event):
    handle: str


@frozen
class HandleReleased(Event):
    handle: str


class Account(Aggregate):
    owner: str
    currency: Currency
    balance: Decimal
    handle: str | None

    @command_handler(OpenAccount, creates=True)
    def open(self, command: OpenAccount) -> None:
        self.emit(
            AccountOpened(
                owner=command.owner,
                currency=command.currency,
                opened_at=dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC),
                reference=uuid.UUID(int=42),
            )
        )

    @command_handler(Deposit)
    def deposit(self, command: Deposit) -> None:
        if command.amount <= 0:
            raise DomainError("a deposit must be positive")
        self.emit(Deposited(amount=command.amount))

    @command_handler(DepositMany)
    def deposit_many(self, command: DepositMany) -> None:
        for amount in command.amounts:
            self.emit(Deposited(amount=amount))

    @command_handler(Withdraw)
    def withdraw(self, command: Withdraw) -> None:
        if command.amount > self.balance:
            raise DomainError(f"insufficient funds: balance {self.balance}")
        self.emit(Withdrawn(amount=command.amount))

    @command_handler(ClaimHandle)
    def claim_handle(self, command: ClaimHandle) -> None:
        if self.handle is not None:
            self.release_unique("handle", self.handle)
        self.claim_unique("handle", command.handle)
        self.emit(HandleClaimed(handle=command.handle))

    @event_handler(AccountOpened)
    def _opened(self, event: AccountOpened) -> None:
        self.owner = event.owner
        self.currency = event.currency
        self.balance = Decimal(0)
        self.handle = None

    @event_handler(Deposited)
    def _deposited(self, event: Deposited) -> None:
        self.balance += event.amount

    @event_handler(Withdrawn)
    def _withdrawn(self, event: Withdrawn) -> None:
        self.balance -= event.amount

    @event_handler(HandleClaimed)
    def _handle_claimed(self, event: HandleClaimed) -> None:
        self.handle = event.handle

    @event_handler(HandleReleased)
    def _handle_released(self, event: HandleReleased) -> None:
        self.handle = None


@command_handler(Transfer)
def transfer(uow: UnitOfWork, command: Transfer) -> None:
    """Move money between two accounts in one change set."""
    if command.source_id == command.target_id:
        raise DomainError("cannot transfer to the same account")
    source = uow.get(Account, command.source_id)
    target = uow.get(Account, command.target_id)
    source.handle_command(Withdraw(account_id=source.id, amount=command.amount))
    target.handle_command(Deposit(account_id=target.id, amount=command.amount))


@command_handler(JointWithdraw)
def joint_withdraw(uow: UnitOfWork, command: JointWithdraw) -> None:
    """Reads both accounts, changes one: the partner is only read (a write-skew trap)."""
    account = uow.get(Account, command.account_id)
    partner = uow.get(Account, command.partner_id)
    if account.balance + partner.balance < command.amount:
        raise DomainError("the pair of accounts would be overdrawn")
    account.emit(Withdrawn(amount=command.amount))


@command_handler(MoveHandle)
def move_handle(uow: UnitOfWork, command: MoveHandle) -> None:
    """Release the source's handle and claim it for the target, in one change set."""
    source = uow.get(Account, command.source_id)
    target = uow.get(Account, command.target_id)
    if source.handle is None:
        raise DomainError(f"account {source.id!r} has no handle")
    if target.handle is not None:
        raise DomainError(f"account {target.id!r} already has a handle")
    handle = source.handle
    source.release_unique("handle", handle)
    source.emit(HandleReleased(handle=handle))
    target.claim_unique("handle", handle)
    target.emit(HandleClaimed(handle=handle))

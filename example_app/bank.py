"""The bank domain: accounts that can be opened, credited, debited, closed, and transfers.

Rules worth copying: every business rule lives in a command handler and raises ``DomainError``;
state changes only in ``@event_handler`` methods; a transfer touches two accounts and so is a plain
function handler, committed as one transaction. An account's owner name is personal data of the
user who holds the account: it is stored encrypted with that user's key, and forgetting the user
erases it from the account too.
"""

from __future__ import annotations

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
    subject_of,
)

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
    amount: Decimal


@frozen
class WithdrawMoney(Command, target="account_id"):
    account_id: str
    amount: Decimal


@frozen
class CloseAccount(Command, target="account_id"):
    account_id: str


@frozen
class TransferMoney(Command):
    source_account_id: str
    target_account_id: str
    amount: Decimal


# -- events --------------------------------------------------------------------------------


@frozen
class AccountOpened(Event, personal={"owner": subject_of("User", field="owner_id")}):
    """The owner's name is personal data of the user who holds the account (of the account
    itself when no user is named): forgetting that user erases it here too."""

    owner: str
    owner_id: str | None = None


@frozen
class MoneyDeposited(Event):
    amount: Decimal


@frozen
class MoneyWithdrawn(Event):
    amount: Decimal


@frozen
class AccountClosed(Event):
    pass


# -- the aggregate -------------------------------------------------------------------------


def _positive(amount: Decimal) -> None:
    if amount <= 0:
        raise DomainError(f"amount must be positive, got {amount}")


class Account(Aggregate):
    """A bank account: no overdraft, closed only when empty."""

    owner: str
    owner_id: str | None
    balance: Decimal
    closed: bool

    @command_handler(OpenAccount, creates=True)
    def open(self, command: OpenAccount) -> None:
        if not command.owner.strip():
            raise DomainError("an account needs an owner")
        self.emit(AccountOpened(owner=command.owner, owner_id=command.owner_id))

    @command_handler(DepositMoney)
    def deposit(self, command: DepositMoney) -> None:
        self._require_open()
        _positive(command.amount)
        self.emit(MoneyDeposited(amount=command.amount))

    @command_handler(WithdrawMoney)
    def withdraw(self, command: WithdrawMoney) -> None:
        self._require_open()
        _positive(command.amount)
        if command.amount > self.balance:
            raise DomainError(
                f"insufficient funds in {self.id}: balance {self.balance}, asked {command.amount}"
            )
        self.emit(MoneyWithdrawn(amount=command.amount))

    @command_handler(CloseAccount)
    def close(self, command: CloseAccount) -> None:
        self._require_open()
        if self.balance != 0:
            raise DomainError(f"account {self.id} still holds {self.balance}")
        self.emit(AccountClosed())

    def _require_open(self) -> None:
        if self.closed:
            raise DomainError(f"account {self.id} is closed")

    @event_handler(AccountOpened)
    def _opened(self, event: AccountOpened) -> None:
        self.owner, self.owner_id = event.owner, event.owner_id
        self.balance = Decimal(0)
        self.closed = False

    @event_handler(MoneyDeposited)
    def _deposited(self, event: MoneyDeposited) -> None:
        self.balance += event.amount

    @event_handler(MoneyWithdrawn)
    def _withdrawn(self, event: MoneyWithdrawn) -> None:
        self.balance -= event.amount

    @event_handler(AccountClosed)
    def _closed(self, event: AccountClosed) -> None:
        self.closed = True


# -- a command that changes two aggregates -------------------------------------------------


@command_handler(TransferMoney)
def transfer_money(uow: UnitOfWork, command: TransferMoney) -> None:
    """Debit one account and credit another: both or neither, in one transaction."""
    if command.source_account_id == command.target_account_id:
        raise DomainError("source and target account are the same")
    source = uow.get(Account, command.source_account_id)
    target = uow.get(Account, command.target_account_id)
    source.withdraw(WithdrawMoney(account_id=source.id, amount=command.amount))
    target.deposit(DepositMoney(account_id=target.id, amount=command.amount))

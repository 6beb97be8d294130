"""Read models of the example app: PynamoDB models, built by projectors.

- account balances: one row per account (owner, balance, open or closed);
- account statements: one row per money movement, keyed by account and version;
- user directory: one row per user, with personal data erased once the user is forgotten.

Each model declares a logical table name; its table is ``{prefix}-read-{name}`` next to the event
store's (``framework.projections.read_models``), so the command line creates, clears and deletes it
with the store's, and tests get tables of their own. Handlers queue typed writes
(``self.save(row)``, ``self.update(row, actions=[...])``), committed with the projector's position
in one transaction; none of them needs to read the row first.
"""

from __future__ import annotations

from decimal import Decimal

import attrs
from pynamodb.attributes import Attribute, BooleanAttribute, UnicodeAttribute
from pynamodb.constants import NUMBER
from pynamodb.models import Model

from example_app.bank import (
    AccountClosed,
    AccountOpened,
    MoneyDeposited,
    MoneyWithdrawn,
)
from example_app.users import EmailChanged, UserForgotten, UserRegistered
from framework import DynamoDBEventStore, Projector, event_handler
from framework.projections import Envelope
from framework.projections.read_models import bound, create_tables, declared_models

ERASED = "(erased)"


class DecimalAttribute(Attribute[Decimal]):
    """A number stored exactly: PynamoDB's own NumberAttribute goes through float (and is typed
    as one, so a row's ``balance`` would read as a float to a type checker)."""

    attr_type = NUMBER

    def serialize(self, value: Decimal) -> str:
        return str(value)

    def deserialize(self, value: str) -> Decimal:
        return Decimal(value)


class IntegerAttribute(Attribute[int]):
    """A whole number (a stream version): typed as ``int``, where NumberAttribute says float."""

    attr_type = NUMBER

    def serialize(self, value: int) -> str:
        return str(value)

    def deserialize(self, value: str) -> int:
        return int(value)


class AccountBalance(Model):
    class Meta:
        table_name = "balances"

    account_id = UnicodeAttribute(hash_key=True)
    # The owner's name only when no user holds the account: a user's name lives in the user
    # directory alone, so forgetting the user erases it from every account at once.
    owner = UnicodeAttribute(null=True)
    owner_id = UnicodeAttribute(null=True)
    balance = DecimalAttribute()
    closed = BooleanAttribute(default=False)
    version = IntegerAttribute()


class StatementLine(Model):
    class Meta:
        table_name = "statements"

    account_id = UnicodeAttribute(hash_key=True)
    version = IntegerAttribute(range_key=True)
    kind = UnicodeAttribute()
    amount = DecimalAttribute()
    occurred_at = UnicodeAttribute()


class UserEntry(Model):
    class Meta:
        table_name = "users"

    user_id = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute()
    email = UnicodeAttribute()
    forgotten = BooleanAttribute(default=False)


@attrs.frozen
class ReadModels:
    """The read models bound to one store's tables, for the code that reads them."""

    balances: type[AccountBalance]
    statements: type[StatementLine]
    users: type[UserEntry]

    def all(self) -> tuple[type[Model], ...]:
        return (self.balances, self.statements, self.users)


def models_for(store: DynamoDBEventStore) -> ReadModels:
    """The read models next to ``store``'s tables (signing as the store's own client does)."""
    return ReadModels(
        bound(AccountBalance, store), bound(StatementLine, store), bound(UserEntry, store)
    )


def owner_name(models: ReadModels, row: AccountBalance) -> str:
    """The name to show for an account row: its own, or its user's from the directory."""
    if row.owner_id is None:
        return str(row.owner)
    try:
        return str(models.users.get(row.owner_id, consistent_read=True).name)
    except models.users.DoesNotExist:
        return "(unknown user)"


def create_read_model_tables(store: DynamoDBEventStore) -> None:
    """Create the read-model tables if missing (on-demand capacity) and wait for them."""
    create_tables(store, declared_models(all_projectors(store)))


class _ReadsPersonalData(Projector):
    """Names and emails are encrypted per subject: these projectors read them with the key ring
    of ``store`` (default: the one the environment describes)."""

    def __init__(self, store: DynamoDBEventStore | None = None) -> None:
        super().__init__()
        from example_app.wiring import key_ring

        self.key_ring = key_ring(store or DynamoDBEventStore.from_env())


class AccountBalances(_ReadsPersonalData, name="account-balances"):
    """Balance, owner and status of every account."""

    aggregate_types = frozenset({"Account"})
    read_models = (AccountBalance,)

    @event_handler(AccountOpened)
    def _opened(self, event: AccountOpened, envelope: Envelope) -> None:
        row = AccountBalance(
            envelope.aggregate_id,
            owner=None if event.owner_id else event.owner,
            owner_id=event.owner_id,
            balance=Decimal(0),
            closed=False,
            version=1,
        )
        self.save(row)

    @event_handler(MoneyDeposited)
    def _deposited(self, event: MoneyDeposited, envelope: Envelope) -> None:
        self._add(envelope, event.amount.amount)

    @event_handler(MoneyWithdrawn)
    def _withdrawn(self, event: MoneyWithdrawn, envelope: Envelope) -> None:
        self._add(envelope, -event.amount.amount)

    @event_handler(AccountClosed)
    def _closed(self, event: AccountClosed, envelope: Envelope) -> None:
        self.update(
            AccountBalance(envelope.aggregate_id),
            actions=[AccountBalance.closed.set(True), AccountBalance.version.set(envelope.version)],
        )

    def _add(self, envelope: Envelope, amount: Decimal) -> None:
        self.update(
            AccountBalance(envelope.aggregate_id),
            actions=[
                AccountBalance.balance.add(amount),
                AccountBalance.version.set(envelope.version),
            ],
        )


class AccountStatements(Projector, name="account-statements"):
    """Every money movement of every account, in order."""

    aggregate_types = frozenset({"Account"})
    read_models = (StatementLine,)

    @event_handler(MoneyDeposited)
    def _deposited(self, event: MoneyDeposited, envelope: Envelope) -> None:
        self._line(envelope, "deposit", event.amount.amount)

    @event_handler(MoneyWithdrawn)
    def _withdrawn(self, event: MoneyWithdrawn, envelope: Envelope) -> None:
        self._line(envelope, "withdrawal", -event.amount.amount)

    def _line(self, envelope: Envelope, kind: str, amount: Decimal) -> None:
        self.save(
            StatementLine(
                envelope.aggregate_id,
                envelope.version,
                kind=kind,
                amount=amount,
                occurred_at=envelope.occurred_at.isoformat(),
            )
        )


class UserDirectory(_ReadsPersonalData, name="user-directory"):
    """Users by id with their current email; forgotten users show as erased."""

    aggregate_types = frozenset({"User"})
    read_models = (UserEntry,)

    @event_handler(UserRegistered)
    def _registered(self, event: UserRegistered, envelope: Envelope) -> None:
        self.save(UserEntry(envelope.aggregate_id, name=event.name, email=event.email))

    @event_handler(EmailChanged)
    def _email_changed(self, event: EmailChanged, envelope: Envelope) -> None:
        self.update(UserEntry(envelope.aggregate_id), actions=[UserEntry.email.set(event.email)])

    @event_handler(UserForgotten)
    def _forgotten(self, event: UserForgotten, envelope: Envelope) -> None:
        self.save(UserEntry(envelope.aggregate_id, name=ERASED, email=ERASED, forgotten=True))


def all_projectors(store: DynamoDBEventStore) -> list[Projector]:
    """Every read-model projector of the example app (reading personal data with ``store``'s
    key ring)."""
    return [AccountBalances(store), AccountStatements(), UserDirectory(store)]

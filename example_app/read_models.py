"""Read models of the example app: PynamoDB models, built by projectors.

- account balances: one row per account (owner, balance, open or closed);
- account statements: one row per money movement, keyed by account and version;
- user directory: one row per user, with personal data erased once the user is forgotten.

Table names follow the event store's prefix (``{prefix}-read-...``). The models are made per
prefix by ``read_models(prefix)``, because PynamoDB binds a model class to one table.

Every write is queued on the projector (``self.save``/``self.update``) and committed with the
projector's position in one transaction, and none of them needs to read the row first.
"""

from __future__ import annotations

import functools
import os
from decimal import Decimal
from typing import Any

import attrs
from pynamodb.attributes import BooleanAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.models import Model

from example_app.bank import (
    AccountClosed,
    AccountOpened,
    MoneyDeposited,
    MoneyWithdrawn,
)
from example_app.users import EmailChanged, UserForgotten, UserRegistered
from framework import DynamoDBEventStore, Envelope, Projector, event_handler

ERASED = "(erased)"


class DecimalAttribute(NumberAttribute):
    """A number stored exactly: PynamoDB's own NumberAttribute goes through float."""

    def serialize(self, value: Decimal) -> str:
        return str(value)

    def deserialize(self, value: str) -> Decimal:
        return Decimal(value)


@attrs.frozen
class ReadModels:
    """The PynamoDB model classes bound to one prefix's tables."""

    balances: type[Model]
    statements: type[Model]
    users: type[Model]

    def all(self) -> tuple[type[Model], ...]:
        return (self.balances, self.statements, self.users)


LOCAL_CREDENTIALS = "local"
"""What the read models sign with on DynamoDB Local when the environment has no credentials."""


@functools.cache
def read_models(
    prefix: str,
    host: str | None = None,
    region: str = "us-east-1",
    *,
    local_credentials: bool = False,
) -> ReadModels:
    """Model classes for the read-model tables of ``prefix`` (on ``host``, e.g. DynamoDB Local).

    ``local_credentials`` signs with dummy credentials, which DynamoDB Local accepts.
    """

    def meta(name: str) -> type:
        attributes: dict[str, Any] = {"table_name": f"{prefix}-read-{name}", "region": region}
        if host:
            attributes["host"] = host
        if local_credentials:
            attributes["aws_access_key_id"] = LOCAL_CREDENTIALS
            attributes["aws_secret_access_key"] = LOCAL_CREDENTIALS
        return type("Meta", (), attributes)

    class AccountBalance(Model):
        Meta = meta("balances")
        account_id = UnicodeAttribute(hash_key=True)
        # The owner's name only when no user holds the account: a user's name lives in the user
        # directory alone, so forgetting the user erases it from every account at once.
        owner = UnicodeAttribute(null=True)
        owner_id = UnicodeAttribute(null=True)
        balance = DecimalAttribute()
        closed = BooleanAttribute(default=False)
        version = NumberAttribute()

    class StatementLine(Model):
        Meta = meta("statements")
        account_id = UnicodeAttribute(hash_key=True)
        version = NumberAttribute(range_key=True)
        kind = UnicodeAttribute()
        amount = DecimalAttribute()
        occurred_at = UnicodeAttribute()

    class UserEntry(Model):
        Meta = meta("users")
        user_id = UnicodeAttribute(hash_key=True)
        name = UnicodeAttribute()
        email = UnicodeAttribute()
        forgotten = BooleanAttribute(default=False)

    return ReadModels(AccountBalance, StatementLine, UserEntry)


def owner_name(models: ReadModels, row: Any) -> str:
    """The name to show for an account row: its own, or its user's from the directory."""
    if row.owner_id is None:
        return str(row.owner)
    try:
        return str(models.users.get(row.owner_id, consistent_read=True).name)
    except models.users.DoesNotExist:
        return "(unknown user)"


def models_for(store: DynamoDBEventStore) -> ReadModels:
    """The read models next to ``store``'s tables, signing as the store's own client does."""
    return read_models(
        store.tables.prefix,
        store.endpoint_url,
        store.region_name,
        local_credentials=uses_local_credentials(store.endpoint_url),
    )


def uses_local_credentials(endpoint_url: str | None) -> bool:
    """Whether the read models sign with dummy credentials: the rule of the event store's
    ``DynamoDBEventStore.make_client``, so that ``DYNAMO_ENDPOINT=... python -m example_app``
    needs no AWS credentials for the read models either. With an endpoint (DynamoDB Local) and
    no ``AWS_ACCESS_KEY_ID`` or ``AWS_PROFILE`` in the environment."""
    return bool(endpoint_url) and not (
        os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE")
    )


def create_read_model_tables(store: DynamoDBEventStore) -> None:
    """Create the read-model tables if missing (on-demand capacity) and wait for them."""
    for model in models_for(store).all():
        if not model.exists():
            model.create_table(billing_mode="PAY_PER_REQUEST", wait=True)


class _ReadModelProjector(Projector):
    """Shared set-up: which tables to write, from the store or the environment."""

    def __init__(self, store: DynamoDBEventStore | None = None) -> None:
        super().__init__()
        from example_app.wiring import key_ring

        self.store = store or DynamoDBEventStore.from_env()
        self.models = models_for(self.store)
        # Names and emails are encrypted per subject: the projectors read them with the key ring.
        self.key_ring = key_ring(self.store)


class AccountBalances(_ReadModelProjector, name="account-balances"):
    """Balance, owner and status of every account."""

    aggregate_types = frozenset({"Account"})

    @event_handler(AccountOpened)
    def _opened(self, event: AccountOpened, envelope: Envelope) -> None:
        row = self.models.balances(
            envelope.aggregate_id,
            owner=None if event.owner_id else event.owner,
            owner_id=event.owner_id,
            balance=0,
            closed=False,
            version=1,
        )
        self.save(row)

    @event_handler(MoneyDeposited)
    def _deposited(self, event: MoneyDeposited, envelope: Envelope) -> None:
        self._add(envelope, event.amount)

    @event_handler(MoneyWithdrawn)
    def _withdrawn(self, event: MoneyWithdrawn, envelope: Envelope) -> None:
        self._add(envelope, -event.amount)

    @event_handler(AccountClosed)
    def _closed(self, event: AccountClosed, envelope: Envelope) -> None:
        self.update(
            self.models.balances.Meta.table_name,
            {"account_id": {"S": envelope.aggregate_id}},
            "SET closed = :yes, version = :v",
            ExpressionAttributeValues={":yes": {"BOOL": True}, ":v": {"N": str(envelope.version)}},
        )

    def _add(self, envelope: Envelope, amount: Decimal) -> None:
        self.update(
            self.models.balances.Meta.table_name,
            {"account_id": {"S": envelope.aggregate_id}},
            "ADD balance :amount SET version = :v",
            ExpressionAttributeValues={
                ":amount": {"N": str(amount)},
                ":v": {"N": str(envelope.version)},
            },
        )


class AccountStatements(_ReadModelProjector, name="account-statements"):
    """Every money movement of every account, in order."""

    aggregate_types = frozenset({"Account"})

    @event_handler(MoneyDeposited)
    def _deposited(self, event: MoneyDeposited, envelope: Envelope) -> None:
        self._line(envelope, "deposit", event.amount)

    @event_handler(MoneyWithdrawn)
    def _withdrawn(self, event: MoneyWithdrawn, envelope: Envelope) -> None:
        self._line(envelope, "withdrawal", -event.amount)

    def _line(self, envelope: Envelope, kind: str, amount: Decimal) -> None:
        self.save(
            self.models.statements(
                envelope.aggregate_id,
                envelope.version,
                kind=kind,
                amount=amount,
                occurred_at=envelope.occurred_at.isoformat(),
            )
        )


class UserDirectory(_ReadModelProjector, name="user-directory"):
    """Users by id with their current email; forgotten users show as erased."""

    aggregate_types = frozenset({"User"})

    @event_handler(UserRegistered)
    def _registered(self, event: UserRegistered, envelope: Envelope) -> None:
        self.save(self.models.users(envelope.aggregate_id, name=event.name, email=event.email))

    @event_handler(EmailChanged)
    def _email_changed(self, event: EmailChanged, envelope: Envelope) -> None:
        self.update(
            self.models.users.Meta.table_name,
            {"user_id": {"S": envelope.aggregate_id}},
            "SET email = :e",
            ExpressionAttributeValues={":e": {"S": event.email}},
        )

    @event_handler(UserForgotten)
    def _forgotten(self, event: UserForgotten, envelope: Envelope) -> None:
        self.save(
            self.models.users(envelope.aggregate_id, name=ERASED, email=ERASED, forgotten=True)
        )


def all_projectors(store: DynamoDBEventStore) -> list[Projector]:
    """Every read-model projector of the example app, writing next to ``store``."""
    return [AccountBalances(store), AccountStatements(store), UserDirectory(store)]

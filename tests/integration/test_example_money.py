"""The example bank's amounts are ``Money``: they round-trip through every store, and events
stored before (a bare decimal string as the amount, schema 1) still load, through upcasters."""

from __future__ import annotations

import datetime as dt
import json

from example_app.bank import (
    Account,
    DepositMoney,
    OpenAccount,
    TransferMoney,
    WithdrawMoney,
)
from example_app.money import Money
from example_app.wiring import build_application, key_ring
from framework.store import EventStore, StoredEvent
from framework.store.items import event_item
from framework.testing.records import plant_item


def test_money_round_trips_in_events_and_commands(store: EventStore) -> None:
    keys = key_ring(store)
    app = build_application(store, keys)
    app.handle(OpenAccount(account_id="a", owner="Ann"))
    app.handle(OpenAccount(account_id="b", owner="Ben"))
    deposited = app.handle(DepositMoney(account_id="a", amount=Money("12.50")))
    app.handle(WithdrawMoney(account_id="a", amount=Money("0.25")))
    app.handle(TransferMoney(source_account_id="a", target_account_id="b", amount=Money("2.05")))
    # A repeat is recognised: the command's fingerprint, Money included, is stable.
    again = app.handle(
        DepositMoney(account_id="a", amount=Money("12.50"), command_id=deposited.command_id)
    )
    assert again.duplicate
    stored = store.load_events("Account", "a")
    assert [(e.event_type, e.schema) for e in stored[1:]] == [
        ("MoneyDeposited", 2),
        ("MoneyWithdrawn", 2),
        ("MoneyWithdrawn", 2),
    ]
    assert json.loads(stored[1].payload) == {"amount": {"amount": "12.50"}}
    fresh = build_application(store, keys)
    assert fresh.get(Account, "a").balance == Money("10.20")
    assert fresh.get(Account, "b").balance == Money("2.05")


def _old_event(version: int, event_type: str, amount: str) -> StoredEvent:
    return StoredEvent(
        aggregate_type="Account",
        aggregate_id="old",
        version=version,
        event_type=event_type,
        schema=1,
        payload=json.dumps({"amount": amount}).encode(),
        occurred_at=dt.datetime(2026, 1, 5, tzinfo=dt.UTC),
        change_set_id=f"old-{version}",
        command_id=f"old-{version}",
        correlation_id="old",
        causation_id="old",
    )


def test_events_stored_with_bare_decimal_amounts_still_load(store: EventStore) -> None:
    keys = key_ring(store)
    app = build_application(store, keys)
    app.handle(OpenAccount(account_id="old", owner="Olga"))
    plant_item(store, store.tables.events, event_item(_old_event(2, "MoneyDeposited", "30.00")))
    plant_item(store, store.tables.events, event_item(_old_event(3, "MoneyWithdrawn", "4.50")))
    plant_item(
        store,
        store.tables.aggregates,
        {"pk": {"S": "Account#old"}, "version": {"N": "3"}, "aggregate_type": {"S": "Account"}},
    )
    account = build_application(store, keys).get(Account, "old")
    assert (account.balance, account.version, account.owner) == (Money("25.50"), 3, "Olga")
    app.handle(DepositMoney(account_id="old", amount="1"))  # new events at the new schema
    newest = store.load_events("Account", "old")[-1]
    assert (newest.version, newest.schema) == (4, 2)
    assert json.loads(newest.payload) == {"amount": {"amount": "1"}}

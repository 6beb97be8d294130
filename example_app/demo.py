"""``python -m example_app demo``: a short banking story, told step by step.

With no configuration it runs on the embedded DynamoDB (moto, in process). With
``DYNAMO_ENDPOINT`` (DynamoDB Local) or AWS credentials and ``AWS_REGION`` it runs there, unchanged.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, TextIO

from example_app.bank import (
    Account,
    CloseAccount,
    DepositMoney,
    OpenAccount,
    TransferMoney,
    WithdrawMoney,
)
from example_app.wiring import build_application
from framework import Application, DomainError, DynamoDBEventStore
from framework.store.embedded import embedded_dynamodb_store


@contextlib.contextmanager
def demo_store() -> Iterator[tuple[DynamoDBEventStore, str]]:
    """The store the demo runs on, and a line saying which one it is."""
    if os.environ.get("DYNAMO_ENDPOINT") or os.environ.get("AWS_REGION"):
        store = DynamoDBEventStore.from_env()
        store.create_tables()
        where = store.endpoint_url or f"AWS region {store.region_name}"
        yield store, f"DynamoDB at {where}, tables {store.tables.prefix}-*"
        return
    with embedded_dynamodb_store(table_prefix="demo") as store:
        yield store, "embedded DynamoDB (moto, in process), tables demo-*"


class RequestCounter:
    """Counts the DynamoDB requests the client sends, by operation."""

    def __init__(self, client: Any) -> None:
        self.calls: list[str] = []
        client.meta.events.register("before-call.dynamodb.*", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls.append(model.name)

    def take(self) -> list[str]:
        calls, self.calls = self.calls, []
        return calls


def run_demo(out: TextIO) -> None:
    """Play the story and write what happened to ``out``."""
    with demo_store() as (store, where):
        counter = RequestCounter(store.client)
        app = build_application(store)
        embedded = where.startswith("embedded")
        suffix = "" if embedded else f"-{uuid.uuid4().hex[:6]}"
        alice, bob = f"alice{suffix}", f"bob{suffix}"
        say = Narrator(out)
        say.line(f"Event store: {where}")
        say.line("")

        say.step("Alice and Bob open accounts", app, OpenAccount(account_id=alice, owner="Alice"))
        say.step("", app, OpenAccount(account_id=bob, owner="Bob"))
        for amount in ("100.00", "25.50", "4.50", "70.00"):
            say.step(
                f"Alice deposits {amount}",
                app,
                DepositMoney(account_id=alice, amount=Decimal(amount)),
            )
        say.step(
            "Bob tries to withdraw 10.00 from an empty account",
            app,
            WithdrawMoney(account_id=bob, amount=Decimal("10.00")),
        )
        say.step(
            "Alice transfers 60.00 to Bob (both accounts, one transaction)",
            app,
            TransferMoney(source_account_id=alice, target_account_id=bob, amount=Decimal("60")),
        )
        payment = DepositMoney(account_id=bob, amount=Decimal("15.00"), command_id=f"pay{suffix}-1")
        say.step("Bob deposits 15.00 with idempotency key pay-1", app, payment)
        say.step("The client retries the same request (same key)", app, payment)
        say.step("Bob tries to close his account", app, CloseAccount(account_id=bob))

        counter.take()
        account = app.get(Account, alice)
        loaded_with = counter.take()
        snapshot = store.load_snapshot(Account.aggregate_type(), alice)
        counter.take()
        say.line("")
        say.line(
            f"Alice's account is at version {account.version}; its latest snapshot is at version "
            f"{snapshot.version if snapshot else 'none'} (one every 5 events)."
        )
        say.line(f"Loading it took {len(loaded_with)} requests: {', '.join(loaded_with)}.")
        say.line("")
        say.table(app, [alice, bob])


class Narrator:
    """Writes the demo's story: one line per command and what came of it."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def line(self, text: str) -> None:
        self.out.write(text + "\n")

    def step(self, title: str, app: Application, command: Any) -> None:
        if title:
            self.line(f"* {title}")
        try:
            result = app.handle(command)
        except DomainError as error:
            self.line(f"    refused: {error}")
            return
        versions = ", ".join(
            f"{stream} -> v{version}" for stream, version in result.versions.items()
        )
        if result.duplicate:
            self.line(f"    already done: first result returned, nothing written ({versions})")
        else:
            self.line(f"    committed {len(result.events)} event(s): {versions}")

    def table(self, app: Application, account_ids: list[str]) -> None:
        rows = [("account", "owner", "balance", "version")]
        for account_id in account_ids:
            account = app.get(Account, account_id)
            rows.append((account.id, account.owner, f"{account.balance:.2f}", str(account.version)))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        for index, row in enumerate(rows):
            cells = [
                cell.ljust(width) if i < 2 else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            ]
            self.line("  " + "  ".join(cells))
            if index == 0:
                self.line("  " + "  ".join("-" * width for width in widths))

"""``python -m example_app demo``: a short banking story, told step by step.

With no configuration it runs on the embedded DynamoDB (moto, in process). With
``DYNAMO_ENDPOINT`` (DynamoDB Local) or ``AWS_REGION`` (and AWS credentials), or a
``FRAMEWORK_CONFIG`` settings file, it runs there, unchanged, in tables named after
``DYNAMO_TABLE_PREFIX`` (see ``framework.config``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any, TextIO

from example_app.bank import (
    HOLD_FOR,
    Account,
    CloseAccount,
    ConfirmWithdrawal,
    DepositMoney,
    OpenAccount,
    TransferMoney,
    WithdrawMoney,
)
from example_app.processes import WithdrawalHolds
from example_app.read_models import (
    all_projectors,
    create_read_model_tables,
    models_for,
    owner_name,
)
from example_app.users import ChangeEmail, ForgetUser, RegisterUser
from example_app.wiring import SNAPSHOT_EVERY, build_application, open_example_store
from framework import Application, Command, ConcurrencyError, DomainError, DynamoDBEventStore
from framework.application import CommandResult
from framework.errors import UniqueConstraintViolated
from framework.projections import (
    CatchUpRunner,
    DeadlineRunner,
    DeadlineStatus,
    DynamoDBDeadlineStore,
)
from framework.store import DynamoDBPositionStore


@contextlib.contextmanager
def demo_store() -> Iterator[tuple[DynamoDBEventStore, str]]:
    """The store the demo runs on (the settings', else the embedded one), and which it is."""
    with open_example_store(embedded_prefix="demo") as (store, settings):
        yield store, settings.describe()


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


class Narrator:
    """Writes the demo's story: one line per command and what came of it."""

    def __init__(self, out: TextIO, app: Application) -> None:
        self.out = out
        self.app = app

    def line(self, text: str = "") -> None:
        self.out.write(text + "\n")

    def step(self, title: str, command: Command) -> CommandResult | None:
        """Handle ``command`` and say what happened; its result, ``None`` when refused."""
        if title:
            self.line(f"* {title}")
        try:
            result = self.app.handle(command)
        except DomainError as error:
            self.line(f"    refused: {error}")
            return None
        except UniqueConstraintViolated as error:  # the claimed value is a hash: name the scope
            self.line(f"    refused: that {error.scope} belongs to someone else")
            return None
        versions = ", ".join(f"{stream} v{version}" for stream, version in result.versions.items())
        if result.duplicate:
            self.line(
                f"    already done: the first result is returned, nothing written ({versions})"
            )
        elif not result.versions:
            self.line("    nothing to change")
        else:
            self.line(f"    committed {len(result.events)} event(s): {versions}")
        return result

    def table(self, title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        self.line(title)
        widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
        for index, row in enumerate([header, *rows]):
            self.line(
                "  "
                + "  ".join(
                    str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)
                ).rstrip()
            )
            if index == 0:
                self.line("  " + "  ".join("-" * width for width in widths))
        self.line()


def run_demo(out: TextIO) -> None:
    """Play the story and write what happened to ``out``."""
    with demo_store() as (store, where):
        counter = RequestCounter(store.client)
        app = build_application(store)
        external = not where.startswith("embedded")
        suffix = f"-{uuid.uuid4().hex[:6]}" if external else ""
        alice, bob = f"alice{suffix}", f"bob{suffix}"
        say = Narrator(out, app)
        say.line(f"Event store: {where}")
        say.line()

        say.step("Alice and Bob open accounts", OpenAccount(account_id=alice, owner="Alice"))
        say.step("", OpenAccount(account_id=bob, owner="Bob"))
        for amount in ("100.00", "25.50", "4.50", "70.00"):
            say.step(
                f"Alice deposits {amount}", DepositMoney(account_id=alice, amount=Decimal(amount))
            )
        say.step(
            "Bob tries to withdraw 10.00 from his empty account",
            WithdrawMoney(account_id=bob, amount=Decimal("10.00")),
        )
        say.step(
            "Alice transfers 60.00 to Bob (both accounts, one transaction)",
            TransferMoney(source_account_id=alice, target_account_id=bob, amount=Decimal("60")),
        )
        payment = DepositMoney(account_id=bob, amount=Decimal("15.00"), command_id=f"pay{suffix}-1")
        say.step("Bob deposits 15.00 with the idempotency key pay-1", payment)
        say.step("His banking app retries the request (same key)", payment)
        say.step("Bob tries to close his account", CloseAccount(account_id=bob))

        teller = DepositMoney(account_id=alice, amount=Decimal("1.00"))
        stale = app.unit_of_work(teller)  # the second teller's screen, loaded now
        stale.get(Account, alice).deposit(teller.amount)
        say.step(
            "Two tellers load Alice's account at the same moment; the first deposits 2.00",
            DepositMoney(account_id=alice, amount=Decimal("2.00")),
        )
        try:
            stale.commit()
        except ConcurrencyError as conflict:
            say.line(f"    the second teller's deposit of 1.00 is refused at commit: {conflict}")
        result = app.handle(teller)
        say.line(
            "    Application.handle reloads and re-runs such a command by itself: "
            f"committed 1 event(s): Account#{alice} v{result.version}"
        )

        say.step(
            "Carol registers as carol@example.com",
            RegisterUser(
                user_id=f"carol{suffix}", name="Carol", email=f"Carol{suffix}@Example.com"
            ),
        )
        say.step(
            "Dave tries to register with the same address",
            RegisterUser(user_id=f"dave{suffix}", name="Dave", email=f"carol{suffix}@example.com"),
        )
        say.step(
            "Carol moves to carol@example.org (the address claim moves in the same transaction)",
            ChangeEmail(user_id=f"carol{suffix}", email=f"carol{suffix}@example.org"),
        )
        say.step(
            "Dave registers with Carol's old address, now free",
            RegisterUser(user_id=f"dave{suffix}", name="Dave", email=f"carol{suffix}@example.com"),
        )
        dave_account = f"dave-acc{suffix}"
        say.step(
            "Dave opens an account in his name (his name is his personal data there too)",
            OpenAccount(account_id=dave_account, owner="Dave", owner_id=f"dave{suffix}"),
        )
        say.step("Dave asks to be forgotten", ForgetUser(user_id=f"dave{suffix}"))
        dave = app.get(Account, dave_account)
        say.line(f"    his account still works; its owner now reads {dave.owner!r}")

        counter.take()
        account = app.get(Account, alice)
        loaded_with = counter.take()
        snapshot = store.load_snapshot(Account.aggregate_type(), alice)
        say.line()
        say.line(
            f"Alice's account is at version {account.version}; its latest snapshot is at version "
            f"{snapshot.version if snapshot else 'none'} (one every {SNAPSHOT_EVERY} events)."
        )
        say.line(f"Loading it took {len(loaded_with)} requests: {', '.join(loaded_with)}.")
        say.line()

        create_read_model_tables(store)
        runner = CatchUpRunner(
            store,
            DynamoDBPositionStore(store),
            all_projectors(store),
            safety_window=dt.timedelta(0),
            mapper=app.mapper,  # the projectors read old events as the application does
        )
        report = runner.run(until=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))
        parked = f", {len(report.parked)} parked" if report.parked else ""
        say.line(f"The projectors caught up over the feed index{parked}; the read models:")
        say.line()
        print_read_models(
            say, store, [alice, bob, dave_account], [f"carol{suffix}", f"dave{suffix}"]
        )
        hold_large_withdrawals(say, app, store, alice)


def hold_large_withdrawals(
    say: Narrator, app: Application, store: DynamoDBEventStore, alice: str
) -> None:
    """Withdrawals above 1,000 wait for the owner: a process manager schedules their release and
    a deadline runner fires it; the clock is moved on, not waited for."""
    deadlines = DynamoDBDeadlineStore(store)
    deadlines.create_table()
    holds = CatchUpRunner(
        store,
        DynamoDBPositionStore(store),
        [WithdrawalHolds(app, deadlines=deadlines)],
        safety_window=dt.timedelta(0),
    )
    say.line("Large withdrawals wait for the owner's confirmation:")
    say.step("Alice deposits 3,000.00", DepositMoney(account_id=alice, amount=Decimal(3000)))
    confirmed = say.step(
        "Alice withdraws 1,500.00 (above 1,000.00: held until she confirms it)",
        WithdrawMoney(account_id=alice, amount=Decimal(1500)),
    )
    say.step(
        "Alice withdraws 1,200.00 and never confirms it",
        WithdrawMoney(account_id=alice, amount=Decimal(1200)),
    )
    holds.run(until=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))
    pending = deadlines.list()
    say.line(
        f"    the process manager scheduled {len(pending)} release(s), "
        f"{int(HOLD_FOR.total_seconds() // 60)} minutes after each hold"
    )
    if confirmed is None:  # refused (it was not, the account has the money): nothing to show
        return
    hold_id = f"hold-{confirmed.versions[f'{Account.aggregate_type()}#{alice}']}"
    say.step(
        f"Alice confirms the first ({hold_id})",
        ConfirmWithdrawal(account_id=alice, hold_id=hold_id),
    )
    holds.run(until=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))
    later = dt.datetime.now(dt.UTC) + HOLD_FOR + dt.timedelta(minutes=1)
    report = DeadlineRunner(app, deadlines).run_due(later)
    account = app.get(Account, alice)
    cancelled = sum(1 for d in deadlines.list() if d.status is DeadlineStatus.CANCELLED)
    say.line(
        f"* {int(HOLD_FOR.total_seconds() // 60) + 1} minutes later the deadline runner fired "
        f"{report.fired} release(s); {cancelled} was cancelled by the confirmation"
    )
    say.line(f"    Alice's balance: {account.balance}, held: {len(account.holds)}")


def print_read_models(
    say: Narrator, store: DynamoDBEventStore, accounts: list[str], users: list[str]
) -> None:
    """Print the read models the projectors built."""
    models = models_for(store)
    balances = [models.balances.get(account_id, consistent_read=True) for account_id in accounts]
    say.table(
        "Account balances (read model)",
        ("account", "owner", "balance", "status"),
        [
            (
                row.account_id,
                owner_name(models, row),
                f"{Decimal(str(row.balance)):.2f}",
                "closed" if row.closed else "open",
            )
            for row in balances
        ],
    )
    lines = list(models.statements.query(accounts[0], consistent_read=True))
    say.table(
        f"Statement of {accounts[0]} (read model)",
        ("version", "movement", "amount"),
        [(str(line.version), line.kind, f"{line.amount:+.2f}") for line in lines],
    )
    entries = [models.users.get(user_id, consistent_read=True) for user_id in users]
    say.table(
        "User directory (read model)",
        ("user", "name", "email"),
        [(entry.user_id, entry.name, entry.email) for entry in entries],
    )

"""Load with faults, on DynamoDB Local: nothing lost, nothing doubled, no partial change set.

Four worker processes send deposits and transfers to four hot accounts through a proxy that drops
connections, delays traffic and swallows responses after DynamoDB applied the request; inside each
worker, botocore also meets injected throttling and 500 errors. A fifth worker is killed with
SIGKILL in the middle of its run. Clients retry a command whose outcome is unknown with the same
command id, as a well-behaved client would.

Afterwards the events table is the judge: every stream is gap-free and agrees with its metadata
item; every command id that reached the store did so exactly once and whole (a transfer's debit
and credit together); everything a worker was told was accepted is there, everything refused is
not; and the money adds up.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import time
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import botocore.awsrequest
import pytest
from botocore.compat import HTTPHeaders
from botocore.config import Config

from framework import Application, ConcurrencyError, DomainError, DynamoDBEventStore, EveryNEvents
from framework.errors import StoreUnavailable, Throttled, TransactionConflict
from framework.logs import configure_logging
from framework.testing.bank import Account, Deposit, OpenAccount, Transfer, transfer
from tests.reliability.faulty_proxy import Faults, FaultyProxy

pytestmark = [pytest.mark.dynamodb_local, pytest.mark.slow]

WORKERS = 4
COMMANDS = 50
ACCOUNTS = ("hot-1", "hot-2", "hot-3", "hot-4")
OPENING_DEPOSIT = Decimal(60)
_report = os.environ.get("RELIABILITY_REPORT")
REPORT = Path(_report) if _report else None
"""Where to write the run's figures (for docs/reliability.md), when set."""


class _Body:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body


def _inject_botocore_faults(client: Any, rng: random.Random, counts: Counter[str]) -> None:
    """Throttling and 500s before a request leaves the process: botocore must retry them."""

    def maybe_fail(request: Any, **_: Any) -> botocore.awsrequest.AWSResponse | None:
        roll = rng.random()
        if roll < 0.03:
            counts["throttling responses"] += 1
            body = b'{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException"}'
            return botocore.awsrequest.AWSResponse(request.url, 400, HTTPHeaders(), _Body(body))
        if roll < 0.06:
            counts["500 responses"] += 1
            body = b'{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError"}'
            return botocore.awsrequest.AWSResponse(request.url, 500, HTTPHeaders(), _Body(body))
        return None

    client.meta.events.register_first("before-send.dynamodb.*", maybe_fail)


def _worker(endpoint: str, prefix: str, seed: int, commands: int) -> dict[str, Any]:
    configure_logging("ERROR")
    rng = random.Random(seed)
    counts: Counter[str] = Counter()
    store = DynamoDBEventStore(
        table_prefix=prefix,
        endpoint_url=endpoint,
        client_config=Config(
            retries={"total_max_attempts": 5, "mode": "standard"},
            connect_timeout=2,
            read_timeout=5,
        ),
    )
    _inject_botocore_faults(store.client, rng, counts)
    app = Application(
        store=store,
        aggregates=[Account],
        handlers=[transfer],
        snapshots={Account: EveryNEvents(10)},
        max_attempts=40,
    )
    outcomes: dict[str, str] = {}
    sent: dict[str, list[str]] = {}
    for index in range(commands):
        command_id = f"w{seed}-{index}"
        amount = Decimal(rng.randint(1, 5000)) / 100
        if rng.random() < 0.4:
            target = rng.choice(ACCOUNTS)
            command: Deposit | Transfer = Deposit(
                account_id=target, amount=amount, command_id=command_id
            )
            sent[command_id] = ["deposit", "", target, str(amount)]
        else:
            source, target = rng.sample(ACCOUNTS, 2)
            command = Transfer(
                source_id=source, target_id=target, amount=amount, command_id=command_id
            )
            sent[command_id] = ["transfer", source, target, str(amount)]
        outcome = "unknown"
        for _ in range(20):  # the client retries an unknown outcome with the same command id
            try:
                result = app.handle(command)
            except DomainError:
                outcome = "refused"
                break
            except (StoreUnavailable, Throttled, ConcurrencyError, TransactionConflict) as error:
                counts[f"client retries after {type(error).__name__}"] += 1
                time.sleep(0.01)
                continue
            outcome = "accepted"
            counts["accepted as duplicate (first result returned)"] += result.duplicate
            counts["commands retried inside the application"] += result.attempts > 1
            break
        outcomes[command_id] = outcome
    return {"outcomes": outcomes, "sent": sent, "counts": dict(counts)}


def _doomed_worker(endpoint: str, prefix: str) -> None:
    """Runs until it is killed: whatever it was doing must be all or nothing."""
    _worker(endpoint, prefix, seed=99, commands=10_000)


def test_nothing_is_lost_doubled_or_half_written(local_store: DynamoDBEventStore) -> None:
    app = Application(store=local_store, aggregates=[Account], handlers=[transfer])
    for account_id in ACCOUNTS:
        app.handle(OpenAccount(account_id=account_id, owner=account_id))
        app.handle(Deposit(account_id=account_id, amount=OPENING_DEPOSIT))
    assert local_store.endpoint_url is not None
    host, port = local_store.endpoint_url.removeprefix("http://").split(":")
    proxy = FaultyProxy(
        host, int(port), Faults(drop=0.02, swallow=0.03, delay=0.05), seed=7
    ).start()
    context = multiprocessing.get_context("spawn")
    doomed = context.Process(
        target=_doomed_worker, args=(proxy.endpoint_url, local_store.tables.prefix)
    )
    started = time.monotonic()
    try:
        doomed.start()
        with context.Pool(WORKERS) as pool:
            pending = pool.starmap_async(
                _worker,
                [
                    (proxy.endpoint_url, local_store.tables.prefix, seed, COMMANDS)
                    for seed in range(WORKERS)
                ],
            )
            time.sleep(8)
            os.kill(doomed.pid or 0, signal.SIGKILL)  # mid-run, mid-request most likely
            doomed.join()
            reports = pending.get(timeout=900)
    finally:
        proxy.stop()
    elapsed = time.monotonic() - started
    assert doomed.exitcode == -signal.SIGKILL

    outcomes = {k: v for report in reports for k, v in report["outcomes"].items()}
    sent = {k: v for report in reports for k, v in report["sent"].items()}
    counts: Counter[str] = Counter()
    for report in reports:
        counts.update(report["counts"])

    # What the store holds, command by command.
    by_command: dict[str, list[tuple[str, int, str, str]]] = defaultdict(list)
    balances: dict[str, Decimal] = {}
    for account_id in ACCOUNTS:
        records = local_store.load_events("Account", account_id)
        assert [r.version for r in records] == list(range(1, len(records) + 1)), "gap in stream"
        metadata = local_store.client.get_item(
            TableName=local_store.tables.aggregates, Key={"pk": {"S": f"Account#{account_id}"}}
        )["Item"]
        assert int(metadata["version"]["N"]) == len(records), "metadata disagrees with events"
        for record in records:
            by_command[record.command_id].append(
                (account_id, record.version, record.event_type, record.change_set_id)
            )
        balances[account_id] = app.get(Account, account_id).balance
        assert balances[account_id] >= 0

    applied_deposits = Decimal(0)
    for command_id, events in by_command.items():
        if not command_id.startswith("w"):
            continue  # the set-up commands
        assert len({change_set for *_, change_set in events}) == 1, f"{command_id} applied twice"
        kinds = sorted(event_type for _, _, event_type, _ in events)
        if command_id.startswith("w99-"):  # the killed worker: no report, the store must be whole
            assert kinds in (["Deposited"], ["Deposited", "Withdrawn"]), (command_id, events)
            continue
        kind, source, target, amount = sent[command_id]
        if kind == "deposit":
            assert kinds == ["Deposited"] and events[0][0] == target
            applied_deposits += Decimal(amount)
        else:
            assert kinds == ["Deposited", "Withdrawn"], f"partial transfer {command_id}: {events}"
            assert {account for account, *_ in events} == {source, target}
    killed_deposits = Decimal(0)
    for command_id, events in by_command.items():
        if command_id.startswith("w99-") and len(events) == 1:
            record = local_store.load_events("Account", events[0][0], events[0][1] - 1)[0]
            killed_deposits += Decimal(json.loads(record.payload)["amount"])

    for command_id, outcome in outcomes.items():
        if outcome == "accepted":
            assert command_id in by_command, f"accepted {command_id} is missing: lost"
        if outcome == "refused":
            assert command_id not in by_command, f"refused {command_id} was written"
    unknown = [c for c, o in outcomes.items() if o == "unknown"]
    assert len(unknown) <= len(outcomes) // 10, "the faults drowned the run"

    total = sum(balances.values())
    assert total == OPENING_DEPOSIT * len(ACCOUNTS) + applied_deposits + killed_deposits

    injected = dict(proxy.injected) | {
        k: v for k, v in counts.items() if k in ("throttling responses", "500 responses")
    }
    figures = {
        "worker processes": WORKERS,
        "killed with SIGKILL": 1,
        "commands sent (reported workers)": len(outcomes),
        "accepted": sum(o == "accepted" for o in outcomes.values()),
        "refused by the rules (insufficient funds)": sum(o == "refused" for o in outcomes.values()),
        "outcome unknown after 20 client retries": len(unknown),
        "commands of the killed worker found whole in the store": sum(
            1 for c in by_command if c.startswith("w99-")
        ),
        "faults injected": injected,
        "retries": {k: v for k, v in counts.items() if "retr" in k or "duplicate" in k},
        "lost": 0,
        "doubled": 0,
        "partial change sets": 0,
        "seconds": round(elapsed, 1),
    }
    if REPORT is not None:
        REPORT.write_text(json.dumps(figures, indent=2, default=str))
    assert sum(proxy.injected.values()) > 0 and counts["throttling responses"] > 0

"""``python -m framework``, run as a person would: a subprocess against DynamoDB Local."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal

import pytest

from framework import Application, DynamoDBEventStore
from framework.testing.bank import Account, Deposit, OpenAccount, Withdraw
from framework.testing.pytest_plugin import unique_prefix
from tests.support.projectors import create_read_table, read_table

pytestmark = pytest.mark.dynamodb_local

FLAKY = "tests.support.cli_projectors:FlakyBalances"


def cli(
    endpoint: str, prefix: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "framework", "--endpoint", endpoint, "--prefix", prefix, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=120,
        check=False,
    )


@pytest.fixture
def prefix() -> str:
    return unique_prefix()


def test_tables_lifecycle(dynamodb_local_endpoint: str, prefix: str) -> None:
    created = cli(dynamodb_local_endpoint, prefix, "tables", "create")
    assert created.returncode == 0, created.stderr
    assert f"tables {prefix}-* are active" in created.stdout
    status = cli(dynamodb_local_endpoint, prefix, "tables", "status")
    assert status.stdout.count("ACTIVE") == 5  # the deadlines table too
    assert f"{prefix}-deadlines" in status.stdout
    deleted = cli(dynamodb_local_endpoint, prefix, "tables", "delete", "--yes")
    assert deleted.returncode == 0 and "deleted" in deleted.stdout
    assert cli(dynamodb_local_endpoint, prefix, "tables", "status").stdout.count("missing") == 5


def test_errors_are_one_line_without_traceback(dynamodb_local_endpoint: str, prefix: str) -> None:
    missing = cli(dynamodb_local_endpoint, prefix, "events", "show", "Account", "a")
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        f"Error: TableMissing: table '{prefix}-events' does not exist: create it with "
        "store.create_tables() or check the table prefix (DYNAMO_TABLE_PREFIX)"
    )
    bad_spec = cli(dynamodb_local_endpoint, prefix, "projections", "replay", "nowhere:Nothing")
    assert bad_spec.returncode == 2 and "cannot import 'nowhere:Nothing'" in bad_spec.stderr
    assert "Traceback" not in bad_spec.stderr + missing.stderr
    unknown = cli(dynamodb_local_endpoint, prefix, "frobnicate")
    assert unknown.returncode == 2 and "No such command 'frobnicate'" in unknown.stderr


def test_help_everywhere(dynamodb_local_endpoint: str, prefix: str) -> None:
    for args in (
        ["--help"],
        ["tables", "--help"],
        ["events", "show", "--help"],
        ["projections", "retry", "--help"],
    ):
        shown = cli(dynamodb_local_endpoint, prefix, *args)
        assert shown.returncode == 0 and "Usage: python -m framework" in shown.stdout


def test_events_and_projections_from_the_command_line(
    dynamodb_local_endpoint: str, prefix: str
) -> None:
    store = DynamoDBEventStore(table_prefix=prefix, endpoint_url=dynamodb_local_endpoint)
    store.create_tables()
    app = Application(store=store, aggregates=[Account])
    app.handle(OpenAccount(account_id="a", owner="Ann"))
    app.handle(Deposit(account_id="a", amount=Decimal("12.50")))
    app.handle(Withdraw(account_id="a", amount=Decimal("2.50")))
    app.handle(Deposit(account_id="a", amount=Decimal(1)))
    table = create_read_table(store, "cli")

    shown = cli(dynamodb_local_endpoint, prefix, "events", "show", "Account", "a")
    assert shown.returncode == 0, shown.stderr
    assert '{"amount": "12.50"}' in shown.stdout and "Withdrawn" in shown.stdout

    flaky = {"FLAKY_READ_MODEL": "1"}
    replay = cli(
        dynamodb_local_endpoint,
        prefix,
        "projections",
        "replay",
        FLAKY,
        "--safety-window",
        "0",
        env=flaky,
    )
    assert replay.returncode == 3, replay.stderr  # a replay that parked did not succeed
    assert "flaky-balances: 2 applied, 0 already applied, 1 parked" in replay.stdout
    assert "parked: flaky-balances:Account#a@3" in replay.stderr

    status = cli(dynamodb_local_endpoint, prefix, "projections", "status", FLAKY)
    assert status.returncode == 0, status.stderr
    assert "flaky-balances" in status.stdout and "Account#a" in status.stdout
    assert "ConnectionError: read model unreachable" in status.stdout
    assert " 2 " in status.stdout  # two events behind: the parked one and the one after it

    still_down = cli(
        dynamodb_local_endpoint, prefix, "projections", "retry", FLAKY, "Account#a", env=flaky
    )
    assert "parked again at flaky-balances:Account#a@3" in still_down.stdout
    assert still_down.returncode == 3

    retried = cli(dynamodb_local_endpoint, prefix, "projections", "retry", FLAKY, "Account#a")
    assert retried.returncode == 0, retried.stderr
    assert "flaky-balances retried Account#a@3: 2 applied, caught up" in retried.stdout
    assert (
        "no parked events" in cli(dynamodb_local_endpoint, prefix, "projections", "status").stdout
    )

    assert read_table(store, table) == {"a": (Decimal("11.00"), 4)}

    nothing = cli(dynamodb_local_endpoint, prefix, "projections", "skip", FLAKY, "Account#a")
    assert nothing.returncode == 1
    assert "flaky-balances has no parked event in Account#a" in nothing.stderr


def test_iam_policy_covers_exactly_the_tables(dynamodb_local_endpoint: str, prefix: str) -> None:
    printed = cli(dynamodb_local_endpoint, prefix, "iam-policy", "--account", "123456789012")
    assert printed.returncode == 0, printed.stderr
    document = json.loads(printed.stdout)
    resources = [r for statement in document["Statement"] for r in statement["Resource"]]
    assert f"arn:aws:dynamodb:us-east-1:123456789012:table/{prefix}-events/index/feed" in resources
    assert (
        f"arn:aws:dynamodb:us-east-1:123456789012:table/{prefix}-deadlines/index/due" in resources
    )
    assert all(prefix in resource for resource in resources)
    actions = [a for statement in document["Statement"] for a in statement["Action"]]
    assert "dynamodb:PutItem" in actions and not any(a.endswith("*") for a in actions)
    assert "dynamodb:DeleteTable" not in actions
    with_bucket = cli(dynamodb_local_endpoint, prefix, "iam-policy", "--bucket", "big-events")
    statements = json.loads(with_bucket.stdout)["Statement"]
    assert statements[-1]["Resource"] == ["arn:aws:s3:::big-events/events/*"]
    with_key = cli(
        dynamodb_local_endpoint, prefix, "iam-policy", "--account", "1", "--kms-key", "k-1"
    )
    last = json.loads(with_key.stdout)["Statement"][-1]
    assert last["Action"] == ["kms:GenerateDataKey", "kms:Decrypt"]
    assert last["Resource"] == ["arn:aws:kms:us-east-1:1:key/k-1"]


def test_iam_policy_takes_the_publishers_queue_from_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from click.testing import CliRunner

    from framework.cli import main

    monkeypatch.setenv("PUBLISH_DLQ_URL", "https://sqs.eu-west-1.amazonaws.com/123/bank-dlq")
    monkeypatch.setenv("EVENT_BUS_NAME", "bank-events")
    monkeypatch.setenv("PUBLISH_PAYLOAD_BUCKET", "bank-published")
    printed = CliRunner().invoke(main, ["iam-policy", "--account", "123", "--region", "eu-west-1"])
    assert printed.exit_code == 0, printed.output
    statements = {s["Sid"]: s for s in json.loads(printed.output)["Statement"]}
    assert statements["PublisherDeadLetters"]["Resource"] == ["arn:aws:sqs:eu-west-1:123:bank-dlq"]
    assert statements["PublishToTheBus"]["Resource"] == [
        "arn:aws:events:eu-west-1:123:event-bus/bank-events"
    ]
    assert statements["PublishedPayloads"] == {
        "Sid": "PublishedPayloads",
        "Effect": "Allow",
        "Action": ["s3:PutObject"],
        "Resource": ["arn:aws:s3:::bank-published/published/*"],
    }


def test_follow_applies_new_events_live_until_stopped(
    dynamodb_local_endpoint: str, prefix: str
) -> None:
    store = DynamoDBEventStore(table_prefix=prefix, endpoint_url=dynamodb_local_endpoint)
    store.create_tables()
    try:
        table = create_read_table(store, "cli")
        app = Application(store=store, aggregates=[Account])
        app.handle(OpenAccount(account_id="a", owner="Ann"))
        follower = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "framework",
                "--endpoint",
                dynamodb_local_endpoint,
                "--prefix",
                prefix,
                "projections",
                "follow",
                FLAKY,
                "--interval",
                "0.1",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "DYNAMO_TABLE_PREFIX": prefix},
        )
        try:
            app.handle(Deposit(account_id="a", amount=Decimal("2.50")))
            deadline = time.monotonic() + 30
            while read_table(store, table).get("a") != (Decimal("2.50"), 2):
                assert time.monotonic() < deadline and follower.poll() is None
                time.sleep(0.1)
        finally:
            follower.send_signal(signal.SIGTERM)
            _, stderr = follower.communicate(timeout=30)
        assert follower.returncode == 0, stderr
        assert "following the events stream for flaky-balances" in stderr
        assert stderr.rstrip().endswith("stopped")
    finally:
        store.delete_tables()


BALANCES = "example_app.read_models:AccountBalances"


def test_read_model_tables_and_a_true_rebuild(dynamodb_local_endpoint: str, prefix: str) -> None:
    from example_app.bank import DepositMoney
    from example_app.bank import OpenAccount as OpenExampleAccount
    from example_app.read_models import AccountBalance
    from example_app.wiring import build_application
    from framework.projections.read_models import bound, existing_tables

    created = cli(dynamodb_local_endpoint, prefix, "tables", "create", "--projector", BALANCES)
    assert created.returncode == 0, created.stderr
    assert f"read model {prefix}-read-balances is active" in created.stdout
    status = cli(dynamodb_local_endpoint, prefix, "tables", "status", "--projector", BALANCES)
    # the four tables, the deadlines table and the read model
    assert f"{prefix}-read-balances" in status.stdout and status.stdout.count("ACTIVE") == 6

    store = DynamoDBEventStore(table_prefix=prefix, endpoint_url=dynamodb_local_endpoint)
    app = build_application(store)
    app.handle(OpenExampleAccount(account_id="a", owner="Ann"))
    for _ in range(3):
        app.handle(DepositMoney(account_id="a", amount=Decimal("1.10")))
    time.sleep(0.2)  # past the feed's commit times, with a zero safety window
    # The balances read MoneyDeposited, at schema version 2: without the application's upcasters
    # the replay is refused before it applies anything, in one line.
    refused = cli(dynamodb_local_endpoint, prefix, "projections", "replay", BALANCES)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "add @upcaster('MoneyDeposited', from_version=1)" in refused.stderr
    for args in ([], ["--rebuild"], ["--rebuild"]):
        replayed = cli(
            dynamodb_local_endpoint,
            prefix,
            "projections",
            "replay",
            BALANCES,
            "--safety-window",
            "0",
            "--upcasters",
            "example_app.bank:UPCASTERS",
            *args,
        )
        assert replayed.returncode == 0, replayed.stderr
        row = bound(AccountBalance, store).get("a", consistent_read=True)
        assert (row.balance, row.version) == (Decimal("3.30"), 4)  # never doubled

    deleted = cli(dynamodb_local_endpoint, prefix, "tables", "delete", "--yes")
    assert deleted.returncode == 0 and "(1 read models)" in deleted.stdout
    assert existing_tables(store) == []
    assert set(store.table_status().values()) == {None}


def test_deadlines_are_listed_and_fired_from_the_command_line(
    dynamodb_local_endpoint: str, prefix: str
) -> None:
    from framework.projections.deadlines import Deadline, encode_command
    from framework.projections.dynamodb_deadlines import DynamoDBDeadlineStore
    from tests.support.processes import ExpireOrder, PlaceOrder, order_application

    assert cli(dynamodb_local_endpoint, prefix, "tables", "create").returncode == 0
    store = DynamoDBEventStore(table_prefix=prefix, endpoint_url=dynamodb_local_endpoint)
    order_application(store).handle(PlaceOrder(order_id="o1", sku="apple"))
    command_type, document = encode_command(ExpireOrder(order_id="o1"))
    due = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    DynamoDBDeadlineStore(store).schedule(
        Deadline("d-1", "fulfilment", due, command_type, document)
    )
    listed = cli(dynamodb_local_endpoint, prefix, "deadlines", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (row["deadlineId"], row["status"], row["commandType"]) == (
        "d-1",
        "pending",
        "ExpireOrder",
    )
    run = ["deadlines", "run", "--application", "tests.support.processes:order_application"]
    early = cli(dynamodb_local_endpoint, prefix, *run, "--now", "2029-12-31T23:59")
    assert early.returncode == 0, early.stderr
    assert "0 fired" in early.stdout
    fired = cli(dynamodb_local_endpoint, prefix, *run, "--now", "2030-01-01T00:00")
    assert "1 fired" in fired.stdout, fired.stderr
    assert store.load_events("Order", "o1", 0)[-1].command_id == "d-1"
    shown = cli(dynamodb_local_endpoint, prefix, "deadlines", "list", "--status", "fired")
    assert "d-1" in shown.stdout and "1 deadlines" in shown.stdout
    unknown = cli(dynamodb_local_endpoint, prefix, "deadlines", "run", "--application", "nope")
    assert unknown.returncode == 1 and "APPLICATION='nope'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    cli(dynamodb_local_endpoint, prefix, "tables", "delete", "--yes")

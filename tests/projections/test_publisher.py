"""The EventBridge publisher on moto: a rule routes the bus to an SQS queue, and the queue must
receive exactly the committed events, each stream in version order, personal data erased;
injected ``PutEvents`` partial failures end in the dead-letter queue after the retries."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any, ClassVar

import attrs
import boto3
import pytest

from example_app.bank import UPCASTERS, DepositMoney, OpenAccount, TransferMoney, WithdrawMoney
from example_app.publishing import BankEvents
from example_app.users import ChangeEmail, ForgetUser, RegisterUser
from example_app.wiring import build_application, key_ring
from framework import Application, DynamoDBEventStore, Event
from framework.config import Settings
from framework.encryption import ERASED
from framework.errors import BusUnavailable, ConfigurationError, EntryTooLarge
from framework.projections import CatchUpRunner, Envelope
from framework.projections.eventbridge import EventBridgeBus, SqsDeadLetterQueue
from framework.projections.publisher import (
    BusEntry,
    EntryFailure,
    EventBridgePublisher,
    InMemoryDeadLetterQueue,
    InMemoryEventBus,
    event_id,
)
from framework.store import DynamoDBPositionStore, InMemoryPositionStore
from framework.store.large_payloads import InMemoryPayloadStore

SECRETS = ("Ada Lovelace", "ada@example.org", "ada@new.example.org", "Grace Hopper")


@attrs.define
class Aws:
    """A bus whose rule routes everything of ``example-bank`` to ``target``, and a DLQ."""

    events: Any
    sqs: Any
    target: str
    dlq: str

    def bus(self) -> EventBridgeBus:
        return EventBridgeBus("bank-bus", client=self.events)

    def dead_letters(self) -> SqsDeadLetterQueue:
        return SqsDeadLetterQueue(self.dlq, client=self.sqs)

    def received(self, queue: str | None = None) -> list[dict[str, Any]]:
        """Every message of ``queue`` (the rule's target by default), drained."""
        bodies: list[dict[str, Any]] = []
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=queue or self.target, MaxNumberOfMessages=10
            ).get("Messages", [])
            if not messages:
                return bodies
            for message in messages:
                bodies.append(json.loads(message["Body"]))
                self.sqs.delete_message(
                    QueueUrl=queue or self.target, ReceiptHandle=message["ReceiptHandle"]
                )


@pytest.fixture
def aws(moto_store: DynamoDBEventStore) -> Aws:
    events = boto3.client("events", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    events.create_event_bus(Name="bank-bus")
    target = sqs.create_queue(QueueName="bank-subscriber")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=target, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="all-bank-events",
        EventBusName="bank-bus",
        EventPattern=json.dumps({"source": ["example-bank"]}),
    )
    events.put_targets(
        Rule="all-bank-events", EventBusName="bank-bus", Targets=[{"Id": "q", "Arn": arn}]
    )
    dlq = sqs.create_queue(QueueName="bank-publisher-dlq")["QueueUrl"]
    return Aws(events, sqs, target, dlq)


@pytest.fixture
def bank(moto_store: DynamoDBEventStore) -> Application:
    app = build_application(moto_store)
    app.handle(RegisterUser(user_id="u1", name="Ada Lovelace", email="ada@example.org"))
    app.handle(RegisterUser(user_id="u2", name="Grace Hopper", email="grace@example.org"))
    app.handle(OpenAccount(account_id="a1", owner="Ada Lovelace", owner_id="u1"))
    app.handle(OpenAccount(account_id="a2", owner="Grace Hopper", owner_id="u2"))
    for amount in ("10", "20", "30"):
        app.handle(DepositMoney(account_id="a1", amount=Decimal(amount)))
    app.handle(TransferMoney(source_account_id="a1", target_account_id="a2", amount=Decimal(5)))
    app.handle(WithdrawMoney(account_id="a2", amount=Decimal(1)))
    app.handle(ChangeEmail(user_id="u1", email="ada@new.example.org"))
    return app


def committed(store: DynamoDBEventStore) -> dict[str, list[int]]:
    """Per stream, the versions the store holds."""
    streams: dict[str, list[int]] = {}
    for record in store.read_feed():
        streams.setdefault(record.stream, []).append(record.version)
    return {stream: sorted(versions) for stream, versions in streams.items()}


def per_stream(bodies: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Per stream, the versions in the order they were received."""
    streams: dict[str, list[int]] = {}
    for body in bodies:
        detail = body["detail"]
        stream = f"{detail['aggregateType']}#{detail['aggregateId']}"
        streams.setdefault(stream, []).append(detail["version"])
    return streams


def far_future() -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(days=1)


def catch_up(store: DynamoDBEventStore, publisher: EventBridgePublisher) -> CatchUpRunner:
    return CatchUpRunner(
        store,
        DynamoDBPositionStore(store),
        [publisher],
        safety_window=dt.timedelta(0),
        upcasters=UPCASTERS,
    )


def test_the_rule_receives_every_committed_event_once_in_stream_order(
    moto_store: DynamoDBEventStore, aws: Aws, bank: Application
) -> None:
    publisher = BankEvents(bus=aws.bus(), dead_letters=aws.dead_letters())
    report = catch_up(moto_store, publisher).run(until=far_future())
    bodies = aws.received()
    assert report.applied == len(bodies) == sum(map(len, committed(moto_store).values()))
    assert per_stream(bodies) == committed(moto_store)
    assert {b["source"] for b in bodies} == {"example-bank"}
    assert all(b["detail-type"] == b["detail"]["eventType"] for b in bodies)
    ids = [b["detail"]["eventId"] for b in bodies]
    assert len(set(ids)) == len(ids)
    # The feed interleaves streams in no set order: the first deposit of a1, not the first seen.
    deposit = next(
        b["detail"]
        for b in bodies
        if b["detail-type"] == "MoneyDeposited" and b["detail"]["aggregateId"] == "a1"
    )
    assert deposit["payload"]["amount"]["amount"] == "10"
    assert set(deposit) >= {
        "changeSetId",
        "commandId",
        "correlationId",
        "causationId",
        "occurredAt",
        "version",
    }
    # Personal fields are erased, although the application's key ring could read them.
    assert not any(secret in json.dumps(bodies) for secret in SECRETS)
    registered = next(b["detail"] for b in bodies if b["detail-type"] == "UserRegistered")
    assert registered["payload"] == {"name": ERASED, "email": ERASED}
    # The positions remember: a second run publishes nothing, a new event alone.
    assert catch_up(moto_store, publisher).run(until=far_future()).applied == 0
    assert aws.received() == []
    bank.handle(DepositMoney(account_id="a2", amount=Decimal(7)))
    catch_up(moto_store, publisher).run(until=far_future())
    assert [b["detail"]["version"] for b in aws.received()] == [4]
    assert aws.received(aws.dlq) == []


def test_a_crash_before_the_position_moves_publishes_again_with_the_same_event_ids(
    moto_store: DynamoDBEventStore, aws: Aws, bank: Application
) -> None:
    positions = DynamoDBPositionStore(moto_store)

    class Crashing(DynamoDBPositionStore):
        def advance_many(self, *args: Any, **kwargs: Any) -> Any:
            raise ConnectionError("the host died after PutEvents, before the positions moved")

    publisher = BankEvents(bus=aws.bus(), dead_letters=aws.dead_letters())
    crashing = CatchUpRunner(
        moto_store,
        Crashing(moto_store),
        [publisher],
        safety_window=dt.timedelta(0),
        upcasters=UPCASTERS,
    )
    with pytest.raises(ConnectionError):
        crashing.run(until=far_future())
    first = aws.received()
    assert first  # sent before the positions could move
    CatchUpRunner(
        moto_store, positions, [publisher], safety_window=dt.timedelta(0), upcasters=UPCASTERS
    ).run(until=far_future())
    again = aws.received()
    assert per_stream(again) == committed(moto_store)  # nothing lost, at least once
    first_ids = {b["detail"]["eventId"] for b in first}
    assert first_ids <= {b["detail"]["eventId"] for b in again}  # the same ids: deduplicable


def refusing(aws: Aws, refuse: Any) -> EventBridgeBus:
    """A bus whose ``PutEvents`` refuses the entries ``refuse(detail)`` names, as EventBridge
    does in a partial failure: the others go through, the refused ones carry an ``ErrorCode``."""
    real = aws.events

    class PartlyFailing:
        def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
            results: list[dict[str, Any]] = []
            accepted = []
            for entry in Entries:
                if refuse(json.loads(entry["Detail"])):
                    results.append(
                        {"ErrorCode": "InternalFailure", "ErrorMessage": "injected failure"}
                    )
                else:
                    accepted.append(entry)
                    results.append({})
            if accepted:
                answers = iter(real.put_events(Entries=accepted)["Entries"])
                results = [r if r else next(answers) for r in results]
            failed = sum(1 for r in results if "ErrorCode" in r)
            return {"FailedEntryCount": failed, "Entries": results}

    return EventBridgeBus("bank-bus", client=PartlyFailing())


def test_partial_failures_are_retried_then_dead_lettered_and_nothing_is_lost(
    moto_store: DynamoDBEventStore, aws: Aws, bank: Application
) -> None:
    attempts: dict[tuple[str, int], int] = {}

    def refuse(detail: dict[str, Any]) -> bool:
        key = (detail["aggregateId"], detail["version"])
        attempts[key] = attempts.get(key, 0) + 1
        if key == ("a1", 2):  # refused for good
            return True
        return key == ("u1", 1) and attempts[key] <= 2  # refused twice, then accepted

    pauses: list[float] = []
    publisher = BankEvents(
        bus=refusing(aws, refuse), dead_letters=aws.dead_letters(), sleep=pauses.append
    )
    catch_up(moto_store, publisher).run(until=far_future())
    bodies = aws.received()
    expected = committed(moto_store)
    expected["Account#a1"].remove(2)
    assert per_stream(bodies) == expected  # the others in order, u1's first after its retries
    assert attempts[("a1", 2)] == BankEvents.max_attempts
    assert attempts[("u1", 1)] == 3
    assert pauses and all(0 <= p <= BankEvents.backoff.cap for p in pauses)
    (letter,) = aws.received(aws.dlq)
    assert letter["stream"] == "Account#a1" and letter["version"] == 2
    assert letter["eventType"] == "MoneyDeposited" and letter["bus"] == "bank-bus"
    assert letter["errorCode"] == "InternalFailure" and letter["attempts"] == 5
    assert letter["errorMessage"] == "injected failure" and letter["publisher"] == "bank-events"
    assert letter["eventId"] == event_id(
        moto_store.load_events("Account", "a1", 1)[0].change_set_id, "Account#a1", 2
    )
    assert not any(secret in json.dumps([bodies, letter]) for secret in SECRETS)
    # The position moved past the dead-lettered event: the stream goes on.
    assert catch_up(moto_store, publisher).run(until=far_future()).applied == 0


def test_dead_letters_are_resent_from_the_store(
    moto_store: DynamoDBEventStore, aws: Aws, bank: Application
) -> None:
    failing = BankEvents(
        bus=refusing(aws, lambda d: d["aggregateId"] == "u1"),
        dead_letters=aws.dead_letters(),
        sleep=lambda _: None,
    )
    catch_up(moto_store, failing).run(until=far_future())
    aws.received()
    letters = failing.dead_letter_list()
    assert sorted(letter["version"] for letter in letters) == [1, 2]
    bank.handle(ForgetUser(user_id="u1"))
    healthy = BankEvents(bus=aws.bus(), dead_letters=aws.dead_letters())
    report = healthy.resend_dead_letters(moto_store, upcasters=UPCASTERS)
    assert report.published == 2 and healthy.dead_letter_list() == []
    resent = aws.received()
    assert sorted(b["detail"]["version"] for b in resent) == [1, 2]
    assert {b["detail"]["eventId"] for b in resent} == {m["eventId"] for m in letters}
    assert not any(secret in json.dumps(resent) for secret in SECRETS)


def test_a_whole_request_that_keeps_failing_moves_no_position(
    moto_store: DynamoDBEventStore, aws: Aws, bank: Application
) -> None:
    bus = InMemoryEventBus()

    def unreachable(entries: Any) -> Any:
        raise BusUnavailable("no route to EventBridge")

    bus.put_events = unreachable  # type: ignore[method-assign]
    publisher = BankEvents(bus=bus, dead_letters=InMemoryDeadLetterQueue(), sleep=lambda _: None)
    with pytest.raises(BusUnavailable):
        catch_up(moto_store, publisher).run(until=far_future())
    memory = InMemoryEventBus()
    working = BankEvents(bus=memory, dead_letters=InMemoryDeadLetterQueue())
    assert catch_up(moto_store, working).run(until=far_future()).applied == sum(
        map(len, committed(moto_store).values())
    )


def test_readable_fields_need_naming_and_a_forgotten_subject_stays_erased(
    moto_store: DynamoDBEventStore, bank: Application
) -> None:
    from example_app.users import UserRegistered

    class WithEmails(BankEvents, name="with-emails"):
        readable: ClassVar[Mapping[type[Event], frozenset[str]]] = {
            UserRegistered: frozenset({"email"})
        }

    bus = InMemoryEventBus()
    publisher = WithEmails(bus=bus, dead_letters=InMemoryDeadLetterQueue())
    publisher.key_ring = key_ring(moto_store)
    runner = CatchUpRunner(
        moto_store,
        InMemoryPositionStore(),
        [publisher],
        safety_window=dt.timedelta(0),
        upcasters=UPCASTERS,
    )
    runner.run(until=far_future())
    registered = [d for d in bus.details() if d["eventType"] == "UserRegistered"]
    assert {d["payload"]["email"] for d in registered} == {"ada@example.org", "grace@example.org"}
    assert {d["payload"]["name"] for d in registered} == {ERASED}
    bank.handle(ForgetUser(user_id="u1"))
    replayed = InMemoryEventBus()
    publisher = WithEmails(bus=replayed, dead_letters=InMemoryDeadLetterQueue())
    publisher.key_ring = key_ring(moto_store)
    publisher.republish(moto_store, stream=("User", "u1"), upcasters=UPCASTERS)
    assert "ada@" not in json.dumps(replayed.details())
    assert [d["version"] for d in replayed.details()] == [1, 2, 3]


@attrs.frozen
class Huge(Event):
    text: str


def test_an_entry_over_256_kb_is_claim_checked_or_refused_clearly() -> None:
    big = "x" * (300 * 1024)
    now = dt.datetime.now(dt.UTC)
    envelope = Envelope("Account", "big", 9, "Huge", now, "cs", "cmd", "corr", "cause")
    publisher = BankEvents(bus=InMemoryEventBus(), dead_letters=InMemoryDeadLetterQueue())
    with pytest.raises(EntryTooLarge, match="Account#big"):
        publisher.entry_for(Huge(big), envelope)
    payloads = InMemoryPayloadStore()
    checked = BankEvents(
        bus=InMemoryEventBus(), dead_letters=InMemoryDeadLetterQueue(), payloads=payloads
    )
    entry = checked.entry_for(Huge(big), envelope)
    detail = json.loads(entry.detail)
    assert entry.size < 4096 and detail["payload"] is None
    stored = payloads.get(detail["payloadRef"]["key"])
    assert stored is not None and json.loads(stored) == {"text": big}


def test_requests_respect_the_limits_and_one_entry_per_stream(
    moto_store: DynamoDBEventStore, bank: Application
) -> None:
    bus = InMemoryEventBus()
    publisher = BankEvents(bus=bus, dead_letters=InMemoryDeadLetterQueue())
    catch_up(moto_store, publisher).run(until=far_future())
    assert all(len(request) <= 10 for request in bus.requests)
    for request in bus.requests:
        streams = [entry.stream for entry in request]
        assert len(streams) == len(set(streams))
    assert len(bus.published) == sum(map(len, committed(moto_store).values()))


def entries(streams: int, each: int, size: int = 100) -> Iterator[tuple[BusEntry, str]]:
    for version in range(1, each + 1):
        for number in range(streams):
            detail = json.dumps({"aggregateType": "S", "aggregateId": str(number), "x": "y" * size})
            entry = BusEntry(
                "s", "E", detail, dt.datetime.now(dt.UTC), "id", f"S#{number}", version
            )
            yield entry, "E"


def test_a_request_stays_under_256_kb() -> None:
    bus = InMemoryEventBus()
    publisher = BankEvents(bus=bus, dead_letters=InMemoryDeadLetterQueue())
    report = publisher.send(entries(streams=30, each=2, size=100 * 1024))
    assert report.published == 60
    assert all(sum(e.size for e in r) <= 256 * 1024 for r in bus.requests)
    assert max(len(r) for r in bus.requests) == 2
    refused = InMemoryEventBus(refuse=lambda e: EntryFailure("ThrottlingException"))
    dlq = InMemoryDeadLetterQueue()
    quiet = BankEvents(bus=refused, dead_letters=dlq, sleep=lambda _: None)
    assert quiet.send(entries(streams=3, each=2)).dead_lettered == 6
    assert len(dlq.messages) == 6


def test_the_command_line_replays_lists_and_resends(
    moto_store: DynamoDBEventStore,
    aws: Aws,
    bank: Application,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from click.testing import CliRunner

    from framework.cli import main

    for name, value in {
        "DYNAMO_TABLE_PREFIX": moto_store.tables.prefix,
        "AWS_REGION": "us-east-1",
        "EVENT_BUS_NAME": "bank-bus",
        "PUBLISH_DLQ_URL": aws.dlq,
        "UPCASTERS": "example_app.bank:UPCASTERS",
    }.items():
        monkeypatch.setenv(name, value)
    cli = CliRunner()
    spec = "example_app.publishing:BankEvents"

    one = cli.invoke(main, ["publish", "replay", spec, "--stream", "Account#a1"])
    assert one.exit_code == 0, one.output
    assert "5 published" in one.output
    assert [b["detail"]["version"] for b in aws.received()] == [1, 2, 3, 4, 5]
    later = dt.datetime.now(dt.UTC).isoformat()
    assert "0 published" in cli.invoke(main, ["publish", "replay", spec, "--since", later]).output
    everything = cli.invoke(main, ["publish", "replay", spec])
    assert everything.exit_code == 0, everything.output
    assert per_stream(aws.received()) == committed(moto_store)

    failing = BankEvents(
        bus=refusing(aws, lambda d: d["aggregateId"] == "a2"),
        dead_letters=aws.dead_letters(),
        sleep=lambda _: None,
    )
    catch_up(moto_store, failing).run(until=far_future())
    aws.received()
    listed = cli.invoke(main, ["publish", "dlq", "list", spec, "--json"])
    assert listed.exit_code == 0, listed.output
    letters = [json.loads(line) for line in listed.output.splitlines()]
    assert sorted((m["stream"], m["version"]) for m in letters) == [
        ("Account#a2", 1),
        ("Account#a2", 2),
        ("Account#a2", 3),
    ]
    table = cli.invoke(main, ["publish", "dlq", "list", spec])
    assert table.exit_code == 0 and "3 dead-lettered entries" in table.output
    assert all(m["errorCode"] == "InternalFailure" for m in letters)
    resent = cli.invoke(main, ["publish", "dlq", "resend", spec])
    assert resent.exit_code == 0, resent.output
    assert "3 re-sent" in resent.output
    assert sorted(b["detail"]["version"] for b in aws.received()) == [1, 2, 3]
    assert "0 dead-lettered entries" in cli.invoke(main, ["publish", "dlq", "list", spec]).output
    wrong = cli.invoke(main, ["publish", "replay", "example_app.read_models:AccountBalances"])
    assert wrong.exit_code == 2 and "not an EventBridgePublisher" in wrong.output


def test_the_lambda_handler_and_the_streams_poller_publish_the_same(
    moto_store: DynamoDBEventStore,
    aws: Aws,
    bank: Application,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Lambda batches built from the table's own stream (moto's), redelivered and reordered,
    through the handler configured from the environment as on AWS; then the poller."""
    import random

    from framework.projections import StreamsPoller, aws_lambda
    from tests.projections.test_runners import batches, lambda_records

    for name, value in {
        "DYNAMO_TABLE_PREFIX": moto_store.tables.prefix,
        "AWS_REGION": "us-east-1",
        "EVENT_BUS_NAME": "bank-bus",
        "PUBLISH_DLQ_URL": aws.dlq,
        "PROJECTORS": "example_app.publishing:BankEvents",
        "UPCASTERS": "example_app.bank:UPCASTERS",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(aws_lambda, "_handler", None)
    records = lambda_records(moto_store)
    assert len(records) == sum(map(len, committed(moto_store).values()))
    rng = random.Random(5)
    deliveries = list(batches(records, 4))
    deliveries.insert(2, deliveries[0])  # a batch delivered twice
    for batch in deliveries:
        shuffled = rng.sample(batch, len(batch))
        assert aws_lambda.handler({"Records": shuffled}, None) == {"batchItemFailures": []}
    bodies = aws.received()
    assert per_stream(bodies) == committed(moto_store)
    assert not any(secret in json.dumps(bodies) for secret in SECRETS)

    class Polled(BankEvents, name="polled-bank-events"):
        pass

    poller = StreamsPoller(
        moto_store,
        DynamoDBPositionStore(moto_store),
        [Polled(bus=aws.bus())],
        upcasters=UPCASTERS,
    )
    while poller.poll_once().applied:
        pass
    polled = aws.received()
    assert per_stream(polled) == committed(moto_store)
    assert {b["detail"]["eventId"] for b in polled} == {b["detail"]["eventId"] for b in bodies}


def test_a_lambda_batch_whose_bus_is_down_is_reported_for_retry(
    moto_store: DynamoDBEventStore, aws: Aws, bank: Application
) -> None:
    from framework.projections.aws_lambda import make_handler
    from tests.projections.test_runners import lambda_records

    down = InMemoryEventBus()

    def unreachable(entries: Any) -> Any:
        raise BusUnavailable("no route to EventBridge")

    down.put_events = unreachable  # type: ignore[method-assign]
    positions = DynamoDBPositionStore(moto_store)
    publisher = BankEvents(bus=down, dead_letters=aws.dead_letters(), sleep=lambda _: None)
    records = lambda_records(moto_store)
    answer = make_handler([publisher], moto_store, positions, upcasters=UPCASTERS)(
        {"Records": records}, None
    )
    assert len(answer["batchItemFailures"]) == len(records)  # every stream, to be retried
    healthy = BankEvents(bus=aws.bus(), dead_letters=aws.dead_letters())
    again = make_handler([healthy], moto_store, positions, upcasters=UPCASTERS)(
        {"Records": records}, None
    )
    assert again == {"batchItemFailures": []}
    assert per_stream(aws.received()) == committed(moto_store)


def test_a_publisher_built_without_adapters_takes_them_from_the_settings(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from framework.store.large_payloads import S3PayloadStore

    config = tmp_path / "framework.toml"
    config.write_text(
        "[storage]\n"
        'event_bus = "bank-events"\n'
        'publish_dlq_url = "https://sqs.us-east-1.amazonaws.com/1/bank-dlq"\n'
        'publish_payload_bucket = "bank-published"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("FRAMEWORK_CONFIG", str(config))
    for variable in ("EVENT_BUS_NAME", "PUBLISH_DLQ_URL", "PUBLISH_PAYLOAD_BUCKET"):
        monkeypatch.delenv(variable, raising=False)
    from_file = BankEvents()
    assert isinstance(from_file.bus, EventBridgeBus) and from_file.bus.name == "bank-events"
    assert isinstance(from_file.dead_letters, SqsDeadLetterQueue)
    assert from_file.dead_letters.url.endswith("/1/bank-dlq")
    assert isinstance(from_file.payloads, S3PayloadStore)
    monkeypatch.setenv("EVENT_BUS_NAME", "from-the-environment")
    assert BankEvents().bus.name == "from-the-environment"

    unconfigured = BankEvents(settings=Settings())
    assert unconfigured.payloads is None
    with pytest.raises(ConfigurationError, match="EVENT_BUS_NAME is not set"):
        unconfigured.bus  # noqa: B018
    with pytest.raises(ConfigurationError, match="PUBLISH_DLQ_URL is not set"):
        unconfigured.dead_letters  # noqa: B018


def test_the_iam_policy_covers_the_bus_and_the_dead_letter_queue() -> None:
    from framework.cli import iam_policy_document

    document = iam_policy_document(
        "bank", "eu-west-1", "123456789012", event_bus="bank-events", publish_dlq="bank-dlq"
    )
    statements = {s["Sid"]: s for s in document["Statement"]}
    assert statements["PublishToTheBus"]["Action"] == ["events:PutEvents"]
    assert statements["PublishToTheBus"]["Resource"] == [
        "arn:aws:events:eu-west-1:123456789012:event-bus/bank-events"
    ]
    assert statements["PublisherDeadLetters"]["Resource"] == [
        "arn:aws:sqs:eu-west-1:123456789012:bank-dlq"
    ]
    assert "PublishToTheBus" not in {
        s["Sid"] for s in iam_policy_document("bank", "eu-west-1", "1")["Statement"]
    }
    given_as_arns = iam_policy_document(
        "bank",
        "eu-west-1",
        "1",
        event_bus="arn:aws:events:us-east-2:9:event-bus/shared",
        publish_dlq="arn:aws:sqs:us-east-2:9:shared-dlq",
    )
    assert [s["Resource"] for s in given_as_arns["Statement"][-2:]] == [
        ["arn:aws:events:us-east-2:9:event-bus/shared"],
        ["arn:aws:sqs:us-east-2:9:shared-dlq"],
    ]


def test_an_oversized_entry_without_a_claim_check_parks_its_event_only() -> None:
    """Refused clearly: the engine parks the event with the reason, its stream waits there,
    the other streams are published, and nothing after it in its stream is sent."""
    from framework import Aggregate, InMemoryEventStore, command_handler, event_handler
    from framework.domain import Command

    @attrs.frozen
    class Write(Command, target="doc_id"):
        doc_id: str
        text: str

    @attrs.frozen
    class Written(Event):
        text: str

    class Doc(Aggregate):
        @command_handler(Write, creates=None)
        def write(self, command: Write) -> None:
            self.emit(Written(text=command.text))

        @event_handler(Written)
        def _written(self, event: Written) -> None:
            pass

    class DocEvents(EventBridgePublisher, name="doc-events"):
        source = "docs"
        aggregates = (Doc,)

    store = InMemoryEventStore()
    app = Application(store=store, aggregates=[Doc])
    app.handle(Write(doc_id="big", text="small"))
    app.handle(Write(doc_id="big", text="x" * (300 * 1024)))  # compresses: storable
    app.handle(Write(doc_id="big", text="after"))
    app.handle(Write(doc_id="other", text="fine"))
    bus = InMemoryEventBus()
    positions = InMemoryPositionStore()
    publisher = DocEvents(bus=bus, dead_letters=InMemoryDeadLetterQueue())
    runner = CatchUpRunner(store, positions, [publisher], safety_window=dt.timedelta(0))
    report = runner.run()
    assert report.parked == ["doc-events:Doc#big@2"]
    assert sorted((d["aggregateId"], d["version"]) for d in bus.details()) == [
        ("big", 1),
        ("other", 1),
    ]
    position = positions.get("doc-events", "Doc#big")
    assert position.version == 1 and position.parked is not None
    assert "EntryTooLarge" in position.parked.error and "PutEvents" in position.parked.error


def test_an_entry_too_large_for_any_request_is_sent_alone_and_judged_by_the_bus() -> None:
    """``send`` takes entries built elsewhere: one over 256 KB must not wait forever for a
    request with room for it."""
    ((oversized, _),) = entries(streams=1, each=1, size=300 * 1024)
    publisher = BankEvents(bus=InMemoryEventBus(), dead_letters=InMemoryDeadLetterQueue())
    with pytest.raises(ValueError, match="over 256 KB"):
        publisher.send([(oversized, "E")])

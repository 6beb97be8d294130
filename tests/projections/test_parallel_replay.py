"""Parallel replay over the feed's shards: every stream in order, per-shard checkpoints that let an
interrupted replay resume, positions read in batches, and a progress that tells the truth
(DynamoDB Local)."""

from __future__ import annotations

import datetime as dt
import zlib
from decimal import Decimal
from typing import Any

import pytest

from framework import Application, DynamoDBEventStore, Projector, event_handler
from framework.projections import CatchUpRunner, Envelope
from framework.projections.catch_up import ReplayProgress, _RichProgress
from framework.store import DynamoDBPositionStore, InMemoryPositionStore
from framework.store.keys import FEED_SHARDS, feed_checkpoint_key, feed_lane_checkpoint_key
from framework.store.positions import ParkedEvent
from framework.testing.bank import Account, Deposited, DepositMany, OpenAccount
from tests.support.request_counter import RequestCounter

pytestmark = pytest.mark.dynamodb_local

ACCOUNTS = [f"acc-{index}" for index in range(8)]
PER_ACCOUNT = 30  # in three commands of ten deposits


class Interrupted(BaseException):
    """Stands for Ctrl-C or a killed process: not a handler failure to retry and park."""


class Ordered(Projector, name="ordered"):
    """Records the versions it applies per stream; can be told to stop the run after some."""

    def __init__(self, stop_after: int | None = None) -> None:
        super().__init__()
        self.versions: dict[str, list[int]] = {}
        self.stop_after = stop_after

    @event_handler(Deposited)
    def _deposited(self, event: Deposited, envelope: Envelope) -> None:
        if self.stop_after is not None and sum(map(len, self.versions.values())) >= self.stop_after:
            raise Interrupted
        self.versions.setdefault(envelope.aggregate_id, []).append(envelope.version)


@pytest.fixture
def history(local_store: DynamoDBEventStore) -> int:
    app = Application(store=local_store, aggregates=[Account])
    for account in ACCOUNTS:
        app.handle(OpenAccount(account_id=account, owner=account))
    for _ in range(3):
        for account in ACCOUNTS:
            app.handle(DepositMany(account_id=account, amounts=(Decimal(1),) * 10))
    shards = {zlib.crc32(f"Account#{a}".encode()) % FEED_SHARDS for a in ACCOUNTS}
    assert len(shards) > 1, "the accounts must spread over several shards"
    return len(ACCOUNTS) * (PER_ACCOUNT + 1)


def runner(
    store: DynamoDBEventStore, positions: Any, *projectors: Projector, **options: Any
) -> CatchUpRunner:
    options.setdefault("safety_window", dt.timedelta(0))
    return CatchUpRunner(store, positions, projectors, chunk_size=7, **options)


def later() -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)


def test_shards_replayed_side_by_side_keep_every_stream_in_order(
    local_store: DynamoDBEventStore, history: int
) -> None:
    projector = Ordered()
    report = runner(local_store, InMemoryPositionStore(), projector, workers=4).run(until=later())
    assert report.applied == history
    assert projector.versions == {a: list(range(2, PER_ACCOUNT + 2)) for a in ACCOUNTS}


def test_an_interrupted_replay_resumes_where_each_shard_got_to(
    local_store: DynamoDBEventStore, history: int
) -> None:
    positions = DynamoDBPositionStore(local_store)
    first = Ordered(stop_after=120)
    options = {"workers": 4, "checkpoint_interval": 0.0, "overlap": dt.timedelta(0)}
    with pytest.raises(Interrupted):
        runner(local_store, positions, first, **options).run(until=later())
    committed = sum(position.version for position in positions.positions("ordered"))
    assert 0 < committed < history
    saved = [
        positions.get_checkpoint(feed_lane_checkpoint_key("ordered", shard, FEED_SHARDS))
        for shard in range(FEED_SHARDS)
    ]
    assert any(saved), "each shard checkpoints as it goes"

    second = Ordered()
    report = runner(local_store, positions, second, **options).run(until=later())
    assert report.applied + report.skipped < history * 3 // 4  # resumed, not started over
    assert committed + report.applied == history  # every event exactly once
    for versions in second.versions.values():  # the rest of each stream, in order
        assert versions == list(range(versions[0], PER_ACCOUNT + 2))


def test_a_shard_without_a_checkpoint_of_its_own_resumes_from_the_whole_feeds(
    local_store: DynamoDBEventStore, history: int
) -> None:
    positions = DynamoDBPositionStore(local_store)
    positions.put_checkpoint(feed_checkpoint_key("ordered"), later().isoformat())
    report = runner(local_store, positions, Ordered()).run(until=later())
    assert report.applied == 0  # an earlier version's checkpoint is honoured


def test_a_replay_reads_positions_in_batches_and_only_what_it_needs_of_the_feed(
    local_store: DynamoDBEventStore, history: int
) -> None:
    requests = RequestCounter(local_store.client)  # the feed is read through it too
    projector = Ordered()
    report = runner(local_store, DynamoDBPositionStore(local_store), projector).run(until=later())
    assert report.applied == history
    calls = requests.counts
    feed_queries = [
        params
        for operation, params in requests.requests
        if operation == "Query" and params.get("IndexName") == "feed"
    ]
    # Checkpoints, and where hour markers began (once per lane, once for the lane count): no
    # position read one by one.
    assert calls["GetItem"] <= 2 * FEED_SHARDS + FEED_SHARDS + 1
    # Positions a chunk at a time, plus each lane's hour markers (a hundred hours a request).
    assert 0 < calls["BatchGetItem"] <= history // 7 + 2 * FEED_SHARDS
    assert feed_queries and all("feed_pk" not in q["ProjectionExpression"] for q in feed_queries)


def test_the_progress_knows_its_total_before_the_first_chunk_and_advances(
    local_store: DynamoDBEventStore, history: int
) -> None:
    seen: list[tuple[int | None, int, float | None]] = []

    def record(progress: ReplayProgress) -> None:
        seen.append((progress.total, progress.events, progress.fraction()))

    run = runner(local_store, InMemoryPositionStore(), Ordered(), workers=1, on_progress=record)
    run.run(until=later())
    assert len(seen) > 3
    totals = {total for total, _, _ in seen}
    assert totals == {history}  # DescribeTable's item count, known from the first chunk
    fractions = [fraction for _, _, fraction in seen if fraction is not None]
    assert len(fractions) == len(seen)
    assert fractions == sorted(fractions) and all(f < 1 for f in fractions)
    assert fractions[0] == pytest.approx(7 / history)


def test_a_catch_up_estimates_its_share_of_the_table() -> None:
    progress = ReplayProgress(total=10)
    assert progress.fraction() == 0
    progress.advance(4, dt.datetime.now(dt.UTC))
    assert progress.fraction() == pytest.approx(0.4) and progress.rate() > 0
    progress.advance(8, dt.datetime.now(dt.UTC))  # more than estimated: the total follows
    assert progress.total == 12 and progress.fraction() == pytest.approx(0.999)
    progress.finish()
    assert progress.total == 12 and progress.fraction() == 1.0


def test_the_estimate_of_a_partial_run_is_its_share_of_the_tables_lifetime(
    local_store: DynamoDBEventStore, history: int
) -> None:
    run = runner(local_store, InMemoryPositionStore(), Ordered())
    created = local_store.feed_start()
    now = dt.datetime.now(dt.UTC)
    assert run._estimate(None, now) == history
    half = created + (now - created) / 2
    assert run._estimate(half, now) == pytest.approx(history / 2, abs=2)


def test_the_progress_bar_shows_the_total_the_rate_and_a_running_clock() -> None:
    progress = ReplayProgress(total=1000)
    bar = _RichProgress(progress)
    progress.advance(250, dt.datetime(2024, 1, 2, 3, 4, tzinfo=dt.UTC))
    bar._redraw()
    (task,) = bar.bar.tasks
    assert task.total == 1000 and task.completed == 250 and not task.finished
    assert task.fields["counts"] == "250 of ~1,000 events, up to 2024-01-02 03:04"
    assert task.fields["rate"].endswith("/s") and task.fields["left"].endswith("left")


def test_advances_without_writes_go_many_streams_to_a_request(
    local_store: DynamoDBEventStore, history: int
) -> None:
    requests = RequestCounter(local_store.client)
    report = runner(local_store, DynamoDBPositionStore(local_store), Ordered(), workers=1)
    assert report.run(until=later()).applied == history
    calls = requests.counts
    chunks = -(-history // 7) + FEED_SHARDS
    assert calls["TransactWriteItems"] > 0  # the advances of a chunk's streams, together
    assert calls["UpdateItem"] + calls["TransactWriteItems"] <= chunks  # one request a chunk


class RivalInTheBatch(DynamoDBPositionStore):
    """Another runner moves one stream's position just before a batch of advances is sent."""

    def __init__(self, store: DynamoDBEventStore, stream: str, to: int) -> None:
        super().__init__(store)
        self.rival: tuple[str, int] | None = (stream, to)

    def advance_many(self, projector: str, moves: Any) -> list[str]:
        if self.rival is not None:
            stream, to = self.rival
            self.rival = None
            DynamoDBPositionStore(self.store).advance(projector, stream, 0, to)
        return super().advance_many(projector, moves)


def test_a_lost_race_in_a_batch_of_advances_goes_on_from_the_rivals_position(
    local_store: DynamoDBEventStore, history: int
) -> None:
    positions = RivalInTheBatch(local_store, "Account#acc-3", 12)
    projector = Ordered()
    engine_runner = runner(local_store, positions, projector, workers=1)
    (engine,) = engine_runner.engines
    records = [
        record
        for account in ("acc-2", "acc-3")
        for record in local_store.load_events("Account", account)
    ]
    report = engine.apply(records)
    assert report.conflicts == 1
    assert report.applied == 2 * (PER_ACCOUNT + 1) - 12
    assert positions.get("ordered", "Account#acc-3").version == PER_ACCOUNT + 1
    assert positions.get("ordered", "Account#acc-2").version == PER_ACCOUNT + 1


def test_the_store_clients_items_are_botocores_to_the_byte(
    local_store: DynamoDBEventStore, history: int
) -> None:
    request = {"TableName": local_store.tables.events, "Limit": 20}
    fast = local_store.client.query(  # the client the feed is read through
        **request,
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "Account#acc-1"}},
    )
    parsed = local_store.make_client("dynamodb").query(  # botocore's own parser
        **request,
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "Account#acc-1"}},
    )
    assert fast["Items"] == parsed["Items"] and len(fast["Items"]) == 20
    assert isinstance(fast["Items"][0]["payload"]["B"], bytes)
    assert (
        fast["Count"] == parsed["Count"] and fast["LastEvaluatedKey"] == parsed["LastEvaluatedKey"]
    )


def test_a_lane_reads_each_streams_position_once_not_every_chunk(
    local_store: DynamoDBEventStore, history: int
) -> None:
    requests = RequestCounter(local_store.client)
    positions = DynamoDBPositionStore(local_store)
    report = runner(local_store, positions, Ordered(), workers=1).run(until=later())
    assert report.applied == history
    # history // 7 chunks; a stream's position is read in the first chunk it appears in, and
    # each lane reads its hour markers once.
    assert requests.counts["BatchGetItem"] <= len(ACCOUNTS) + FEED_SHARDS
    again = runner(local_store, positions, Ordered(), workers=1).run(
        since=dt.datetime.now(dt.UTC) - dt.timedelta(days=1), until=later()
    )
    assert (again.applied, again.skipped) == (0, history)  # what it remembered was true


def test_a_remembered_position_another_runner_moved_is_read_again(
    local_store: DynamoDBEventStore, history: int
) -> None:
    positions = DynamoDBPositionStore(local_store)
    projector = Ordered()
    (engine,) = runner(local_store, positions, projector, workers=1).engines
    records = local_store.load_events("Account", "acc-3")
    with engine.remembering():
        assert engine.apply(records[:10]).applied == 10
        # Another runner (a poller) moves the position the engine remembers as 10.
        DynamoDBPositionStore(local_store).advance("ordered", "Account#acc-3", 10, 20)
        report = engine.apply(records[10:])
    assert report.conflicts == 1
    assert report.applied == PER_ACCOUNT + 1 - 20  # from the rival's position on, once each
    assert positions.get("ordered", "Account#acc-3").version == PER_ACCOUNT + 1
    assert projector.versions["acc-3"][-(PER_ACCOUNT + 1 - 20) :] == list(range(21, 32))


def test_a_parked_position_is_not_remembered(local_store: DynamoDBEventStore, history: int) -> None:
    positions = DynamoDBPositionStore(local_store)
    (engine,) = runner(local_store, positions, Ordered(), workers=1).engines
    records = local_store.load_events("Account", "acc-4")
    parked = ParkedEvent(version=6, error="refused", attempts=1, parked_at=later())
    with engine.remembering():
        assert engine.apply(records[:5]).applied == 5
        positions.park("ordered", "Account#acc-4", 5, parked)
        assert engine.apply(records[5:10]).held == 5  # the park is seen, not the memory
        positions.release("ordered", "Account#acc-4", skip=False)
        assert engine.apply(records[5:]).applied == PER_ACCOUNT + 1 - 5  # released: read again

"""The command bus: routing, retries, idempotency, refusals and logging (in-memory store)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import structlog
from attrs import frozen

from framework import (
    Application,
    Command,
    ConcurrencyError,
    DomainError,
    EveryNEvents,
    UnitOfWork,
    command_handler,
)
from framework.application import Backoff
from framework.application.unit_of_work import command_fingerprint
from framework.errors import (
    AggregateNotFound,
    CommandIdReused,
    ConflictError,
    DefinitionError,
    InvalidCommand,
    InvalidIdentifier,
    StoreUnavailable,
    Throttled,
    TransactionConflict,
    UnknownCommand,
)
from framework.store import ChangeSet, InMemoryEventStore
from framework.testing.bank import (
    Account,
    Deposit,
    Deposited,
    JointWithdraw,
    OpenAccount,
    Transfer,
    Withdraw,
    joint_withdraw,
    transfer,
)
from tests.support.retries import NO_WAIT
from tests.support.stores import SpyStore


def bank(
    store: SpyStore, handlers: tuple[object, ...] = (transfer,), **options: object
) -> Application:
    return Application(
        store=store,
        aggregates=[Account],
        handlers=handlers,  # type: ignore[arg-type]
        backoff=NO_WAIT,
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
def spy() -> SpyStore:
    return SpyStore()


@pytest.fixture
def app(spy: SpyStore) -> Application:
    application = bank(spy)
    application.handle(OpenAccount(account_id="a", owner="Ann"))
    application.handle(OpenAccount(account_id="b", owner="Bob"))
    application.handle(Deposit(account_id="a", amount=Decimal(100)))
    spy.calls.clear()
    return application


def test_a_command_loads_the_stream_and_commits_once(app: Application, spy: SpyStore) -> None:
    result = app.handle(Deposit(account_id="a", amount=Decimal(5)))
    assert result.version == 3 and result.attempts == 1
    assert spy.names() == ["load_history", "commit"]


def test_a_creating_command_checks_existence_then_commits(app: Application, spy: SpyStore) -> None:
    app.handle(OpenAccount(account_id="c", owner="Cy"))
    assert spy.names() == ["stream_exists", "commit"]


def test_a_concurrency_conflict_is_retried_on_fresh_state(app: Application, spy: SpyStore) -> None:
    def competitor_commits_first(attempt: int, change_set: ChangeSet) -> None:
        if attempt == 1:
            spy.before_commit = None
            app.handle(Deposit(account_id="a", amount=Decimal(1), command_id="competitor"))
            spy.before_commit = competitor_commits_first

    spy.commits = 0
    spy.before_commit = competitor_commits_first
    result = app.handle(Withdraw(account_id="a", amount=Decimal(100)))
    assert (result.attempts, result.version) == (2, 4)
    account = app.get(Account, "a")
    assert (account.balance, account.version) == (Decimal(1), 4)


def test_retries_re_run_the_rules_against_the_new_state(app: Application, spy: SpyStore) -> None:
    def competitor_withdraws(attempt: int, change_set: ChangeSet) -> None:
        if attempt == 1:
            spy.before_commit = None
            app.handle(Withdraw(account_id="a", amount=Decimal(60)))

    spy.commits = 0
    spy.before_commit = competitor_withdraws
    with pytest.raises(DomainError, match="insufficient funds"):
        app.handle(Withdraw(account_id="a", amount=Decimal(60)))
    assert app.get(Account, "a").balance == Decimal(40)


@pytest.mark.parametrize(
    "error",
    [
        ConcurrencyError("Account", "a", 2, 3),
        TransactionConflict("conflict"),
        Throttled("slow down"),
    ],
)
def test_retryable_errors_are_retried_then_given_up(
    spy: SpyStore, app: Application, error: Exception
) -> None:
    def always_fail(attempt: int, change_set: ChangeSet) -> None:
        raise error

    spy.before_commit = always_fail
    spy.commits = 0
    limited = bank(spy, max_attempts=3)
    with structlog.testing.capture_logs() as logs, pytest.raises(type(error)):
        limited.handle(Deposit(account_id="a", amount=Decimal(1)))
    assert spy.commits == 3
    assert [entry["event"] for entry in logs] == [
        "command.retrying",
        "command.retrying",
        "command.gave_up",
    ]
    spy.before_commit = None
    assert app.get(Account, "a").balance == Decimal(100)


def test_store_unavailable_is_not_retried_by_the_bus(spy: SpyStore, app: Application) -> None:
    def down(attempt: int, change_set: ChangeSet) -> None:
        raise StoreUnavailable("no route to host")

    spy.before_commit = down
    spy.commits = 0
    with pytest.raises(StoreUnavailable):
        app.handle(Deposit(account_id="a", amount=Decimal(1)))
    assert spy.commits == 1


def test_backoff_is_jittered_and_capped() -> None:
    backoff = Backoff(base=0.01, cap=0.05)
    delays = [backoff.delay(attempt) for attempt in range(1, 10) for _ in range(50)]
    assert all(0.0 <= delay <= 0.05 for delay in delays)
    assert len(set(delays)) > 100
    assert max(backoff.delay(1) for _ in range(200)) <= 0.01


def test_repeated_command_id_returns_the_first_result_and_writes_nothing(
    app: Application, spy: SpyStore
) -> None:
    first = app.handle(Deposit(account_id="a", amount=Decimal(5), command_id="k1"))
    spy.calls.clear()
    again = app.handle(Deposit(account_id="a", amount=Decimal(5), command_id="k1"))
    assert again.duplicate and again.versions == first.versions
    assert again.change_set_id == first.change_set_id
    assert app.get(Account, "a").balance == Decimal(105)


def test_a_command_id_reused_for_another_payload_is_refused(
    app: Application, spy: SpyStore
) -> None:
    first = app.handle(Deposit(account_id="a", amount=Decimal(5), command_id="k1"))
    with pytest.raises(CommandIdReused) as raised:
        app.handle(Deposit(account_id="a", amount=Decimal(500), command_id="k1"))
    assert raised.value.command_id == "k1" and isinstance(raised.value, ConflictError)
    with pytest.raises(CommandIdReused):
        app.handle(Deposit(account_id="b", amount=Decimal(5), command_id="k1"))
    with pytest.raises(CommandIdReused):  # refused by the rules too, but the id says more
        app.handle(Withdraw(account_id="a", amount=Decimal(5000), command_id="k1"))
    assert app.get(Account, "a").balance == Decimal(105)
    assert app.get(Account, "b").version == 1
    again = app.handle(
        Deposit(account_id="a", amount=Decimal(5), command_id="k1", correlation_id="retry-2")
    )
    assert again.duplicate and again.change_set_id == first.change_set_id


def test_a_command_record_without_fingerprint_is_taken_as_a_repeat(
    app: Application, spy: SpyStore
) -> None:
    # A record written before fingerprints were stored: the first result stands, as before.
    legacy = ChangeSet(
        change_set_id="cs-old",
        command_id="old-1",
        committed_at=dt.datetime.now(dt.UTC),
        aggregates=(),
        result=b'{"change_set_id":"cs-old","versions":{"Account#a":2}}',
    )
    spy.inner.commit(legacy)
    again = app.handle(Deposit(account_id="a", amount=Decimal(999), command_id="old-1"))
    assert again.duplicate and again.change_set_id == "cs-old"
    assert app.get(Account, "a").balance == Decimal(100)


def test_the_fingerprint_ignores_ids_and_covers_type_and_fields() -> None:
    deposit = Deposit(account_id="a", amount=Decimal("5.0"), command_id="x")
    same = Deposit(account_id="a", amount=Decimal("5.0"), command_id="y", causation_id="c")
    assert command_fingerprint(deposit) == command_fingerprint(same)
    assert command_fingerprint(deposit) != command_fingerprint(
        Deposit(account_id="a", amount=Decimal("5.00"), command_id="x")
    )
    assert command_fingerprint(deposit) != command_fingerprint(
        Withdraw(account_id="a", amount=Decimal("5.0"), command_id="x")
    )


def test_the_fingerprint_holds_no_personal_data() -> None:
    """A bare hash of an address can be confirmed by guessing: personal values stay out."""

    @frozen
    class Subscribe(Command, target="member_id", personal=("email",)):
        member_id: str
        email: str

    first = Subscribe(member_id="m1", email="ann@example.org")
    assert command_fingerprint(first) == command_fingerprint(
        Subscribe(member_id="m1", email="bob@example.org")
    )
    assert command_fingerprint(first) != command_fingerprint(
        Subscribe(member_id="m2", email="ann@example.org")
    )


def test_a_repeat_that_the_rules_would_now_refuse_still_returns_the_first_result(
    app: Application,
) -> None:
    first = app.handle(Withdraw(account_id="a", amount=Decimal(100), command_id="w1"))
    again = app.handle(Withdraw(account_id="a", amount=Decimal(100), command_id="w1"))
    assert again.duplicate and again.change_set_id == first.change_set_id
    assert app.get(Account, "a").balance == Decimal(0)


def test_a_refused_command_writes_nothing(app: Application, spy: SpyStore) -> None:
    with pytest.raises(DomainError):
        app.handle(Withdraw(account_id="a", amount=Decimal(1000)))
    assert "commit" not in spy.names()


def test_multi_aggregate_handler_commits_both_in_one_change_set(
    app: Application, spy: SpyStore
) -> None:
    result = app.handle(Transfer(source_id="a", target_id="b", amount=Decimal(30)))
    assert result.versions == {"Account#a": 3, "Account#b": 2}
    assert spy.names().count("commit") == 1
    assert app.get(Account, "a").balance + app.get(Account, "b").balance == Decimal(100)


def test_a_multi_aggregate_handler_that_fails_half_way_writes_nothing(app: Application) -> None:
    with pytest.raises(AggregateNotFound):
        app.handle(Transfer(source_id="a", target_id="nobody", amount=Decimal(30)))
    with pytest.raises(DomainError):
        app.handle(Transfer(source_id="b", target_id="a", amount=Decimal(30)))
    assert app.get(Account, "a").version == 2 and app.get(Account, "b").version == 1


def test_write_skew_between_two_commands_is_refused(spy: SpyStore) -> None:
    # Each command reads both accounts and withdraws from one: alone, each keeps the pair in
    # credit; interleaved without a check of what they only read, the pair ends at -60.
    app = bank(spy, handlers=(joint_withdraw,))
    other_process = Application(store=spy.inner, aggregates=[Account], handlers=[joint_withdraw])
    for account_id in ("a", "b"):
        app.handle(OpenAccount(account_id=account_id, owner="Ann"))
        app.handle(Deposit(account_id=account_id, amount=Decimal(50)))

    def the_other_withdraws_first(attempt: int, change_set: ChangeSet) -> None:
        if spy.before_commit is not None:
            spy.before_commit = None
            other_process.handle(JointWithdraw(account_id="b", partner_id="a", amount=Decimal(80)))

    spy.before_commit = the_other_withdraws_first
    with pytest.raises(DomainError, match="overdrawn"):
        app.handle(JointWithdraw(account_id="a", partner_id="b", amount=Decimal(80)))
    balances = (app.get(Account, "a").balance, app.get(Account, "b").balance)
    assert balances == (Decimal(50), Decimal(-30))


def test_a_read_only_aggregate_is_checked_in_the_same_commit(spy: SpyStore) -> None:
    app = bank(spy, handlers=(joint_withdraw,))
    for account_id in ("a", "b"):
        app.handle(OpenAccount(account_id=account_id, owner="Ann"))
    seen: list[ChangeSet] = []
    spy.before_commit = lambda attempt, change_set: seen.append(change_set)
    app.handle(JointWithdraw(account_id="a", partner_id="b", amount=Decimal(0)))
    (committed,) = seen
    assert [change.aggregate_id for change in committed.aggregates] == ["a"]
    assert [(c.aggregate_id, c.expected_version) for c in committed.checks] == [("b", 1)]


@frozen
class TopUp(Command):
    """Deposit whatever brings the account up to ``floor``: nothing when it is there already."""

    account_id: str
    floor: Decimal


@command_handler(TopUp)
def top_up(uow: UnitOfWork, command: TopUp) -> None:
    account = uow.get(Account, command.account_id)
    if account.balance < command.floor:
        account.emit(Deposited(amount=command.floor - account.balance))


def test_a_command_that_changes_nothing_still_records_its_id(spy: SpyStore) -> None:
    app = Application(store=spy, aggregates=[Account], handlers=[top_up])
    app.handle(OpenAccount(account_id="a", owner="Ann"))
    app.handle(Deposit(account_id="a", amount=Decimal(100)))
    first = app.handle(TopUp(account_id="a", floor=Decimal(50), command_id="top-1"))
    assert dict(first.versions) == {} and first.events == ()
    assert spy.inner.get_processed_command("top-1") is not None
    app.handle(Withdraw(account_id="a", amount=Decimal(80)))
    # A late retry of the same request must not top the account up now that it moved on.
    late = app.handle(TopUp(account_id="a", floor=Decimal(50), command_id="top-1"))
    assert late.duplicate and late.change_set_id == first.change_set_id
    assert app.get(Account, "a").balance == Decimal(20)


def test_correlation_and_causation_ids_reach_the_stored_events(
    app: Application, spy: SpyStore
) -> None:
    app.handle(Deposit(account_id="a", amount=Decimal(1), command_id="c9", correlation_id="req-7"))
    app.handle(Deposit(account_id="a", amount=Decimal(1), command_id="c10"))
    *_, with_ids, without = spy.inner.load_events("Account", "a")
    assert (with_ids.command_id, with_ids.correlation_id, with_ids.causation_id) == (
        "c9",
        "req-7",
        "c9",
    )
    assert (without.correlation_id, without.causation_id) == ("c10", "c10")


def test_unknown_and_malformed_commands_are_refused_before_any_work(
    app: Application, spy: SpyStore
) -> None:
    @frozen
    class Unrouted(Command):
        pass

    with pytest.raises(UnknownCommand, match="no handler for Unrouted"):
        app.handle(Unrouted())
    with pytest.raises(InvalidCommand, match="expected a Command, got dict"):
        app.handle({"account_id": "a"})  # type: ignore[arg-type]
    with pytest.raises(InvalidIdentifier, match="Account id '' must not be empty"):
        app.handle(Deposit(account_id="", amount=Decimal(1)))
    assert spy.calls == []


def test_registration_mistakes_fail_when_the_application_is_built(spy: SpyStore) -> None:
    @command_handler(Deposit)
    def second_deposit_handler(uow: UnitOfWork, command: Deposit) -> None:
        pass

    with pytest.raises(DefinitionError, match="Deposit has two handlers"):
        Application(store=spy, aggregates=[Account], handlers=[second_deposit_handler])
    with pytest.raises(DefinitionError, match="not decorated with @command_handler"):
        Application(store=spy, handlers=[lambda uow, command: None])
    with pytest.raises(DefinitionError, match="not one of the application's aggregates"):
        Application(store=spy, snapshots={Account: EveryNEvents(5)})
    with pytest.raises(DefinitionError, match="is not an Aggregate subclass"):
        Application(store=spy, aggregates=[dict])  # type: ignore[list-item]


def test_each_command_is_logged_with_its_outcome_and_no_payload(app: Application) -> None:
    with structlog.testing.capture_logs() as logs:
        app.handle(
            Deposit(
                account_id="a", amount=Decimal("12345.67"), command_id="c1", correlation_id="r1"
            )
        )
        with pytest.raises(DomainError):
            app.handle(Withdraw(account_id="a", amount=Decimal(10**6)))
    handled, refused = logs
    assert handled["event"] == "command.handled" and handled["log_level"] == "info"
    assert handled["command_type"] == "Deposit"
    assert (handled["command_id"], handled["correlation_id"]) == ("c1", "r1")
    assert handled["versions"] == {"Account#a": 3}
    assert handled["retries"] == 0 and handled["duration_ms"] >= 0
    assert refused["event"] == "command.refused" and refused["error_type"] == "DomainError"
    assert "12345.67" not in repr(handled)


def test_creates_none_creates_on_first_use_and_loads_afterwards(spy: SpyStore) -> None:
    from framework import Aggregate, Event, event_handler

    @frozen
    class Tick(Command, target="counter_id"):
        counter_id: str

    @frozen
    class Ticked(Event):
        pass

    class Counter(Aggregate):
        ticks: int = 0

        @command_handler(Tick, creates=None)
        def tick(self, command: Tick) -> None:
            self.emit(Ticked())

        @event_handler(Ticked)
        def _ticked(self, event: Ticked) -> None:
            self.ticks += 1

    app = Application(store=spy, aggregates=[Counter])
    assert app.handle(Tick(counter_id="c")).version == 1
    assert app.handle(Tick(counter_id="c")).version == 2
    assert spy.names() == ["load_history", "commit", "load_history", "commit"]
    assert app.get(Counter, "c").ticks == 2


def test_an_event_without_handler_fails_the_command_and_writes_nothing(spy: SpyStore) -> None:
    from framework import Event
    from framework.errors import MissingEventHandler

    @frozen
    class Audited(Event):  # Account has no handler for it
        note: str

    @frozen
    class Audit(Command):
        account_id: str

    @command_handler(Audit)
    def audit(uow: UnitOfWork, command: Audit) -> None:
        account = uow.get(Account, command.account_id)
        account.emit(Deposited(amount=Decimal(1)))
        account.emit(Audited(note="checked"))

    app = Application(store=spy, aggregates=[Account], handlers=[audit])
    app.handle(OpenAccount(account_id="a", owner="Ann"))
    before = spy.inner.load_events("Account", "a")
    with pytest.raises(MissingEventHandler, match="Account has no @event_handler for Audited"):
        app.handle(Audit(account_id="a"))
    assert spy.inner.load_events("Account", "a") == before


def test_emitting_something_that_is_not_an_event_is_refused() -> None:
    from framework.errors import InvalidEvent

    account = Account("a")
    with pytest.raises(InvalidEvent, match=r"emit\(\) takes an Event, got Deposit"):
        account.emit(Deposit(account_id="a", amount=Decimal(1)))  # type: ignore[arg-type]


class _StoreOfAnOlderPort:
    """A store written for the port before ``load_history``: everything else forwarded."""

    def __init__(self) -> None:
        self.inner = InMemoryEventStore()
        self.tables = self.inner.tables

    def __getattr__(self, name: str) -> object:
        if name == "load_history":
            raise AttributeError(name)
        return getattr(self.inner, name)


def test_a_store_without_every_operation_of_the_port_is_refused_when_the_app_is_built() -> None:
    older = _StoreOfAnOlderPort()
    with pytest.raises(DefinitionError, match=r"_StoreOfAnOlderPort .* has no load_history"):
        Application(store=older, aggregates=[Account])  # type: ignore[arg-type]  # the test
    assert older.inner.load_events("Account", "a") == []
    forwarding = _StoreOfAnOlderPort()
    forwarding.__dict__["load_history"] = forwarding.inner.load_history  # the missing method
    app = Application(store=forwarding, aggregates=[Account])  # type: ignore[arg-type]
    app.handle(OpenAccount(account_id="a", owner="Ann"))
    assert app.get(Account, "a").owner == "Ann"

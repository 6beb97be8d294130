"""Given/when/then helpers for testing your own aggregates and handlers.

::

    scenario(Account).given(AccountOpened(owner="Ann"), Deposited(amount=Decimal(5)))
                     .when(Withdraw(account_id="acc-1", amount=Decimal(2)))
                     .then(Withdrawn(amount=Decimal(2)))

    scenario(Account).given(AccountOpened(owner="Ann")).when(
        Withdraw(account_id="acc-1", amount=Decimal(2))
    ).then_raises(DomainError, match="insufficient")

The events given are stored as the history of the aggregate the command targets (or of any
stream, with ``given_stream``), and the command runs through a real ``Application`` on an
``InMemoryEventStore``: the same routing, unit of work, serialization and commit as in production,
so a scenario also catches events that do not round-trip or handlers that are not registered.
The pytest fixtures live in ``framework.testing.pytest_plugin``, which a test suite opts in to.

``ProjectorScenario`` does the same for projectors: given events, then the read model holds this.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, TypeVar

from framework.application import Application
from framework.application.results import CommandResult
from framework.application.snapshots import SnapshotPolicy
from framework.domain import Aggregate, Command, Event, command_target_field
from framework.encryption import KeyRing, LocalKeyWrapper
from framework.mapping.mapper import EventMapper
from framework.mapping.upcasters import Upcaster
from framework.store.base import EventStore
from framework.store.memory import InMemoryEventStore
from framework.store.positions import InMemoryPositionStore, PositionStore
from framework.store.records import AggregateChange, ChangeSet, StoredEvent

if TYPE_CHECKING:
    # The projector kit's imports (PynamoDB, and boto3 for read models) load when a projector
    # scenario is built, so that a domain's own tests, which only need ``scenario``, never pay
    # for them.
    from pynamodb.models import Model

    from framework.projections.engine import ApplyReport
    from framework.projections.projector import Projector

A = TypeVar("A", bound=Aggregate)


class ScenarioFailed(AssertionError):
    """A scenario's expectation did not hold; the message shows expected and actual."""


class Scenario:
    """One given/when/then test of a command against a history of events."""

    def __init__(
        self,
        *aggregates: type[Aggregate],
        handlers: Iterable[Callable[..., Any]] = (),
        snapshots: dict[type[Aggregate], SnapshotPolicy] | None = None,
        upcasters: Iterable[Upcaster] = (),
    ) -> None:
        self.store = InMemoryEventStore()
        # A throw-away key ring, so that aggregates with personal fields work in scenarios.
        self.keys = KeyRing(LocalKeyWrapper(os.urandom(32)))
        self.app = Application(
            store=self.store,
            aggregates=aggregates,
            handlers=handlers,
            snapshots=snapshots,
            keys=self.keys,
            upcasters=upcasters,
        )
        self._aggregates = aggregates
        self._history: list[tuple[type[Aggregate] | None, str | None, tuple[Event, ...]]] = []
        self._command: Command | None = None
        self._result: CommandResult | None = None
        self._error: BaseException | None = None

    # -- given -------------------------------------------------------------------------------

    def given(self, *events: Event) -> Scenario:
        """History of the aggregate the command will target."""
        self._history.append((None, None, events))
        return self

    def given_stream(
        self, aggregate_class: type[Aggregate], aggregate_id: str, *events: Event
    ) -> Scenario:
        """History of any aggregate (for handlers that touch several)."""
        self._history.append((aggregate_class, aggregate_id, events))
        return self

    # -- when --------------------------------------------------------------------------------

    def when(self, command: Command) -> Scenario:
        """Run ``command``; its outcome is checked by ``then``/``then_raises``."""
        self._command = command
        for aggregate_class, aggregate_id, events in self._history:
            if aggregate_class is None or aggregate_id is None:
                aggregate_class, aggregate_id = self._target(command)
            self._store_history(aggregate_class, aggregate_id, events)
        try:
            self._result = self.app.handle(command)
        except Exception as error:  # kept for then_raises; then() reports it
            self._error = error
        return self

    def _target(self, command: Command) -> tuple[type[Aggregate], str]:
        field = command_target_field(type(command))
        owners = [cls for cls in self._aggregates if type(command) in cls.handled_command_types()]
        if field is None or len(owners) != 1:
            raise ScenarioFailed(
                f"cannot tell which aggregate {type(command).__name__} targets: use given_stream()"
            )
        return owners[0], str(getattr(command, field))

    def _store_history(
        self, aggregate_class: type[Aggregate], aggregate_id: str, events: Sequence[Event]
    ) -> None:
        if not events:
            return
        aggregate_type = aggregate_class.aggregate_type()
        _append_given(self.store, self.app.mapper, aggregate_type, aggregate_id, events)

    # -- then --------------------------------------------------------------------------------

    def then(self, *expected: Event) -> CommandResult:
        """The command succeeded and emitted exactly ``expected``, in order."""
        if self._error is not None:
            raise ScenarioFailed(
                f"expected events {list(expected)!r}, but the command raised "
                f"{type(self._error).__name__}: {self._error}"
            ) from self._error
        result = self._outcome()
        if list(result.events) != list(expected):
            raise ScenarioFailed(
                f"expected events {list(expected)!r}\n     but got {list(result.events)!r}"
            )
        return result

    def then_nothing(self) -> CommandResult:
        """The command succeeded without emitting anything."""
        return self.then()

    def then_raises(
        self, error_type: type[BaseException], *, match: str | None = None
    ) -> BaseException:
        """The command failed with ``error_type`` (message matching the regex ``match``)."""
        if self._error is None:
            events = list(self._outcome().events)
            raise ScenarioFailed(
                f"expected {error_type.__name__}, but the command emitted {events!r}"
            )
        if not isinstance(self._error, error_type):
            raise ScenarioFailed(
                f"expected {error_type.__name__}, but got {type(self._error).__name__}: "
                f"{self._error}"
            ) from self._error
        if match is not None and not re.search(match, str(self._error)):
            raise ScenarioFailed(
                f"{error_type.__name__} {str(self._error)!r} does not match {match!r}"
            )
        return self._error

    def aggregate(self, aggregate_class: type[A], aggregate_id: str) -> A:
        """The aggregate's state after the command, loaded from the store.

        Typed as the class asked for, so ``run.aggregate(Account, "a").balance`` type-checks.
        """
        return self.app.get(aggregate_class, aggregate_id)

    def _outcome(self) -> CommandResult:
        if self._command is None or self._result is None:
            raise ScenarioFailed("call .when(command) before .then()")
        return self._result


def scenario(
    *aggregates: type[Aggregate],
    handlers: Iterable[Callable[..., Any]] = (),
    snapshots: dict[type[Aggregate], SnapshotPolicy] | None = None,
    upcasters: Iterable[Upcaster] = (),
) -> Scenario:
    """Start a given/when/then scenario for ``aggregates`` (and function ``handlers``).

    ``upcasters`` are the application's: its start-up check wants every event class's chain
    complete, as in production.
    """
    return Scenario(*aggregates, handlers=handlers, snapshots=snapshots, upcasters=upcasters)


M = TypeVar("M", bound="Model")


class ProjectorScenario:
    """Given these events, then the read model holds this: a projector tested without DynamoDB.

    ::

        with ProjectorScenario(AccountBalances()) as balances:
            balances.given(Account, "acc-1", AccountOpened(owner="Ann"), Deposited(amount=5))
            assert balances.row(AccountBalance, "acc-1").balance == 5

    The events are stored and delivered through the real projection engine (decoding, positions,
    the transaction of read-model writes and position); a projector with ``read_models`` writes
    them into moto's in-process DynamoDB (the ``embedded`` extra), one without keeps its own
    state and runs on the in-memory stores. Personal fields are sealed and read with a
    throw-away key ring. ``upcasters`` are the ones the application and the projector's
    runners are given. Use it as a context manager, or call ``close()``.
    """

    def __init__(self, projector: Projector, *, upcasters: Iterable[Upcaster] = ()) -> None:
        from framework.projections import read_models
        from framework.projections.engine import ProjectionEngine

        self.projector = projector
        self._closing = ExitStack()
        self.keys = KeyRing(LocalKeyWrapper(os.urandom(32)))
        # Built first: a missing upcaster fails before any in-process table is made.
        mapper = EventMapper(projector.event_classes(), upcasters=upcasters, keys=self.keys)
        self.store: EventStore
        self.positions: PositionStore
        if projector.read_models:
            from framework.store.dynamodb.embedded import embedded_dynamodb_store
            from framework.store.dynamodb.positions import DynamoDBPositionStore

            dynamodb = self._closing.enter_context(embedded_dynamodb_store("scenario"))
            read_models.create_tables(dynamodb, projector.read_models)
            self.store, self.positions = dynamodb, DynamoDBPositionStore(dynamodb)
        else:
            self.store, self.positions = InMemoryEventStore(), InMemoryPositionStore()
        self.engine = ProjectionEngine(
            projector,
            self.store,
            self.positions,
            mapper=mapper,
            retry_delay=0,
        )

    def __enter__(self) -> ProjectorScenario:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop the in-process tables."""
        self._closing.close()

    def given(
        self, aggregate: type[Aggregate] | str, aggregate_id: str, *events: Event
    ) -> ProjectorScenario:
        """Append ``events`` to a stream and deliver them to the projector."""
        aggregate_type = aggregate if isinstance(aggregate, str) else aggregate.aggregate_type()
        records = _append_given(
            self.store, self.engine.mapper, aggregate_type, aggregate_id, events
        )
        self.last_report = self.engine.apply(records)
        return self

    def redeliver(self) -> ApplyReport:
        """Deliver every event again, as a runner after a crash would: it must change nothing."""
        return self.engine.apply(list(self.store.read_feed()))

    def rows(self, model: type[M]) -> list[M]:
        """Every row of a read model."""
        return list(self._bound(model).scan(consistent_read=True))

    def row(self, model: type[M], hash_key: Any, range_key: Any = None) -> M | None:
        """One row of a read model, ``None`` when there is none."""
        try:
            return self._bound(model).get(hash_key, range_key, consistent_read=True)
        except self._bound(model).DoesNotExist:
            return None

    def parked(self) -> list[str]:
        """``stream@version: error`` of every event the projector parked."""
        return [
            f"{position.stream}@{position.parked.version}: {position.parked.error}"
            for position in self.positions.parked(self.projector.projector_name())
            if position.parked is not None
        ]

    def _bound(self, model: type[M]) -> type[M]:
        from framework.projections import read_models
        from framework.store.dynamodb.event_store import DynamoDBEventStore

        if not isinstance(self.store, DynamoDBEventStore):
            raise ScenarioFailed(f"{type(self.projector).__name__} declares no read models")
        return read_models.bound(model, self.store)


def _append_given(
    store: EventStore,
    mapper: EventMapper,
    aggregate_type: str,
    aggregate_id: str,
    events: Sequence[Event],
    at: dt.datetime | None = None,
) -> list[StoredEvent]:
    """Append ``events`` to a stream as one change set (a scenario's given history), committed
    ``at`` (default: now)."""
    start = len(store.load_events(aggregate_type, aggregate_id))
    change_set_id = str(uuid.uuid4())
    now = dt.datetime.now(dt.UTC) if at is None else at
    records = []
    for offset, event in enumerate(events, start=1):
        mapper.register(type(event))
        encoded = mapper.encode(event, (aggregate_type, aggregate_id))
        records.append(
            StoredEvent(
                aggregate_type=aggregate_type,
                aggregate_id=aggregate_id,
                version=start + offset,
                event_type=encoded.event_type,
                schema=encoded.schema,
                payload=encoded.payload,
                occurred_at=now,
                change_set_id=change_set_id,
                command_id="given",
                correlation_id="given",
                causation_id="given",
            )
        )
    store.commit(
        ChangeSet(
            change_set_id=change_set_id,
            command_id=f"given-{change_set_id}",
            committed_at=now,
            aggregates=(AggregateChange(aggregate_type, aggregate_id, start, tuple(records)),),
        )
    )
    return records

"""The application: the command bus that routes, retries, deduplicates and logs commands.

``Application.handle(command)`` finds the command's handler, runs it in a fresh unit of work and
commits the change set. When the commit loses an optimistic-concurrency race (or DynamoDB reports a
transaction conflict or throttling), the whole command is run again on freshly loaded aggregates,
a bounded number of times with jittered exponential backoff. A command id that was already
processed returns the first result and writes nothing, unless it was processed for a command with
another payload: that is refused with ``CommandIdReused``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import attrs
import structlog

from framework.application.cache import AggregateCache
from framework.application.repository import ReloadPoint, Repository
from framework.application.results import CommandResult
from framework.application.snapshots import NoSnapshots, SnapshotPolicy
from framework.application.unit_of_work import UnitOfWork, command_fingerprint
from framework.domain import (
    Aggregate,
    Command,
    Event,
    command_handler_spec,
    command_target_field,
    personal_fields,
    unsnapshottable_state,
)
from framework.encryption import KeyRing
from framework.errors import (
    AggregateAlreadyExists,
    AggregateNotFound,
    CommandIdReused,
    ConcurrencyError,
    DefinitionError,
    DomainError,
    DuplicateCommand,
    InvalidCommand,
    SubjectForgotten,
    Throttled,
    TransactionConflict,
    UniqueConstraintViolated,
    UnknownCommand,
)
from framework.logs import log_context, withhold
from framework.mapping.mapper import EventMapper
from framework.mapping.state import SnapshotStateError
from framework.mapping.upcasters import Upcaster
from framework.pauses import pause
from framework.store.base import EventStore, missing_operations
from framework.store.keys import check_aggregate_id
from framework.store.records import ProcessedCommand
from framework.tracing import ATTEMPTS, active_tracer

__all__ = ["Application", "Backoff"]

A = TypeVar("A", bound=Aggregate)

log = structlog.get_logger(__name__)

FunctionHandler = Callable[[UnitOfWork, Any], Any]

_RETRYABLE: tuple[type[Exception], ...] = (ConcurrencyError, TransactionConflict, Throttled)
_REFUSALS: tuple[type[Exception], ...] = (
    DomainError,
    AggregateNotFound,
    AggregateAlreadyExists,
    UniqueConstraintViolated,
    SubjectForgotten,
)


def _check_snapshottable(aggregate_class: type[Aggregate]) -> None:
    """Refuse, at start-up, an aggregate whose handlers set state its snapshots would lose.

    Without this, the first command that takes a snapshot finds the undeclared attribute; the
    snapshot is then skipped, every time, and loading silently stays slow.
    """
    undeclared = unsnapshottable_state(aggregate_class)
    if undeclared:
        culprits = ", ".join(f"self.{name} in {where}" for name, where in undeclared.items())
        raise SnapshotStateError(
            f"{aggregate_class.__name__} has a snapshot policy but sets attributes that are not "
            f"declared as annotated state ({culprits}): annotate them on the class "
            f"(name: type) so that snapshots keep them"
        )


@attrs.frozen
class Backoff:
    """Full-jitter exponential backoff between attempts: ``uniform(0, min(cap, base * 2**n))``.

    Full jitter (anywhere from no wait to the bound) spreads competing retries the most. With the
    application's default of 40 attempts, a command under relentless contention waits about
    4.4 s in all (at most 8.8 s) before giving up: under contention a process that just
    committed keeps its aggregate cached and commits again with one request, while a loser needs
    a read and a commit, so a loser may need many cheap attempts before a gap opens (see
    docs/benchmarks.md, "Contention on one aggregate").
    """

    base: float = 0.01
    cap: float = 0.25

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return random.uniform(0.0, min(self.cap, self.base * 2 ** (attempt - 1)))


@attrs.frozen
class _Route:
    """How one command type is handled: by an aggregate method or by a plain function."""

    aggregate_class: type[Aggregate] | None
    function: FunctionHandler | None
    creates: bool | None
    target_field: str | None

    def run(self, uow: UnitOfWork, command: Command) -> None:
        if self.function is not None:
            self.function(uow, command)
            return
        assert self.aggregate_class is not None and self.target_field is not None
        aggregate_id = getattr(command, self.target_field)
        if not isinstance(aggregate_id, str):
            raise InvalidCommand(f"{type(command).__name__}.{self.target_field} must be a string")
        if self.creates is None:
            aggregate = uow.get_or_create(self.aggregate_class, aggregate_id)
        elif self.creates:
            aggregate = uow.create(self.aggregate_class, aggregate_id)
        else:
            aggregate = uow.get(self.aggregate_class, aggregate_id)
        aggregate.handle_command(command)


def _personal_values(command: Command) -> list[str]:
    """The text values of the command's fields declared personal: never to be logged."""
    values = (getattr(command, name) for name in personal_fields(type(command)))
    return [value for value in values if isinstance(value, str)]


class Application:
    """Handles commands against a set of aggregates and an event store.

    ``aggregates`` are ``Aggregate`` subclasses whose ``@command_handler`` methods take commands
    addressed to one aggregate; ``handlers`` are plain functions decorated with
    ``@command_handler`` taking ``(uow, command)``, for commands that change several aggregates in
    one transaction. ``snapshots`` maps aggregate classes to snapshot policies (default: none).
    ``cache`` (an ``AggregateCache``) lets aggregates this process committed skip the load.
    ``keys`` (a ``KeyRing``) encrypts fields declared personal (``personal=``); it is required
    when any event has such fields. ``upcasters`` are the functions marked ``@upcaster`` that
    read events stored at older schema versions; they belong to this application's mapper
    (``app.mapper``), which projection engines take to read events the same way. A missing link
    in any event class's chain fails here, at start-up.
    """

    def __init__(
        self,
        *,
        store: EventStore,
        aggregates: Iterable[type[Aggregate]] = (),
        handlers: Iterable[FunctionHandler] = (),
        snapshots: Mapping[type[Aggregate], SnapshotPolicy] | None = None,
        event_types: Iterable[type[Event]] = (),
        max_attempts: int = 40,
        backoff: Backoff | None = None,
        cache: AggregateCache | None = None,
        keys: KeyRing | None = None,
        upcasters: Iterable[Upcaster] = (),
    ) -> None:
        if max_attempts < 1:
            raise DefinitionError("max_attempts must be at least 1")
        missing = missing_operations(store)
        if missing:
            raise DefinitionError(
                f"{type(store).__name__} is not a complete EventStore: it has no "
                f"{', '.join(missing)} (the port is framework.store.EventStore; "
                "framework.testing.contracts.EventStoreContract checks a store of your own)"
            )
        self.store = store
        self.aggregates = tuple(aggregates)
        self.snapshot_policies: dict[type[Aggregate], SnapshotPolicy] = dict(snapshots or {})
        self.max_attempts = max_attempts
        self.backoff = backoff or Backoff()
        self.cache = cache
        self.mapper = EventMapper(event_types, upcasters=upcasters, keys=keys)
        self.repository = Repository(
            store, self.mapper, snapshot_policies=self.snapshot_policies, cache=cache
        )
        self._routes: dict[type[Command], _Route] = {}
        self._aggregates_by_type: dict[str, type[Aggregate]] = {}
        for aggregate_class in self.aggregates:
            self._register_aggregate(aggregate_class)
        for function in handlers:
            self._register_function(function)
        if keys is None and self.mapper.has_personal_data():
            raise DefinitionError(
                "some events have personal fields: give the Application a KeyRing "
                "(keys=KeyRing(...)) so that they are stored encrypted"
            )
        for aggregate_class in self.snapshot_policies:
            if aggregate_class not in self.aggregates:
                raise DefinitionError(
                    f"a snapshot policy is given for {aggregate_class.__name__}, which is not "
                    "one of the application's aggregates"
                )
            if not isinstance(self.snapshot_policies[aggregate_class], NoSnapshots):
                _check_snapshottable(aggregate_class)

    # -- registration ------------------------------------------------------------------------

    def _register_aggregate(self, aggregate_class: type[Aggregate]) -> None:
        if not (isinstance(aggregate_class, type) and issubclass(aggregate_class, Aggregate)):
            raise DefinitionError(f"{aggregate_class!r} is not an Aggregate subclass")
        name = aggregate_class.aggregate_type()
        known = self._aggregates_by_type.get(name)
        if known is not None and known is not aggregate_class:
            raise DefinitionError(
                f"aggregate type name {name!r} is used by {known.__qualname__} and "
                f"{aggregate_class.__qualname__}"
            )
        self._aggregates_by_type[name] = aggregate_class
        for event_class in aggregate_class.handled_event_types():
            self.mapper.register(event_class)
        for command_type, spec in aggregate_class.handled_command_types().items():
            route = _Route(aggregate_class, None, spec.creates, command_target_field(command_type))
            self._add_route(command_type, route, aggregate_class.__qualname__)

    def _register_function(self, function: FunctionHandler) -> None:
        spec = command_handler_spec(function)
        if spec is None:
            raise DefinitionError(
                f"{getattr(function, '__qualname__', function)!r} is not decorated with "
                "@command_handler(CommandType)"
            )
        route = _Route(None, function, spec.creates, None)
        self._add_route(spec.command_type, route, getattr(function, "__qualname__", "?"))

    def _add_route(self, command_type: type[Command], route: _Route, owner: str) -> None:
        if command_type in self._routes:
            raise DefinitionError(
                f"{command_type.__name__} has two handlers in this application (one in {owner})"
            )
        self._routes[command_type] = route

    def command_types(self) -> tuple[type[Command], ...]:
        """The command classes this application handles (deadlines decode commands by them)."""
        return tuple(self._routes)

    # -- commands ----------------------------------------------------------------------------

    def handle(self, command: Command) -> CommandResult:
        """Run ``command`` and commit its change set; see the module docstring for retries."""
        if not isinstance(command, Command):
            raise InvalidCommand(f"expected a Command, got {type(command).__name__}")
        route = self._routes.get(type(command))
        if route is None:
            raise UnknownCommand(
                f"no handler for {type(command).__name__}: register its aggregate or function "
                "with the Application"
            )
        # Every line logged while the command is handled (here, in the unit of work, the
        # repository, the store) carries its ids; the bound logger keeps them on the command's
        # own lines under any structlog configuration.
        ids = {
            "command_id": command.command_id,
            "correlation_id": command.correlation_id or command.command_id,
            "causation_id": command.causation_id or command.command_id,
        }
        bound = log.bind(command_type=type(command).__name__, **ids)
        with log_context(**ids):
            tracer = active_tracer()
            if tracer is None:
                return self._handle(command, route, bound)
            attributes = {f"framework.{name}": value for name, value in ids.items()}
            attributes["framework.command.type"] = type(command).__name__
            with tracer.start_as_current_span("handle", attributes=attributes) as span:
                result = self._handle(command, route, bound)
                span.set_attribute(ATTEMPTS, result.attempts)
                return result

    def _handle(self, command: Command, route: _Route, bound: Any) -> CommandResult:
        started = time.perf_counter()
        attempt = 1
        reload_points: dict[tuple[type[Aggregate], str], ReloadPoint] = {}
        while True:
            uow = self.unit_of_work(command, reload_points=reload_points)
            try:
                route.run(uow, command)
                result = uow.commit()
            except DuplicateCommand:
                processed = self.store.get_processed_command(command.command_id)
                if processed is None:
                    # The record expired between the conflict and this read: nothing more to say.
                    raise
                return self._first_result(command, processed, bound, attempt, started)
            except _REFUSALS as error:
                return self._refused(command, error, bound, attempt, started)
            except _RETRYABLE as error:
                if attempt >= self.max_attempts:
                    uow.forget_cached()
                    bound.warning(
                        "command.gave_up", attempts=attempt, error_type=type(error).__name__
                    )
                    raise
                # The next attempt rebuilds each aggregate as this one loaded it (never the
                # objects this attempt's handler changed) and reads only the newer events.
                reload_points = uow.reload_points()
                delay = self.backoff.delay(attempt)
                bound.info(
                    "command.retrying",
                    attempt=attempt,
                    error_type=type(error).__name__,
                    delay_ms=round(delay * 1000, 1),
                )
                pause(delay)  # awaited, not blocking, on the async face
                attempt += 1
                continue
            bound.info(
                "command.handled",
                versions=dict(result.versions),
                change_set_id=result.change_set_id,
                events=len(result.events),
                retries=attempt - 1,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
            return result if attempt == 1 else attrs.evolve(result, attempts=attempt)

    def _refused(
        self,
        command: Command,
        error: Exception,
        bound: Any,
        attempt: int,
        started: float,
    ) -> CommandResult:
        # A refused command may be the repeat of one that succeeded before the state moved on:
        # then the first result stands. Only refusals pay for this lookup.
        processed = self.store.get_processed_command(command.command_id)
        if processed is not None:
            return self._first_result(command, processed, bound, attempt, started)
        bound.info(
            "command.refused",
            error_type=type(error).__name__,
            reason=withhold(str(error), _personal_values(command)),
            retries=attempt - 1,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        raise error

    def _first_result(
        self,
        command: Command,
        processed: ProcessedCommand,
        bound: Any,
        attempt: int,
        started: float,
    ) -> CommandResult:
        """The first run's result for a repeat of ``command``; ``CommandIdReused`` if no repeat.

        A record without a fingerprint was written before fingerprints were stored: it is taken
        as a repeat, as it always was.
        """
        if processed.fingerprint is not None and processed.fingerprint != command_fingerprint(
            command
        ):
            bound.warning(
                "command.id_reused",
                change_set_id=processed.change_set_id,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
            raise CommandIdReused(command.command_id)
        bound.info(
            "command.duplicate",
            change_set_id=processed.change_set_id,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return attrs.evolve(
            CommandResult.from_stored(command.command_id, processed.result), attempts=attempt
        )

    def unit_of_work(
        self,
        command: Command,
        *,
        reload_points: Mapping[tuple[type[Aggregate], str], ReloadPoint] | None = None,
    ) -> UnitOfWork:
        """A fresh unit of work for ``command`` on this application's store and policies.

        ``reload_points`` come from an earlier attempt of the same command that lost a race
        (``UnitOfWork.reload_points``): its aggregates are then reloaded incrementally.
        """
        return UnitOfWork(
            self.store,
            self.mapper,
            command=command,
            snapshot_policies=self.snapshot_policies,
            cache=self.cache,
            repository=self.repository,
            reload_points=reload_points,
        )

    # -- queries -----------------------------------------------------------------------------

    def get(self, aggregate_class: type[A], aggregate_id: str) -> A:
        """Load an aggregate's current state. Raises ``AggregateNotFound``.

        An id that cannot be stored raises ``InvalidIdentifier`` before anything is read.
        """
        check_aggregate_id(aggregate_class.aggregate_type(), aggregate_id)
        aggregate = self.repository.load_stored(aggregate_class, aggregate_id)
        if aggregate is None:
            raise AggregateNotFound(aggregate_class.aggregate_type(), aggregate_id)
        return aggregate

"""``ProcessManagerScenario``: given these events, then these commands issued, these deadlines
scheduled or cancelled, for a process manager, in memory and without an application.

::

    with ProcessManagerScenario(WithdrawalHolds()) as holds:
        holds.given(Account, "acc-1", WithdrawalHeld(hold_id="hold-2", amount=Money("1500")))
        holds.then_scheduled(ReleaseHold(account_id="acc-1", hold_id="hold-2"), at=... )

The events are stored and delivered through the real projection engine, so the manager's
handlers, its derived ids and its positions are exercised as in production; what the handlers
ask is recorded instead of done: no application handles the commands, and deadlines go to an
``InMemoryDeadlineStore`` (``scenario.deadlines``) so that a later event's cancellation finds
them. Events are given at ``scenario.now`` (move it with ``advance``), so deadline times are
predictable.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable

import attrs

from framework.domain import Aggregate, Command, Event
from framework.encryption import KeyRing, LocalKeyWrapper
from framework.mapping.mapper import EventMapper
from framework.mapping.upcasters import Upcaster
from framework.projections.deadlines import CancelResult, InMemoryDeadlineStore
from framework.projections.engine import ProjectionEngine
from framework.projections.process_managers import Action, Cancel, Issue, ProcessManager
from framework.store.memory import InMemoryEventStore
from framework.store.positions import InMemoryPositionStore
from framework.testing.scenarios import ScenarioFailed, _append_given

__all__ = ["ProcessManagerScenario", "Scheduled"]

_IDS = ("command_id", "correlation_id", "causation_id")


@attrs.frozen
class Scheduled:
    """A deadline a handler scheduled: its id, when, and the command it will send."""

    deadline_id: str
    at: dt.datetime
    command: Command


def _same(left: Command, right: Command) -> bool:
    """Equal but for the ids (which the manager derives)."""
    if type(left) is not type(right):
        return False
    return attrs.evolve(left, **{name: getattr(right, name) for name in _IDS}) == right


class ProcessManagerScenario:
    """Drives a process manager with given events and records what it asks for."""

    def __init__(
        self,
        manager: ProcessManager,
        *,
        now: dt.datetime | None = None,
        upcasters: Iterable[Upcaster] = (),
    ) -> None:
        self.manager = manager
        self.now = now or dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
        self.deadlines = InMemoryDeadlineStore()
        manager.deadlines = self.deadlines
        manager.clock = lambda: self.now
        # What the handlers ask is recorded here instead of done.
        manager.perform = self._record  # type: ignore[method-assign]
        self.issued: list[Command] = []
        self.scheduled: list[Scheduled] = []
        self.cancelled: list[tuple[str, CancelResult]] = []
        keys = KeyRing(LocalKeyWrapper(os.urandom(32)))
        mapper = EventMapper(manager.event_classes(), upcasters=upcasters, keys=keys)
        self.store = InMemoryEventStore()
        self.positions = InMemoryPositionStore()
        self.engine = ProjectionEngine(
            manager, self.store, self.positions, mapper=mapper, retry_delay=0
        )

    def __enter__(self) -> ProcessManagerScenario:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Nothing to release: everything lives in memory."""

    def given(
        self, aggregate: type[Aggregate] | str, aggregate_id: str, *events: Event
    ) -> ProcessManagerScenario:
        """Append ``events`` to a stream at ``now`` and deliver them to the manager."""
        aggregate_type = aggregate if isinstance(aggregate, str) else aggregate.aggregate_type()
        records = _append_given(
            self.store, self.engine.mapper, aggregate_type, aggregate_id, events, self.now
        )
        report = self.engine.apply(records)
        if report.parked:
            raise ScenarioFailed(f"the manager's handler failed: {report.parked}")
        return self

    def advance(self, by: dt.timedelta) -> ProcessManagerScenario:
        """Move ``now`` on (events given later occur then; cancellations are judged then)."""
        self.now += by
        return self

    def redeliver(self) -> ProcessManagerScenario:
        """Deliver every event again, as a runner after a crash would: it must ask nothing."""
        self.engine.apply(list(self.store.read_feed()))
        return self

    def due(self, at: dt.datetime | None = None) -> list[Scheduled]:
        """The deadlines still pending and due at ``at`` (default: ``now``)."""
        pending = {d.deadline_id for d in self.deadlines.due(at or self.now, limit=10_000)}
        return [s for s in self.scheduled if s.deadline_id in pending]

    def then_issued(self, *commands: Command) -> ProcessManagerScenario:
        """Exactly these commands were issued since the last check, in order (ids aside)."""
        issued = self.issued
        if len(issued) != len(commands) or not all(map(_same, issued, commands)):
            raise ScenarioFailed(f"expected these commands issued: {commands}, got {issued}")
        self.issued = []
        return self

    def then_scheduled(self, command: Command, *, at: dt.datetime) -> str:
        """This command was scheduled for ``at`` (among what is scheduled); returns its id."""
        for scheduled in self.scheduled:
            if scheduled.at == at and _same(scheduled.command, command):
                return scheduled.deadline_id
        raise ScenarioFailed(f"no {command} scheduled at {at}; scheduled: {self.scheduled}")

    def then_cancelled(self, deadline_id: str) -> CancelResult:
        """The deadline was cancelled (by id); returns what the cancellation found."""
        for cancelled, result in self.cancelled:
            if cancelled == deadline_id:
                return result
        raise ScenarioFailed(f"{deadline_id} was not cancelled; cancelled: {self.cancelled}")

    def then_nothing_issued(self) -> ProcessManagerScenario:
        """No command was issued since the last check."""
        return self.then_issued()

    def _record(self, action: Action) -> None:
        if isinstance(action, Issue):
            self.issued.append(action.command)
        elif isinstance(action, Cancel):
            result = self.deadlines.cancel(action.deadline_id, self.now)
            self.cancelled.append((action.deadline_id, result))
        else:
            if self.deadlines.schedule(action.deadline):
                self.scheduled.append(
                    Scheduled(action.deadline.deadline_id, action.deadline.due_at, action.command)
                )

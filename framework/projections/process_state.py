"""A process manager's own state: an event-sourced aggregate committed with "this event is done".

A process that must remember something between events (which steps are done, how many reminders
went out) keeps it in a ``ProcessState`` aggregate and reaches it from a handler with
``ProcessManager.state(StateClass, id)``. The manager commits what the handler changed in one
transaction that also records, on the state itself, the event that caused it (``EventHandled``):
the state and the manager's progress through that event are one commit. So when the event comes
again (a crash before the position moved, a second runner), the manager finds it recorded and
skips the handler: it never runs on a state its own first delivery already changed.

The commands and deadlines a handler asks for are done first, the state is committed last: a
crash between the two leaves the state as it was, the event comes again, the handler decides on
the same state, asks for the same things, and they are repeats (their ids are derived from the
event).
"""

from __future__ import annotations

import attrs

from framework.domain import Aggregate, Command, Event, event_handler

__all__ = ["EventHandled", "ProcessState", "RecordProcessState"]


@attrs.frozen
class EventHandled(Event):
    """Recorded on a process's state with every change its manager commits: the event (stream
    and version) whose handling made the change."""

    stream: str
    version: int


@attrs.frozen
class RecordProcessState(Command):
    """The command a manager commits its states under: its id is derived from the process and
    the event, so the same event's state is committed at most once."""

    process: str


class ProcessState(Aggregate):
    """Base class of a process manager's state: subclass it, register the subclass with the
    application like any aggregate, and change it through its own methods (``emit``).

    ``handled`` is kept by the framework: the last version of each stream whose event changed
    this state.
    """

    handled: dict[str, int] = {}  # noqa: RUF012 (each instance gets its own copy)

    def has_handled(self, stream: str, version: int) -> bool:
        """True when the event ``stream``/``version`` (or a later one of it) was committed here."""
        return self.handled.get(stream, 0) >= version

    def record_handled(self, stream: str, version: int) -> None:
        """Record that the event ``stream``/``version`` is done (the manager calls this)."""
        self.emit(EventHandled(stream=stream, version=version))

    @event_handler(EventHandled)
    def _event_handled(self, event: EventHandled) -> None:
        self.handled = {**self.handled, event.stream: event.version}

"""A process manager's own state: an event-sourced aggregate committed with "this event is done".

A process that must remember something between events (which steps are done, how many reminders
went out) keeps it in a ``ProcessState`` aggregate and reaches it from a handler with
``ProcessManager.state(StateClass, id)``. The manager commits what the handler changed in one
transaction that also records, on the state itself, the event that caused it (``EventHandled``):
the state and the manager's progress through that event are one commit. So when the event comes
again (a crash before the position moved, a second runner), the manager finds it recorded and
skips the handler: it never runs on a state its own first delivery already changed.

The state is committed first, with what the handler asked for (commands, deadlines,
cancellations) recorded beside the event; then those are done. A crash before the commit leaves
the state as it was and nothing done: the event comes again and is handled afresh. A crash after
it: the event comes again, finds itself recorded, and what was recorded is done again, as
repeats (the commands' ids are derived from the event). A commit that loses a race with another
runner changing the same state has done nothing either, so the event is simply handled again on
the newer state. A command with personal fields cannot be recorded this way (the record is not
encrypted) and is refused.
"""

from __future__ import annotations

import attrs

from framework.domain import Aggregate, Command, Event, event_handler

__all__ = ["EventHandled", "ProcessState", "RecordProcessState"]


@attrs.frozen
class EventHandled(Event):
    """Recorded on a process's state with every change its manager commits: the event (stream
    and version) whose handling made the change, and what its handler asked for (``asked``: the
    commands, deadlines and cancellations, as JSON), done right after this commit and done again
    from here if the event comes back before they all were."""

    stream: str
    version: int
    asked: str = "[]"


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
    asked: dict[str, str] = {}  # noqa: RUF012
    """What the last handled event of each stream asked for (``EventHandled.asked``). Only the
    last one is kept: a later event of a stream is handled only once the earlier one's requests
    were all done (the position moves after them)."""

    def has_handled(self, stream: str, version: int) -> bool:
        """True when the event ``stream``/``version`` (or a later one of it) was committed here."""
        return self.handled.get(stream, 0) >= version

    def asked_for(self, stream: str, version: int) -> str:
        """What handling ``stream``/``version`` asked for, as recorded (``"[]"``: nothing left
        to do again, an earlier event of the stream)."""
        if self.handled.get(stream) != version:
            return "[]"
        return self.asked.get(stream, "[]")

    def record_handled(self, stream: str, version: int, asked: str = "[]") -> None:
        """Record that the event ``stream``/``version`` is done (the manager calls this)."""
        self.emit(EventHandled(stream=stream, version=version, asked=asked))

    @event_handler(EventHandled)
    def _event_handled(self, event: EventHandled) -> None:
        self.handled = {**self.handled, event.stream: event.version}
        self.asked = {**self.asked, event.stream: event.asked}

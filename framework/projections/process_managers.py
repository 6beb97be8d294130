"""Process managers: react to events by issuing commands, now or at a deadline.

A ``ProcessManager`` is a ``Projector``: the engine and its runners (catch-up, the Streams
poller, the Lambda handler) deliver it events of any aggregates with the same per-stream
positions. Its ``@event_handler`` methods decide, and say what to do with ``self.issue(command)``,
``self.schedule(command, at=..., key=...)`` and ``self.cancel(key)``. What a handler asks is
queued while it runs and done when it returns (a failed attempt asked for nothing), before the
next event is handled, so that a handler reading state sees what earlier events' commands did,
and before any position moves, so that a crash means the event is delivered again, never that a
command is lost. A failure that may pass raises ``DeliverAgain``: the delivery stops and the
event comes again, it is never parked for it.

Delivered again, the handler asks for the same things, and they are the same: an issued command's
id is derived from the process, the triggering event and the command's place among what that
event issued (``derived_command_id``), so the application's command-id record turns a second
send into a repeat with the first result. A deadline's id is derived from the process and its
``key`` (or the event and place), so scheduling it twice stores one deadline. Issued commands
carry the triggering event's correlation id, and its id (``event_id``, the id the EventBridge
publisher gives it too) as their causation id.

A command the application refuses (a ``DomainError``...) goes to ``refused`` (log it, or issue
a compensating command there) and the manager goes on; a failure a retry may cure (a lost race
after the application's retries, throttling) stops the delivery (``DeliverAgain``) so that the
event is delivered again; ``CommandIdReused`` (two different commands derived the same id, a bug)
parks the event, loudly.

State: a process manager object keeps none between events (several runners may run it). State a
process needs lives in a ``ProcessState`` aggregate (``framework.projections.process_state``),
reached with ``self.state(StateClass, id)``: committed when the handler returns, in one
transaction that records the event and what the handler asked for on it, and only then is that
done; a redelivered event finds itself recorded there and what was recorded is done again.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib
import json
import os
import threading
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import attrs
import structlog

from framework.application import Application
from framework.application.unit_of_work import UnitOfWork
from framework.config import Settings
from framework.domain import Command, Event
from framework.errors import (
    CommandIdReused,
    ConfigurationError,
    ConflictError,
    DefinitionError,
    DeliverAgain,
    DuplicateCommand,
    InvalidDeadline,
    StoreUnavailable,
)
from framework.projections.deadlines import (
    REFUSALS,
    CancelResult,
    Deadline,
    DeadlineStore,
    command_from,
    command_types_of,
    decode_command,
    encode_command,
)
from framework.projections.process_state import ProcessState, RecordProcessState
from framework.projections.projector import Envelope, Projector
from framework.store.base import EventStore
from framework.store.records import event_id
from framework.tracing import continued_from

__all__ = [
    "APPLICATION_ENV",
    "Cancel",
    "Issue",
    "ProcessManager",
    "Schedule",
    "derived_command_id",
    "derived_id",
    "load_application",
]

log = structlog.get_logger(__name__)

S = TypeVar("S", bound=ProcessState)

_NAMESPACE = uuid.UUID("3b0f7a52-54f1-4c55-8a8e-64a0a3f1c2d9")


APPLICATION_ENV = "APPLICATION"
"""Names the factory of the application (``module:function``, taking the event store) for what
the command line and the Lambda handlers build without arguments: process managers and the
deadline runner."""


def load_application(spec: str, store: EventStore) -> Application:
    """The application ``spec`` (``module:function``) builds on ``store``."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(
            f"{APPLICATION_ENV}={spec!r}: name the application's factory as module:function "
            "(a function taking the event store and returning the Application)"
        )
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ConfigurationError(f"{APPLICATION_ENV}={spec!r}: {error}") from None
    application = factory(store)
    if not isinstance(application, Application):
        raise ConfigurationError(
            f"{APPLICATION_ENV}={spec!r} returned {type(application).__name__}, not an Application"
        )
    return application


def application_from_settings() -> tuple[Application, Any]:
    """The application ``APPLICATION`` builds on the DynamoDB store of the settings, and it."""
    from framework.store.dynamodb.event_store import DynamoDBEventStore

    spec = os.environ.get(APPLICATION_ENV, "")
    if not spec:
        raise ConfigurationError(
            f"{APPLICATION_ENV} is not set: a process manager or deadline runner built without "
            "an application needs its factory (module:function taking the event store)"
        )
    store = DynamoDBEventStore.from_settings(Settings.load(default_backend="dynamo"))
    return load_application(spec, store), store


def derived_id(*parts: str) -> str:
    """A UUIDv5 over ``parts``, each prefixed by its length: no two part lists share an id,
    whatever separators the parts hold (``("a:b", "c")`` and ``("a", "b:c")`` differ)."""
    return str(uuid.uuid5(_NAMESPACE, "".join(f"{len(part)}:{part}" for part in parts)))


def derived_command_id(process: str, triggering_event_id: str, index: int) -> str:
    """The id of the ``index``-th command (0-based) ``process`` issued for an event: the same on
    every redelivery of the event, so the application applies the command once."""
    return derived_id("command", process, triggering_event_id, str(index))


@attrs.frozen
class Issue:
    """A command to hand to the application (ids already derived)."""

    command: Command
    envelope: Envelope


@attrs.frozen
class Schedule:
    """A deadline to store (``command`` is what it will send, as the handler gave it)."""

    deadline: Deadline
    envelope: Envelope
    command: Command


@attrs.frozen
class Cancel:
    """A deadline to cancel, by id."""

    deadline_id: str
    envelope: Envelope


Action = Issue | Schedule | Cancel
Key = str | tuple[str, ...]
"""Names a deadline within its process: a string, or a tuple of parts."""


@attrs.define
class _Asking:
    """What one handler call asked for so far, and for which event."""

    envelope: Envelope
    triggering_event_id: str
    actions: list[Action] = attrs.field(factory=list)
    issued: int = 0
    scheduled: int = 0
    states: list[ProcessState] = attrs.field(factory=list)
    unit_of_work: UnitOfWork | None = None


class _AlreadyHandled(BaseException):
    """The event is recorded on the state the handler asked for, with what it asked (``asked``).

    A ``BaseException``, so that a handler's own ``except Exception`` cannot swallow it."""

    def __init__(self, asked: str) -> None:
        super().__init__(asked)
        self.asked = asked


class ProcessManager(Projector, name="process-manager"):
    """Base class of process managers; subclass it with a stable name::

        class Holds(ProcessManager, name="holds"):
            @event_handler(WithdrawalHeld)
            def _held(self, event: WithdrawalHeld, envelope: Envelope) -> None:
                self.schedule(ReleaseHold(...), at=envelope.occurred_at + WAIT, key=event.hold_id)

    ``application`` handles the commands it issues (built from ``APPLICATION`` when not given,
    see ``application``); ``deadlines`` stores what it schedules (required only when it
    schedules or cancels). ``clock`` gives the time cancellations are judged at (default: now,
    UTC).
    """

    def __init__(
        self,
        application: Application | None = None,
        *,
        deadlines: DeadlineStore | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        super().__init__()
        self._application = application
        self.deadlines = deadlines
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._local = threading.local()
        self._known: frozenset[type[Command]] | None = None

    @property
    def application(self) -> Application:
        """The application that handles what this manager issues.

        Built without one (as the command line and the Lambda handler build projectors: with no
        arguments), it is made on first use from the settings: the DynamoDB store they describe,
        handed to the factory ``APPLICATION`` names (``module:function``, the function taking
        the store and returning the ``Application``); the deadlines then go to that store's
        ``{prefix}-deadlines`` table.
        """
        if self._application is None:
            self._application, store = application_from_settings()
            if self.deadlines is None:
                from framework.projections.dynamodb_deadlines import DynamoDBDeadlineStore

                self.deadlines = DynamoDBDeadlineStore(store)
        return self._application

    @application.setter
    def application(self, application: Application) -> None:
        self._application = application
        self._known = None

    # -- what handlers call -------------------------------------------------------------------

    def issue(self, command: Command) -> Command:
        """Queue ``command`` for the application, with its id derived from the event; returns
        the command as it will be sent."""
        asking = self._asking("issue")
        self._check_handled(command)
        sent = attrs.evolve(
            command,
            command_id=derived_command_id(
                self.projector_name(), asking.triggering_event_id, asking.issued
            ),
            correlation_id=asking.envelope.correlation_id,
            causation_id=asking.triggering_event_id,
        )
        asking.issued += 1
        asking.actions.append(Issue(sent, asking.envelope))
        return sent

    def schedule(self, command: Command, *, at: dt.datetime, key: Key | None = None) -> str:
        """Queue a deadline: ``command`` handled at ``at`` (timezone-aware); returns its id.

        ``key`` names the deadline within this process (an order id, or a tuple of parts such as
        an account id and a hold id: they are length-prefixed, so no separator is needed) so that
        a later event can ``cancel(key)`` it; without one, the deadline is named by the event and
        its place, and only its returned id can cancel it (``cancel(id, by_id=True)``).
        """
        asking = self._asking("schedule")
        if at.utcoffset() is None:
            raise InvalidDeadline(f"schedule(at=...) needs a timezone-aware time, got {at!r}")
        self._check_handled(command)
        if key is None:
            deadline_id = derived_id(
                "deadline", self.projector_name(), asking.triggering_event_id, str(asking.scheduled)
            )
        else:
            deadline_id = self.deadline_id(key)
        asking.scheduled += 1
        command_type, document = encode_command(command)
        deadline = Deadline(
            deadline_id=deadline_id,
            process=self.projector_name(),
            due_at=at,
            command_type=command_type,
            command=document,
            correlation_id=asking.envelope.correlation_id,
            causation_id=asking.triggering_event_id,
            created_at=asking.envelope.occurred_at,
        )
        asking.actions.append(Schedule(deadline, asking.envelope, command))
        return deadline_id

    def cancel(self, key: Key, *, by_id: bool = False) -> str:
        """Queue the cancellation of the deadline scheduled with ``key`` (or whose id is
        ``key`` when ``by_id``); returns the deadline's id. What it found goes to ``cancelled``."""
        asking = self._asking("cancel")
        if by_id and not isinstance(key, str):
            raise DefinitionError("cancel(..., by_id=True) takes the deadline's id, a string")
        deadline_id = key if isinstance(key, str) and by_id else self.deadline_id(key)
        asking.actions.append(Cancel(deadline_id, asking.envelope))
        return deadline_id

    def state(self, state_class: type[S], state_id: str) -> S:
        """This process's state ``state_id`` (a ``ProcessState`` subclass the application
        registers), as the events handled so far left it; a new, empty one if there is none.

        Change it through its methods. When the handler returns, the manager commits the
        states it asked for in one transaction, each recording this event as handled with what
        the handler asked for, and then does that (``process_state``). If the event is found
        recorded already (it comes again after that commit), the handler is stopped here and
        what was recorded is done again, as repeats: the handler never runs on a state its own
        first run changed.
        """
        asking = self._asking("state")
        if not (isinstance(state_class, type) and issubclass(state_class, ProcessState)):
            raise DefinitionError(
                f"{type(self).__name__}.state() takes a ProcessState subclass, got {state_class!r}"
            )
        if state_class not in self.application.aggregates:
            raise DefinitionError(
                f"{state_class.__name__} is not registered with {type(self).__name__}'s "
                "application: add it to Application(aggregates=[...])"
            )
        if asking.unit_of_work is None:
            name = self.projector_name()
            asking.unit_of_work = self.application.unit_of_work(
                RecordProcessState(
                    process=name,
                    command_id=derived_id("state", name, asking.triggering_event_id),
                    correlation_id=asking.envelope.correlation_id,
                    causation_id=asking.triggering_event_id,
                )
            )
        state = asking.unit_of_work.get_or_create(state_class, state_id)
        envelope = asking.envelope
        if state.has_handled(envelope.stream, envelope.version):
            raise _AlreadyHandled(state.asked_for(envelope.stream, envelope.version))
        if state not in asking.states:
            asking.states.append(state)
        return state

    @classmethod
    def deadline_id(cls, key: Key) -> str:
        """The id of this process's deadline scheduled with ``key``."""
        parts = (key,) if isinstance(key, str) else tuple(key)
        return derived_id("deadline", cls.projector_name(), "key", *parts)

    # -- hooks -------------------------------------------------------------------------------

    def refused(self, command: Command, error: Exception, envelope: Envelope) -> None:
        """Called when the application refuses an issued command for good; the default logs it.

        Override it to record or alert; the manager goes on with the next event either way.
        """
        log.warning(
            "process.command_refused",
            process=self.projector_name(),
            command_type=type(command).__name__,
            command_id=command.command_id,
            error_type=type(error).__name__,
            stream=envelope.stream,
            version=envelope.version,
            correlation_id=envelope.correlation_id,
        )

    def cancelled(self, deadline_id: str, result: CancelResult, envelope: Envelope) -> None:
        """Called with what cancelling a deadline found (``ALREADY_FIRED``: too late)."""
        log.info(
            "process.deadline_cancel",
            process=self.projector_name(),
            deadline_id=deadline_id,
            result=result.value,
            stream=envelope.stream,
        )

    # -- the engine's side -------------------------------------------------------------------

    def handler_for(self, event_type: str) -> Callable[..., Any] | None:
        """The handler, wrapped so that what it asks is kept only when it returns normally (a
        failed attempt's requests are dropped, as a projector's queued writes are)."""
        handler = super().handler_for(event_type)
        if handler is None:
            return None
        return _collecting(handler)

    def _commit_states(self, asking: _Asking) -> list[Action]:
        """Commit the states the handler asked for, each recording the event as handled and
        what the handler asked for; returns what is to be done now: that, or what another
        runner recorded when it committed this event's states first."""
        if asking.unit_of_work is None or not asking.states:
            return asking.actions
        envelope = asking.envelope
        asked = self._encode_actions(asking.actions)
        for state in asking.states:
            state.record_handled(envelope.stream, envelope.version, asked)
        try:
            asking.unit_of_work.commit()
        except DuplicateCommand:
            # Another runner committed this event's states first, perhaps having decided on a
            # newer state than this one read: what it recorded is what is done.
            first = asking.states[0]
            current = self.application.get(type(first), first.id)
            return self._decode_actions(
                current.asked_for(envelope.stream, envelope.version), envelope
            )
        except (StoreUnavailable, ConflictError) as error:
            raise DeliverAgain(
                f"{type(self).__name__} could not commit its state for {envelope.stream} "
                f"version {envelope.version}: {type(error).__name__}: {error}; the event will "
                "be delivered again"
            ) from error
        return asking.actions

    def _encode_actions(self, actions: list[Action]) -> str:
        """``actions`` as a process's state records them (JSON)."""
        encoded: list[dict[str, str]] = []
        for action in actions:
            if isinstance(action, Issue):
                command = action.command
                personal = [field.name for field in type(command).__personal__]
                if personal:
                    raise DefinitionError(
                        f"{type(self).__name__} issues {type(command).__name__} from a handler "
                        f"that keeps state: its personal fields ({', '.join(personal)}) would be "
                        "recorded in clear on the state; issue a command naming the subject by id"
                    )
                command_type, document = encode_command(command)
                encoded.append(
                    {"issue": command_type, "command": document, "id": command.command_id}
                )
            elif isinstance(action, Schedule):
                deadline = action.deadline
                encoded.append(
                    {
                        "schedule": deadline.deadline_id,
                        "due_at": deadline.due_at.isoformat(),
                        "command_type": deadline.command_type,
                        "command": deadline.command,
                    }
                )
            else:
                encoded.append({"cancel": action.deadline_id})
        return json.dumps(encoded, separators=(",", ":"))

    def _decode_actions(self, asked: str, envelope: Envelope) -> list[Action]:
        """The actions a state recorded for ``envelope``'s event, to be done again."""
        types = command_types_of(self.application)
        trigger = event_id(envelope.change_set_id, envelope.stream, envelope.version)
        holder = f"the state of {type(self).__name__} for {envelope.stream}@{envelope.version}"
        actions: list[Action] = []
        for entry in json.loads(asked):
            if "issue" in entry:
                command = command_from(
                    types,
                    entry["issue"],
                    entry["command"],
                    command_id=entry["id"],
                    correlation_id=envelope.correlation_id,
                    causation_id=trigger,
                    holder=holder,
                )
                actions.append(Issue(command, envelope))
            elif "schedule" in entry:
                deadline = Deadline(
                    deadline_id=entry["schedule"],
                    process=self.projector_name(),
                    due_at=dt.datetime.fromisoformat(entry["due_at"]),
                    command_type=entry["command_type"],
                    command=entry["command"],
                    correlation_id=envelope.correlation_id,
                    causation_id=trigger,
                    created_at=envelope.occurred_at,
                )
                actions.append(Schedule(deadline, envelope, decode_command(types, deadline)))
            else:
                actions.append(Cancel(entry["cancel"], envelope))
        return actions

    def _perform_asked(self, actions: list[Action]) -> None:
        """Do what a handler asked as soon as it returned, before the next event is handled.

        So a handler that reads state (``self.application.get``) sees what the commands issued
        for earlier events of the same delivery changed, never a state they are about to change.
        A failure that may pass stops the delivery (``DeliverAgain``) before any position moves:
        the event comes again, and what was already done is repeated as a no-op (derived ids).
        Any other failure is the event's: the engine retries its handler, then parks it.
        """
        for action in actions:
            try:
                self.perform(action)
            except CommandIdReused:
                raise  # a bug, not a passing failure: the event is parked with it
            except (StoreUnavailable, ConflictError) as error:
                raise DeliverAgain(
                    f"{type(self).__name__} could not complete what it asked for "
                    f"{action.envelope.stream} version {action.envelope.version}: "
                    f"{type(error).__name__}: {error}; the event will be delivered again"
                ) from error

    def perform(self, action: Action) -> None:
        """Do one queued action now."""
        if isinstance(action, Issue):
            self._send(action.command, action.envelope)
        elif isinstance(action, Schedule):
            store = self._store()
            if store.schedule(action.deadline):
                log.info(
                    "process.deadline_scheduled",
                    process=self.projector_name(),
                    deadline_id=action.deadline.deadline_id,
                    due_at=action.deadline.due_at.isoformat(),
                )
        else:
            result = self._store().cancel(action.deadline_id, self.clock())
            self.cancelled(action.deadline_id, result, action.envelope)

    def _send(self, command: Command, envelope: Envelope) -> None:
        # The command continues the trace of the event that asked for it (the handlers ran
        # earlier, in the engine's spans; this runs before the position moves).
        attributes = {
            "framework.process": self.projector_name(),
            "framework.command.type": type(command).__name__,
            "framework.command_id": command.command_id,
        }
        try:
            with continued_from(envelope, "issue", attributes):
                self.application.handle(command)
        except CommandIdReused:
            log.error(
                "process.command_id_reused",
                process=self.projector_name(),
                command_id=command.command_id,
            )
            raise
        except REFUSALS as error:
            self.refused(command, error, envelope)

    def _check_handled(self, command: Command) -> None:
        """Refuse, in the handler, a command the application has no handler for: the event is
        then parked with the reason, instead of failing every delivery when the command is sent.
        (Checked when the application is at hand; one built from the settings is not built for
        this.)"""
        if self._application is not None and type(command) not in self._known_commands():
            raise DefinitionError(
                f"{type(self).__name__} asks for {type(command).__name__}, which its application "
                "does not handle: register its aggregate or handler with the Application"
            )

    def _known_commands(self) -> frozenset[type[Command]]:
        if self._known is None:
            self._known = frozenset(self.application.command_types())
        return self._known

    def _store(self) -> DeadlineStore:
        if self.deadlines is None and self._application is None:
            self.application  # noqa: B018 (built from the settings, with their deadline store)
        if self.deadlines is None:
            raise InvalidDeadline(
                f"{type(self).__name__} schedules or cancels deadlines: give it a deadline store "
                "(deadlines=DynamoDBDeadlineStore(store) or InMemoryDeadlineStore())"
            )
        return self.deadlines

    def _asking(self, what: str) -> _Asking:
        asking: _Asking | None = getattr(self._local, "asking", None)
        if asking is None:
            raise DefinitionError(
                f"{type(self).__name__}.{what}() is called from an event handler, while an "
                "event is being handled"
            )
        return asking

    def _begin(self, envelope: Envelope) -> None:
        self._local.asking = _Asking(
            envelope, event_id(envelope.change_set_id, envelope.stream, envelope.version)
        )

    def _end(self) -> _Asking | None:
        asking: _Asking | None = getattr(self._local, "asking", None)
        self._local.asking = None
        return asking


def _collecting(handler: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(handler)
    def collecting(manager: ProcessManager, event: Event, envelope: Envelope) -> Any:
        manager._begin(envelope)
        kept = False
        result = None
        recorded: str | None = None
        try:
            result = handler(manager, event, envelope)
            kept = True
        except _AlreadyHandled as done:
            recorded = done.asked  # handled before: do again what it asked, nothing more
        finally:
            asking = manager._end()
        if recorded is not None:
            manager._perform_asked(manager._decode_actions(recorded, envelope))
        elif kept and asking is not None:
            # The states (with what was asked) first, then what was asked: a commit that fails
            # has done nothing, and a failed attempt's requests are dropped with it.
            manager._perform_asked(manager._commit_states(asking))
        return result

    return collecting

"""Deadlines: commands scheduled for a time, stored, and fired once by a runner.

A process manager schedules a command for later (``ProcessManager.schedule``): the deadline is
stored with its due time and the command serialized with the application's command types. A
``DeadlineRunner`` fires what is due: it *claims* a deadline with a conditional write (a lease
that expires), hands the command to the application, then marks the deadline fired. The command
id of a deadline's command is the deadline's id, so:

- two runners racing over the same due deadline: one claim wins, the other skips it;
- a runner that crashes after sending, before marking: its lease expires, another runner claims
  the deadline and sends the command again, and the application's command-id record makes that
  a repeat (the first result stands): the command is applied once.

Time is always passed in (``run_due(now)``), so tests drive it and never sleep.

``DeadlineStore`` is the port; ``InMemoryDeadlineStore`` here keeps the same rules in memory,
``framework.projections.dynamodb_deadlines.DynamoDBDeadlineStore`` keeps them in the
``{prefix}-deadlines`` table.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import random
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import attrs
import structlog

from framework.application import Application
from framework.domain import Command
from framework.errors import (
    AggregateAlreadyExists,
    AggregateNotFound,
    CommandIdReused,
    DefinitionError,
    DomainError,
    InvalidDeadline,
    SubjectForgotten,
    UniqueConstraintViolated,
)
from framework.mapping.converter import converter

__all__ = [
    "DEFAULT_LEASE",
    "CancelResult",
    "Deadline",
    "DeadlineRunner",
    "DeadlineStatus",
    "DeadlineStore",
    "InMemoryDeadlineStore",
    "RunReport",
    "decode_command",
    "encode_command",
]

log = structlog.get_logger(__name__)

DEFAULT_LEASE = dt.timedelta(minutes=2)
"""How long a claim keeps other runners off a deadline: longer than handling one command takes."""

REFUSALS: tuple[type[Exception], ...] = (
    DomainError,
    AggregateNotFound,
    AggregateAlreadyExists,
    UniqueConstraintViolated,
    SubjectForgotten,
)
"""What an application answers when it refuses a command for good: retrying cannot change it."""

_COMMAND_ENVELOPE = frozenset({"command_id", "correlation_id", "causation_id"})


class DeadlineStatus(enum.StrEnum):
    """Where a deadline is in its life: pending until fired, refused or cancelled."""

    PENDING = "pending"
    FIRED = "fired"
    REFUSED = "refused"
    CANCELLED = "cancelled"


class CancelResult(enum.StrEnum):
    """What ``cancel`` found: whether the command will still run."""

    CANCELLED = "cancelled"
    """It was pending: it will never fire."""
    ALREADY_FIRED = "already-fired"
    """Too late: its command was handled (or refused by the application)."""
    ALREADY_CANCELLED = "already-cancelled"
    FIRING = "firing"
    """A runner holds it right now: it is being fired."""
    NOT_FOUND = "not-found"


@attrs.frozen
class Deadline:
    """A command due at ``due_at``, stored until a runner fires it.

    ``command`` is the command's JSON document (without its ids) and ``command_type`` its class
    name among the application's command types; ``correlation_id`` and ``causation_id`` are given
    to the command when it fires, its ``command_id`` is ``deadline_id``.
    """

    deadline_id: str
    process: str
    due_at: dt.datetime
    command_type: str
    command: str
    correlation_id: str | None = None
    causation_id: str | None = None
    status: DeadlineStatus = DeadlineStatus.PENDING
    created_at: dt.datetime | None = None
    fired_at: dt.datetime | None = None
    lease_owner: str | None = None
    lease_until: dt.datetime | None = None
    attempts: int = 0
    last_error: str | None = None

    def __attrs_post_init__(self) -> None:
        for name in ("due_at", "created_at", "fired_at", "lease_until"):
            moment = getattr(self, name)
            if moment is not None and moment.utcoffset() is None:
                raise InvalidDeadline(f"Deadline.{name} must be timezone-aware, got {moment!r}")

    def leased(self, now: dt.datetime) -> bool:
        """True while a runner's claim keeps others off it."""
        return self.lease_until is not None and self.lease_until > now


def encode_command(command: Command) -> tuple[str, str]:
    """A command as a deadline stores it: its class name and its JSON document without ids.

    A command with personal fields is refused: a deadline is stored as it is, in clear, and
    forgetting a subject could not erase it there (events keep personal data encrypted under the
    subject's key; a deadline has none). Schedule a command naming the subject by id instead.
    """
    personal = [field.name for field in type(command).__personal__]
    if personal:
        raise InvalidDeadline(
            f"{type(command).__name__} has personal fields ({', '.join(personal)}): a deadline "
            "stores its command in clear, where forgetting the subject could not erase them; "
            "schedule a command that names the subject by id instead"
        )
    document = converter.unstructure(command, type(command))
    for name in _COMMAND_ENVELOPE:
        document.pop(name, None)
    return type(command).__name__, json.dumps(document, sort_keys=True, separators=(",", ":"))


def decode_command(command_types: Mapping[str, type[Command]], deadline: Deadline) -> Command:
    """The command a deadline fires, with its ids: command id = deadline id."""
    return command_from(
        command_types,
        deadline.command_type,
        deadline.command,
        command_id=deadline.deadline_id,
        correlation_id=deadline.correlation_id,
        causation_id=deadline.causation_id,
        holder=f"deadline {deadline.deadline_id}",
    )


def command_from(
    command_types: Mapping[str, type[Command]],
    command_type: str,
    document: str,
    *,
    command_id: str,
    correlation_id: str | None,
    causation_id: str | None,
    holder: str,
) -> Command:
    """A command stored by ``encode_command`` (in a deadline, or a process's state), with its
    ids given back; ``holder`` names where it was stored, for the error."""
    command_class = command_types.get(command_type)
    if command_class is None:
        raise DefinitionError(
            f"{holder} holds a {command_type} command, which the application does not handle"
        )
    fields: dict[str, Any] = json.loads(document)
    fields.update(command_id=command_id, correlation_id=correlation_id, causation_id=causation_id)
    command: Command = converter.structure(fields, command_class)
    return command


def command_types_of(application: Application) -> dict[str, type[Command]]:
    """The application's command classes by name; two with one name are refused."""
    found: dict[str, type[Command]] = {}
    for command_class in application.command_types():
        known = found.setdefault(command_class.__name__, command_class)
        if known is not command_class:
            raise DefinitionError(
                f"two command classes are named {command_class.__name__} "
                f"({known.__qualname__}, {command_class.__qualname__}): deadlines store commands "
                "by class name, so rename one"
            )
    return found


class DeadlineStore(Protocol):
    """Where deadlines wait. Every method is one conditional write or a read: runners race."""

    def schedule(self, deadline: Deadline) -> bool:
        """Store ``deadline`` unless one with its id exists; ``True`` when it was new."""
        ...

    def cancel(self, deadline_id: str, now: dt.datetime) -> CancelResult:
        """Cancel a pending deadline no runner holds; says what it found otherwise."""
        ...

    def get(self, deadline_id: str) -> Deadline | None:
        """The deadline with this id (consistent read)."""
        ...

    def due(self, now: dt.datetime, limit: int = 100) -> list[Deadline]:
        """Up to ``limit`` pending deadlines due at or before ``now``, earliest first.

        May be stale (an index): ``claim`` is the check that counts.
        """
        ...

    def claim(
        self, deadline_id: str, owner: str, now: dt.datetime, lease: dt.timedelta
    ) -> Deadline | None:
        """Hold a pending, due deadline no live lease holds until ``now + lease``; else ``None``."""
        ...

    def finish(
        self,
        deadline_id: str,
        owner: str,
        status: DeadlineStatus,
        now: dt.datetime,
        error: str | None = None,
    ) -> bool:
        """Mark a claimed deadline fired or refused; ``False`` when ``owner`` lost its lease."""
        ...

    def release(self, deadline_id: str, owner: str, error: str) -> None:
        """Give a claimed deadline back after a failure that a later attempt may cure."""
        ...

    def list(self, status: DeadlineStatus | None = None, limit: int = 100) -> list[Deadline]:
        """Deadlines (of one status), earliest due first."""
        ...


class InMemoryDeadlineStore:
    """Deadlines in a dict, with the DynamoDB store's rules (for unit tests and examples)."""

    def __init__(self) -> None:
        self._items: dict[str, Deadline] = {}
        self._lock = threading.Lock()

    def schedule(self, deadline: Deadline) -> bool:
        with self._lock:
            if deadline.deadline_id in self._items:
                return False
            self._items[deadline.deadline_id] = deadline
            return True

    def cancel(self, deadline_id: str, now: dt.datetime) -> CancelResult:
        with self._lock:
            found = self._items.get(deadline_id)
            result = cancel_outcome(found, now)
            if result is CancelResult.CANCELLED and found is not None:
                self._items[deadline_id] = attrs.evolve(
                    found, status=DeadlineStatus.CANCELLED, fired_at=now
                )
            return result

    def get(self, deadline_id: str) -> Deadline | None:
        return self._items.get(deadline_id)

    def due(self, now: dt.datetime, limit: int = 100) -> list[Deadline]:
        with self._lock:
            pending = [
                d
                for d in self._items.values()
                if d.status is DeadlineStatus.PENDING and d.due_at <= now
            ]
        return sorted(pending, key=lambda d: d.due_at)[:limit]

    def claim(
        self, deadline_id: str, owner: str, now: dt.datetime, lease: dt.timedelta
    ) -> Deadline | None:
        with self._lock:
            found = self._items.get(deadline_id)
            if (
                found is None
                or found.status is not DeadlineStatus.PENDING
                or found.due_at > now
                or found.leased(now)
            ):
                return None
            claimed = attrs.evolve(
                found, lease_owner=owner, lease_until=now + lease, attempts=found.attempts + 1
            )
            self._items[deadline_id] = claimed
            return claimed

    def finish(
        self,
        deadline_id: str,
        owner: str,
        status: DeadlineStatus,
        now: dt.datetime,
        error: str | None = None,
    ) -> bool:
        with self._lock:
            found = self._items.get(deadline_id)
            if (
                found is None
                or found.status is not DeadlineStatus.PENDING
                or found.lease_owner != owner
            ):
                return False
            self._items[deadline_id] = attrs.evolve(
                found, status=status, fired_at=now, lease_until=None, last_error=error
            )
            return True

    def release(self, deadline_id: str, owner: str, error: str) -> None:
        with self._lock:
            found = self._items.get(deadline_id)
            if found is not None and found.lease_owner == owner:
                self._items[deadline_id] = attrs.evolve(
                    found, lease_owner=None, lease_until=None, last_error=error
                )

    def list(self, status: DeadlineStatus | None = None, limit: int = 100) -> list[Deadline]:
        chosen = [d for d in self._items.values() if status is None or d.status is status]
        return sorted(chosen, key=lambda d: d.due_at)[:limit]


def cancel_outcome(found: Deadline | None, now: dt.datetime) -> CancelResult:
    """What cancelling ``found`` at ``now`` comes to (the rule every store applies)."""
    if found is None:
        return CancelResult.NOT_FOUND
    if found.status is DeadlineStatus.CANCELLED:
        return CancelResult.ALREADY_CANCELLED
    if found.status is not DeadlineStatus.PENDING:
        return CancelResult.ALREADY_FIRED
    if found.leased(now):
        return CancelResult.FIRING
    return CancelResult.CANCELLED


@attrs.define
class RunReport:
    """What one ``run_due`` did."""

    fired: int = 0
    refused: int = 0
    failed: int = 0
    lost: int = 0
    """Due deadlines another runner claimed first (or that were no longer due)."""


class DeadlineRunner:
    """Fires due deadlines: claim (a lease), handle the command, mark it fired.

    ``application`` handles the commands (and knows their types); ``store`` holds the deadlines.
    A command the application refuses (a ``DomainError``...) marks the deadline ``refused``: a
    retry cannot change the answer. Any other failure gives the deadline back (its lease is
    dropped) for a later run; ``CommandIdReused`` (a deadline id used for another command) is
    raised, as it is a bug to fix, not a state to wait out.
    """

    def __init__(
        self,
        application: Application,
        store: DeadlineStore,
        *,
        lease: dt.timedelta = DEFAULT_LEASE,
        owner: str | None = None,
        batch: int = 100,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        if lease <= dt.timedelta(0):
            raise InvalidDeadline("a deadline runner's lease must be positive")
        self.application = application
        self.store = store
        self.lease = lease
        self.owner = owner or f"runner-{uuid.uuid4().hex[:12]}"
        self.batch = batch
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.command_types = command_types_of(application)

    def run_due(self, now: dt.datetime | None = None) -> RunReport:
        """Fire every deadline due at ``now`` (default: the clock's now) that this runner claims."""
        now = self.clock() if now is None else now
        report = RunReport()
        tried: set[str] = set()  # each deadline once a run: a failing one waits for the next
        while True:
            due = self.store.due(now, self.batch + len(tried))
            fresh = [d for d in due if d.deadline_id not in tried]
            # Runners racing over one list in one order would chase each other, every claim
            # after the first lost; in an order of their own they mostly meet nobody.
            random.shuffle(fresh)
            for deadline in fresh:
                tried.add(deadline.deadline_id)
                self.fire(deadline.deadline_id, now, report)
            if not fresh or len(due) < self.batch + len(tried) - len(fresh):
                return report

    def fire(self, deadline_id: str, now: dt.datetime, report: RunReport | None = None) -> bool:
        """Claim and fire one deadline; ``False`` when it could not be claimed."""
        report = RunReport() if report is None else report
        claimed = self.store.claim(deadline_id, self.owner, now, self.lease)
        if claimed is None:
            report.lost += 1
            return False
        bound = log.bind(deadline_id=deadline_id, process=claimed.process, runner=self.owner)
        try:
            command = decode_command(self.command_types, claimed)
        except Exception as error:  # cattrs and json raise several kinds
            # A command type the application no longer has, or a document its class no longer
            # reads: no later run can fire it. It ends refused, with the reason, loudly, instead
            # of failing every run (and, raised, stopping the deadlines after it in each run).
            return self._refuse(claimed, now, report, bound, f"undecodable: {error!r}")
        try:
            self.application.handle(command)
        except CommandIdReused as error:
            # Another command took this deadline's id (a bug): sending again cannot cure it.
            return self._refuse(claimed, now, report, bound, f"CommandIdReused: {error}")
        except REFUSALS as error:
            self.store.finish(
                deadline_id, self.owner, DeadlineStatus.REFUSED, now, f"{type(error).__name__}"
            )
            report.refused += 1
            bound.info("deadline.refused", error_type=type(error).__name__)
            return True
        except Exception as error:  # a failure a later run may cure: give the deadline back
            self.store.release(deadline_id, self.owner, f"{type(error).__name__}: {error}")
            report.failed += 1
            bound.warning("deadline.failed", error_type=type(error).__name__)
            return True
        if self.store.finish(deadline_id, self.owner, DeadlineStatus.FIRED, now):
            bound.info("deadline.fired", command_type=claimed.command_type)
        else:  # the lease ran out meanwhile; the command id made any second send a repeat
            bound.warning("deadline.lease_lost")
        report.fired += 1
        return True

    def _refuse(
        self,
        deadline: Deadline,
        now: dt.datetime,
        report: RunReport,
        bound: structlog.typing.FilteringBoundLogger,
        reason: str,
    ) -> bool:
        self.store.finish(deadline.deadline_id, self.owner, DeadlineStatus.REFUSED, now, reason)
        report.refused += 1
        bound.error("deadline.unfireable", command_type=deadline.command_type, reason=reason)
        return True

    def run(self, stop: threading.Event, interval: float = 5.0) -> None:
        """Fire due deadlines every ``interval`` seconds until ``stop`` is set."""
        while not stop.is_set():
            try:
                self.run_due()
            except Exception as error:  # keep the loop alive; the next run tries again
                log.error("deadline.run_failed", error_type=type(error).__name__, error=str(error))
            stop.wait(interval)

"""The unit of work: loads aggregates for one command and commits everything they did, at once.

Every aggregate a handler touches is tracked here with the version it was loaded at. ``commit``
turns their new events, snapshots and unique claims, plus the command id, into one ``ChangeSet``,
which the store writes as one transaction: all of it or none of it. The aggregates the handler
read but did not change go into the same transaction as version checks, so that no decision
commits on state that moved on meanwhile.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs
import structlog

from framework.application.cache import AggregateCache
from framework.application.repository import ReloadPoint, Repository
from framework.application.results import CommandResult
from framework.application.snapshots import NoSnapshots, SnapshotPolicy
from framework.domain import (
    Aggregate,
    Command,
    Event,
    event_type_name,
    new_id,
    personal_fields,
)
from framework.errors import (
    AggregateAlreadyExists,
    AggregateNotFound,
    SubjectForgotten,
)
from framework.mapping.converter import converter
from framework.mapping.mapper import EventMapper
from framework.store.base import EventStore
from framework.store.keys import check_aggregate_id, stream_key
from framework.store.records import (
    AggregateChange,
    ChangeSet,
    Snapshot,
    StoredEvent,
    UniqueClaim,
    VersionCheck,
)
from framework.subjects import Subject, subject_name
from framework.tracing import (
    AttributeValue,
    active_tracer,
    counting_requests,
    current_trace_context,
)

A = TypeVar("A", bound=Aggregate)

log = structlog.get_logger(__name__)

_NO_SNAPSHOTS = NoSnapshots()


_CONTEXT_FIELDS = ("command_id", "correlation_id", "causation_id")
"""Command fields that say which request a command is, not what it asks: not fingerprinted."""


def utc_now() -> dt.datetime:
    """The current time, timezone-aware in UTC."""
    return dt.datetime.now(dt.UTC)


def command_fingerprint(command: Command) -> str:
    """The SHA-256 of what ``command`` asks: its type name and fields, as canonical JSON.

    Stored with the command record, it tells a repeat of a command (same id, same payload: the
    first result stands) from a command id reused for another payload (refused). The ids that
    only place the command in a conversation (``command_id``, ``correlation_id``,
    ``causation_id``) are left out: a retry may carry another correlation id. So are the values
    of fields declared personal: the record outlives a "forget me" by up to its retention, and
    a bare hash of an address can be confirmed by guessing; an id reused with only other personal
    data is taken as a repeat.
    """
    fields = converter.unstructure(command)
    for name in _CONTEXT_FIELDS:
        fields.pop(name, None)
    for name in personal_fields(type(command)):
        fields[name] = "[personal]"
    canonical = _canonical_json({"type": type(command).__name__, "fields": fields})
    return hashlib.sha256(canonical.encode()).hexdigest()


def _canonical_fallback(value: Any) -> Any:
    """JSON for what the converter leaves as is: sets in a stable order, anything else as text."""
    if isinstance(value, set | frozenset):
        return sorted(value, key=lambda element: json.dumps(element, default=str, sort_keys=True))
    return str(value)


_canonical_json = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_canonical_fallback
).encode
"""Canonical JSON of a command, built once: ``json.dumps`` with options makes an encoder a call."""


@attrs.define
class _Tracked:
    aggregate: Aggregate
    loaded_version: int
    reload_point: ReloadPoint | None = None


class UnitOfWork:
    """Tracks the aggregates of one command and commits their changes as one change set.

    Multi-aggregate handlers receive it: ``def transfer(uow, cmd)`` calls ``uow.get(Account, id)``
    for each aggregate it needs, asks them to act, and the application commits afterwards.
    """

    def __init__(
        self,
        store: EventStore,
        mapper: EventMapper,
        *,
        command: Command,
        snapshot_policies: Mapping[type[Aggregate], SnapshotPolicy] | None = None,
        cache: AggregateCache | None = None,
        clock: Callable[[], dt.datetime] = utc_now,
        repository: Repository | None = None,
        reload_points: Mapping[tuple[type[Aggregate], str], ReloadPoint] | None = None,
    ) -> None:
        self.store = store
        self.mapper = mapper
        self.command = command
        self.cache = cache
        self._policies = snapshot_policies or {}
        self.repository = repository or Repository(
            store, mapper, snapshot_policies=self._policies, cache=cache
        )
        self._clock = clock
        self._tracked: dict[tuple[type[Aggregate], str], _Tracked] = {}
        self._reload_points = reload_points or {}

    # -- loading -----------------------------------------------------------------------------

    def get(self, aggregate_class: type[A], aggregate_id: str) -> A:
        """The aggregate, loaded once per unit of work. Raises ``AggregateNotFound``.

        Like ``create`` and ``get_or_create``, it refuses an id that cannot be stored (empty,
        not UTF-8, too long for one of its keys) with ``InvalidIdentifier`` before any read.
        """
        return self._open(aggregate_class, aggregate_id, missing_is_new=False)

    def create(self, aggregate_class: type[A], aggregate_id: str) -> A:
        """A new, empty aggregate. Raises ``AggregateAlreadyExists`` when the id is taken."""
        check_aggregate_id(aggregate_class.aggregate_type(), aggregate_id)
        if (aggregate_class, aggregate_id) in self._tracked or self.repository.exists(
            aggregate_class, aggregate_id
        ):
            raise AggregateAlreadyExists(aggregate_class.aggregate_type(), aggregate_id)
        aggregate = aggregate_class(aggregate_id)
        self._track(aggregate)
        return aggregate

    def get_or_create(self, aggregate_class: type[A], aggregate_id: str) -> A:
        """The aggregate if it exists, else a new, empty one (one read either way).

        Two commands creating the same aggregate at once cannot both win: the second commit
        fails its condition and the command is retried, finding the aggregate this time.
        """
        return self._open(aggregate_class, aggregate_id, missing_is_new=True)

    def _open(self, aggregate_class: type[A], aggregate_id: str, *, missing_is_new: bool) -> A:
        """The aggregate this unit of work already tracks, else loaded and tracked from now on;
        one that does not exist is a new, empty one (``missing_is_new``) or refused."""
        check_aggregate_id(aggregate_class.aggregate_type(), aggregate_id)
        tracked = self._tracked.get((aggregate_class, aggregate_id))
        if tracked is not None:
            return tracked.aggregate  # type: ignore[return-value]
        aggregate, point = self._load(aggregate_class, aggregate_id)
        if aggregate is None:
            if not missing_is_new:
                raise AggregateNotFound(aggregate_class.aggregate_type(), aggregate_id)
            aggregate = aggregate_class(aggregate_id)
        self._track(aggregate, point)
        return aggregate

    def _load(self, aggregate_class: type[A], aggregate_id: str) -> tuple[A | None, ReloadPoint]:
        """Load through the repository, from where an earlier attempt left off, if any."""
        since = self._reload_points.get((aggregate_class, aggregate_id))
        return self.repository.load(aggregate_class, aggregate_id, since=since)

    def _track(self, aggregate: Aggregate, point: ReloadPoint | None = None) -> None:
        self._tracked[(type(aggregate), aggregate.id)] = _Tracked(
            aggregate, aggregate.version, point
        )

    def reload_points(self) -> dict[tuple[type[Aggregate], str], ReloadPoint]:
        """Where each aggregate this unit of work loaded was loaded from, for a retry.

        After a lost race, the next attempt's unit of work is given these: it rebuilds each
        aggregate as it was loaded here and reads only the events committed since. Aggregates
        this attempt created have none: the retry looks for them afresh.
        """
        return {
            key: tracked.reload_point
            for key, tracked in self._tracked.items()
            if tracked.reload_point is not None
        }

    def _policy(self, aggregate_class: type[Aggregate]) -> SnapshotPolicy:
        return self._policies.get(aggregate_class, _NO_SNAPSHOTS)

    # -- committing --------------------------------------------------------------------------

    def commit(self) -> CommandResult:
        """Write everything the tracked aggregates did as one change set.

        Every tracked aggregate that did not change is checked to be still at the version it was
        read at (or still absent), in the same transaction: a decision is never committed on a
        stale cached copy or on state another command changed meanwhile (write skew). A command
        that changed nothing still commits its command id with those checks, so that a late
        retry of it is recognised as a repeat instead of running on state that moved on.
        """
        change_set_id = new_id()
        now = self._clock()
        changes: list[AggregateChange] = []
        checks: list[VersionCheck] = []
        claims: dict[tuple[str, str, str], UniqueClaim] = {}
        new_events: list[Event] = []
        for tracked in self._tracked.values():
            aggregate = tracked.aggregate
            if not aggregate.has_pending_changes:
                checks.append(
                    VersionCheck(aggregate.aggregate_type(), aggregate.id, tracked.loaded_version)
                )
                continue
            recorded = aggregate.take_changes()
            events = list(recorded.events)
            new_events.extend(events)
            owner = stream_key(aggregate.aggregate_type(), aggregate.id)
            for request in recorded.claims:
                # The last word on a value wins: claim-then-release within one command releases.
                claims[(request.scope, request.value, owner)] = UniqueClaim(
                    request.scope, request.value, owner, request.claim
                )
            changes.append(self._aggregate_change(tracked, events, change_set_id, now))
        versions = {change.stream: change.new_version for change in changes}
        result = CommandResult(
            command_id=self.command.command_id,
            change_set_id=change_set_id,
            versions=versions,
            events=tuple(new_events),
        )
        forgotten = self._subjects_to_forget(changes)
        change_set = ChangeSet(
            change_set_id=change_set_id,
            command_id=self.command.command_id,
            committed_at=now,
            aggregates=tuple(changes),
            claims=tuple(claims.values()),
            result=result.to_json(),
            forget_keys=tuple(subject_name(subject) for subject in forgotten),
            checks=tuple(checks),
            command_fingerprint=command_fingerprint(self.command),
        )
        tracer = active_tracer()
        if tracer is None:
            self.store.commit(change_set)
        else:
            attributes: dict[str, AttributeValue] = {
                "framework.change_set_id": change_set_id,
                "framework.commit.aggregates": len(changes),
                "framework.commit.events": sum(len(change.events) for change in changes),
            }
            # The store adds what it knows: its system, tables and items (``tracing.annotate``).
            with (
                tracer.start_as_current_span("commit", attributes=attributes) as span,
                counting_requests(span),
            ):
                self.store.commit(change_set)
        for tracked in self._tracked.values():
            tracked.loaded_version = tracked.aggregate.version
            if self.cache is not None:
                self.cache.put(tracked.aggregate)
        self._forget_subjects(forgotten)
        return result

    def _subjects_to_forget(self, changes: list[AggregateChange]) -> tuple[Subject, ...]:
        """Aggregates whose new events include one declared ``forgets_subject``."""
        if self.mapper.keys is None:
            return ()
        forgetting = {event_type_name(c) for c in self.mapper.classes() if c.__forgets_subject__}
        return tuple(
            (change.aggregate_type, change.aggregate_id)
            for change in changes
            if any(record.event_type in forgetting for record in change.events)
        )

    def _forget_subjects(self, subjects: tuple[Subject, ...]) -> None:
        """After the commit that tombstoned their keys in the table: clear every other copy.

        The key ring remembers the subject as forgotten, and every cached aggregate whose state
        was built from the subject's personal data is evicted, so that no later command of this
        process can snapshot that state again.
        """
        keys = self.mapper.keys
        if keys is None:
            return
        for subject in subjects:
            keys.forget(subject_name(subject))
            evicted = 0 if self.cache is None else self.cache.evict_subject(subject)
            log.info(
                "subject.forgotten",
                aggregate_type=subject[0],
                aggregate_id=subject[1],
                cache_evicted=evicted,
            )

    def forget_cached(self) -> None:
        """Drop every aggregate of this unit of work from the cache (after a failed commit)."""
        if self.cache is not None:
            for aggregate_class, aggregate_id in self._tracked:
                self.cache.invalidate(aggregate_class, aggregate_id)

    def _aggregate_change(
        self, tracked: _Tracked, events: list[Event], change_set_id: str, now: dt.datetime
    ) -> AggregateChange:
        aggregate = tracked.aggregate
        command = self.command
        correlation_id = command.correlation_id or command.command_id
        causation_id = command.causation_id or command.command_id
        traceparent, tracestate = current_trace_context()
        aggregate_type = aggregate.aggregate_type()
        stored = []
        for offset, event in enumerate(events, start=1):
            encoded = self.mapper.encode(event, (aggregate_type, aggregate.id))
            stored.append(
                StoredEvent(
                    aggregate_type=aggregate_type,
                    aggregate_id=aggregate.id,
                    version=tracked.loaded_version + offset,
                    event_type=encoded.event_type,
                    schema=encoded.schema,
                    payload=encoded.payload,
                    occurred_at=now,
                    change_set_id=change_set_id,
                    command_id=command.command_id,
                    correlation_id=correlation_id,
                    causation_id=causation_id,
                    traceparent=traceparent,
                    tracestate=tracestate,
                )
            )
        return AggregateChange(
            aggregate_type=aggregate_type,
            aggregate_id=aggregate.id,
            expected_version=tracked.loaded_version,
            events=tuple(stored),
            snapshot=self._snapshot_if_due(tracked, now),
        )

    def _snapshot_if_due(self, tracked: _Tracked, now: dt.datetime) -> Snapshot | None:
        aggregate = tracked.aggregate
        if not self._policy(type(aggregate))(aggregate, tracked.loaded_version):
            return None
        try:
            state = self.mapper.encode_state(aggregate)
        except SubjectForgotten as forgotten:
            # The state holds personal data of a subject forgotten since it was loaded (another
            # process's forget, say): it must not be stored again. Replays read it erased.
            log.info(
                "snapshot.skipped_subject_forgotten",
                aggregate_type=aggregate.aggregate_type(),
                aggregate_id=aggregate.id,
                subject=forgotten.subject,
            )
            return None
        except Exception as error:
            # A snapshot only speeds up loading: a state that cannot be encoded (undeclared
            # attributes the start-up check could not see, a value the converter refuses) is
            # reported loudly, and the command commits without it.
            log.error(
                "snapshot.skipped_unencodable",
                aggregate_type=aggregate.aggregate_type(),
                aggregate_id=aggregate.id,
                error=repr(error),
            )
            return None
        return Snapshot(
            aggregate_type=aggregate.aggregate_type(),
            aggregate_id=aggregate.id,
            version=aggregate.version,
            state=state,
            schema=self.mapper.state_schema(type(aggregate)),
            created_at=now,
        )

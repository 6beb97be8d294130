"""What any HTTP front of an application needs, whatever its web framework.

Two jobs every HTTP API over an event-sourced application repeats, and gets subtly wrong when it
writes them itself:

- **Idempotency keys.** A client retries a POST with the same ``Idempotency-Key`` header and must
  get the first result back, with nothing written twice; the same key sent with another request
  must be refused, not answered with an unrelated result. ``bind_idempotency_key`` derives the
  command's id from the key (and, optionally, from who sent it), so that the application's
  command records do the rest: a repeat returns the first result, another payload under the same
  id raises ``CommandIdReused``. ``check_repeat`` covers the records written before payload
  fingerprints were stored: a duplicate whose first result changed none of the streams this
  request targets is a reused key too.
- **Read your writes.** After a command, the read models of the streams it changed are brought up
  to date before the response, so a client's next GET shows its write. That projection in the
  request is only an optimisation: ``ReadYourWrites`` remembers the streams whose projection
  failed and retries them in the background, and runs a ``CatchUpRunner`` over the feed
  periodically, which brings whatever a crashed process never projected. That catch-up is the
  guarantee.

- **One request, followed.** ``RequestContext.from_headers`` reads the caller's
  ``X-Correlation-Id`` (validated: a bounded printable id; a new one when absent) and W3C
  ``traceparent``; within ``request_scope`` every log line carries the request's ids, the
  caller's trace context is current, and ``bind_request`` gives a command the request's
  correlation id and the request's id as its cause, so its events and everything that follows
  them carry both.

Nothing here imports a web framework: an endpoint calls these with the header's value and the
command it built, then answers in its own framework's terms.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import re
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import structlog

from framework.application.results import CommandResult
from framework.domain import Command, new_id
from framework.errors import CommandIdReused, InvalidCommand
from framework.logs import log_context
from framework.projections.engine import ApplyReport, ProjectionEngine
from framework.projections.projector import Projector
from framework.store.base import EventStore
from framework.store.keys import split_stream
from framework.store.positions import PositionStore
from framework.tracing import attached

if TYPE_CHECKING:
    from framework.projections.catch_up import CatchUpRunner

__all__ = [
    "CORRELATION_ID_HEADER",
    "FEED_INTERVAL_SECONDS",
    "IDEMPOTENCY_KEY_HEADER",
    "MAX_CORRELATION_ID_LENGTH",
    "MAX_IDEMPOTENCY_KEY_LENGTH",
    "REQUEST_ID_HEADER",
    "RETRY_INTERVAL_SECONDS",
    "TRACEPARENT_HEADER",
    "TRACESTATE_HEADER",
    "CatchUpStep",
    "InvalidCorrelationId",
    "InvalidIdempotencyKey",
    "ReadYourWrites",
    "RequestContext",
    "StreamProjection",
    "bind_idempotency_key",
    "bind_request",
    "check_repeat",
    "current_request",
    "request_scope",
]

log = structlog.get_logger(__name__)

C = TypeVar("C", bound=Command)

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
"""The header's name, as the IETF draft on idempotency keys spells it."""

MAX_IDEMPOTENCY_KEY_LENGTH = 200
"""The longest key accepted, in characters: a UUID is 36; the command id's key has room for it."""

MAX_PROJECTION_ROUNDS = 5
"""How often a request re-runs a stream's catch-up after another request's projection won."""

RETRY_INTERVAL_SECONDS = 1.0
"""How often the background catch-up retries the streams whose projection failed."""

FEED_INTERVAL_SECONDS = 60.0
"""How often the background catch-up runs over the feed (and once at start-up)."""

MAX_PENDING_STREAMS = 10_000
"""Streams remembered for a retry at most; beyond, the feed catch-up alone brings them."""


class InvalidIdempotencyKey(InvalidCommand):
    """The ``Idempotency-Key`` header cannot be a command id: empty, too long, or not printable."""


def bind_idempotency_key(command: C, key: str | None, *, scope: str | None = None) -> C:
    """``command`` with the id its idempotency key derives; ``command`` itself without a key.

    Without ``scope`` the key is the command id, as clients see it in the result. With
    ``scope`` (the authenticated caller, a tenant), the id is the key prefixed with a digest of
    the scope, so that two callers who happen to pick the same key never see each other's
    results. The application does the rest: it stores each command id with a fingerprint of the
    command's payload, so the same key with the same command returns the first result, and the
    same key with another payload (another target, another amount) raises ``CommandIdReused``.
    """
    if key is None:
        return command
    if (
        not key
        or len(key) > MAX_IDEMPOTENCY_KEY_LENGTH
        or not key.isprintable()
        or key != key.strip()
    ):
        raise InvalidIdempotencyKey(
            f"an {IDEMPOTENCY_KEY_HEADER} must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} printable "
            "characters without leading or trailing spaces"
        )
    command_id = key
    if scope is not None:
        digest = hashlib.sha256(scope.encode("utf-8", "surrogateescape")).hexdigest()[:16]
        command_id = f"{digest}:{key}"
    return attrs.evolve(command, command_id=command_id)


CORRELATION_ID_HEADER = "X-Correlation-Id"
"""The header a caller names its conversation with; answered back on every response."""

REQUEST_ID_HEADER = "X-Request-Id"
"""The header every response names its request with (a fresh id per request)."""

TRACEPARENT_HEADER = "traceparent"
TRACESTATE_HEADER = "tracestate"
"""The W3C Trace Context headers."""

MAX_CORRELATION_ID_LENGTH = 128
"""The longest correlation id accepted, in characters: it is stored on every event."""

_CORRELATION_ID = re.compile(rf"[!-~]{{1,{MAX_CORRELATION_ID_LENGTH}}}")

_current: ContextVar[RequestContext | None] = ContextVar("framework_request", default=None)


class InvalidCorrelationId(InvalidCommand):
    """The ``X-Correlation-Id`` header is empty, too long, or not printable ASCII without spaces.

    ``request_id`` is the id the refused request was given, for its answer.
    """

    def __init__(self, message: str, request_id: str) -> None:
        super().__init__(message)
        self.request_id = request_id


@attrs.frozen
class RequestContext:
    """Who a request is: its own id, the conversation it belongs to, the caller's trace."""

    request_id: str
    correlation_id: str
    traceparent: str | None = None
    tracestate: str | None = None

    @classmethod
    def from_headers(
        cls,
        correlation_id: str | None,
        *,
        traceparent: str | None = None,
        tracestate: str | None = None,
    ) -> RequestContext:
        """The context of a request with these header values (``None``: header absent).

        A request without ``X-Correlation-Id`` starts a conversation: the correlation id is the
        request's own id. One that is not 1 to 128 printable ASCII characters without spaces
        is refused with ``InvalidCorrelationId`` before anything runs: it would be stored on
        every event and logged on every line. A malformed ``traceparent`` is ignored.
        """
        request_id = new_id()
        if correlation_id is None:
            correlation_id = request_id
        elif not _CORRELATION_ID.fullmatch(correlation_id):
            raise InvalidCorrelationId(
                f"an {CORRELATION_ID_HEADER} must be 1 to {MAX_CORRELATION_ID_LENGTH} printable "
                "ASCII characters without spaces",
                request_id,
            )
        return cls(request_id, correlation_id, traceparent or None, tracestate or None)


@contextlib.contextmanager
def request_scope(context: RequestContext) -> Iterator[RequestContext]:
    """Within the block: ``current_request()`` is ``context``, log lines carry its ids, and the
    caller's trace context is current (see ``tracing.attached``)."""
    token = _current.set(context)
    try:
        with (
            log_context(request_id=context.request_id, correlation_id=context.correlation_id),
            attached(context.traceparent, context.tracestate),
        ):
            yield context
    finally:
        _current.reset(token)


def current_request() -> RequestContext | None:
    """The context of the request being served, within ``request_scope``."""
    return _current.get()


def bind_request(command: C, context: RequestContext | None = None) -> C:
    """``command`` in the request's conversation: correlated with it, caused by the request.

    ``context`` defaults to the current request's; outside a request the command is returned
    as it is. Ids the command already carries are kept. The command's fingerprint leaves these
    ids out, so a retried request (same ``Idempotency-Key``, a new request id) is still a repeat.
    """
    context = context or current_request()
    if context is None:
        return command
    return attrs.evolve(
        command,
        correlation_id=command.correlation_id or context.correlation_id,
        causation_id=command.causation_id or context.request_id,
    )


def check_repeat(result: CommandResult, streams: Collection[str]) -> CommandResult:
    """``result``, unless it is a repeat whose first run changed none of ``streams``.

    ``streams`` are those the request targets (``{type}#{id}``). A command id stored before
    payload fingerprints were kept carries none, so the application takes any repeat of it as
    the same command; when its first result changed other streams, the key was used for another
    request, and answering with that result would report as done something that never ran.
    """
    if result.duplicate and result.versions and not set(streams) <= set(result.versions):
        log.warning("http.idempotency_key_reused", command_id=result.command_id)
        raise CommandIdReused(result.command_id)
    return result


class StreamProjection:
    """Brings the read models of some streams up to date, now, from the streams themselves.

    Why per stream rather than a ``CatchUpRunner`` over the feed: the feed is eventually
    consistent (on DynamoDB a global secondary index), so the newest commit may not be in it
    yet, whereas ``ProjectionEngine.catch_up_stream`` reads the stream with consistent reads;
    the work is proportional to the command, not to the hour's traffic; and it never moves the
    runner's feed checkpoint.

    ``projectors`` is called once per thread: a ``Projector`` queues its writes on the instance
    between a handler call and the commit, so two request threads must never share one.
    ``engine_options`` go to each ``ProjectionEngine``: the application's ``mapper=app.mapper``
    (or its ``upcasters=[...]``), so that the projectors read old events as the application does.
    """

    def __init__(
        self,
        store: EventStore,
        positions: PositionStore,
        projectors: Callable[[], Iterable[Projector]],
        *,
        max_rounds: int = MAX_PROJECTION_ROUNDS,
        **engine_options: Any,
    ) -> None:
        self.store = store
        self.positions = positions
        self.projectors = projectors
        self.engine_options = engine_options
        self.max_rounds = max_rounds
        self._local = threading.local()

    def _engines(self) -> list[ProjectionEngine]:
        engines: list[ProjectionEngine] | None = getattr(self._local, "engines", None)
        if engines is None:
            engines = [
                ProjectionEngine(projector, self.store, self.positions, **self.engine_options)
                for projector in self.projectors()
            ]
            self._local.engines = engines
        return engines

    def catch_up(self, streams: Iterable[str]) -> None:
        """Apply every stored event of ``streams`` beyond each following projector's position.

        A position conflict means another request's catch-up advanced the stream first, maybe
        only up to an earlier version than this command's: so go again until a round meets no
        conflict, and this command's events are in the read model when the call returns.
        """
        for stream in streams:
            aggregate_type, aggregate_id = split_stream(stream)
            for engine in self._engines():
                if not engine.projector.follows(aggregate_type):
                    continue
                for _ in range(self.max_rounds):
                    if not engine.catch_up_stream(aggregate_type, aggregate_id).conflicts:
                        break


@attrs.define
class CatchUpStep:
    """What one ``ReadYourWrites.step`` did."""

    retried: list[str] = attrs.field(factory=list)
    still_failing: list[str] = attrs.field(factory=list)
    feed: ApplyReport | None = None


class ReadYourWrites:
    """Read models updated before the response, and kept up to date whatever the requests did.

    ``after(result)`` projects the streams a command changed, in the request: an optimisation.
    When it fails the command is committed all the same, so the streams are remembered and
    retried every ``retry_interval`` seconds until they succeed. A run over the feed
    (``CatchUpRunner``) every ``feed_interval`` seconds, and on the first step, brings whatever
    was never projected (the process crashed between a commit and its projection, or the retry
    list was full): that is the guarantee.

    ``start``/``stop`` run ``step`` in a background thread (tie them to the web app's
    lifespan); tests call ``step`` directly. ``safety_window`` (default: the runner's) is how
    far short of now the feed run stops, for commits still in flight. ``lock``, when given, is
    held around the background work, for stores that must not be used by two threads at once.
    ``engine_options`` go to the engines of both (``mapper=app.mapper`` or ``upcasters=[...]``).
    """

    def __init__(
        self,
        store: EventStore,
        positions: PositionStore,
        projectors: Callable[[], Iterable[Projector]],
        *,
        lock: contextlib.AbstractContextManager[Any] | None = None,
        retry_interval: float = RETRY_INTERVAL_SECONDS,
        feed_interval: float = FEED_INTERVAL_SECONDS,
        safety_window: dt.timedelta | None = None,
        max_pending: int = MAX_PENDING_STREAMS,
        **engine_options: Any,
    ) -> None:
        self.store = store
        self.updater = StreamProjection(store, positions, projectors, **engine_options)
        # Imported here: the runner reads DynamoDB's feed through boto3, and this module must
        # not load it for an application that only binds idempotency keys.
        from framework.projections.catch_up import DEFAULT_SAFETY_WINDOW, CatchUpRunner

        self.runner: CatchUpRunner = CatchUpRunner(
            store,
            positions,
            projectors(),
            safety_window=DEFAULT_SAFETY_WINDOW if safety_window is None else safety_window,
            **engine_options,
        )
        self.lock: contextlib.AbstractContextManager[Any] = lock or contextlib.nullcontext()
        self.retry_interval = retry_interval
        self.feed_interval = feed_interval
        self.max_pending = max_pending
        self._pending: set[str] = set()
        self._pending_lock = threading.Lock()
        self._step_lock = threading.Lock()  # one step at a time: projectors queue on themselves
        self._next_feed_run = time.monotonic()  # the first step runs over the feed
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def pending(self) -> frozenset[str]:
        """The streams waiting for a retry of their projection."""
        with self._pending_lock:
            return frozenset(self._pending)

    @property
    def running(self) -> bool:
        """Whether the background thread runs."""
        return self._thread is not None

    def after(self, result: CommandResult) -> bool:
        """Project the streams ``result`` changed; ``False`` (and a retry later) on failure."""
        return self.project(list(result.versions), result.command_id)

    def project(self, streams: Collection[str], command_id: str) -> bool:
        """Project ``streams`` now; on failure remember them for a retry and return ``False``.

        Never raises: the command is committed, and answering with an error would invite a
        retry that is not idempotent without a key.
        """
        try:
            self.updater.catch_up(streams)
        except Exception as error:
            log.warning(
                "http.projection_failed",
                command_id=command_id,
                streams=len(streams),
                error_type=type(error).__name__,
                error=str(error),
            )
            self._remember(streams)
            return False
        return True

    def _remember(self, streams: Iterable[str]) -> None:
        with self._pending_lock:
            for stream in streams:
                if len(self._pending) >= self.max_pending:
                    log.warning("http.projection_retries_full", limit=self.max_pending)
                    return  # the feed catch-up brings the others
                self._pending.add(stream)

    def step(self, *, feed: bool | None = None) -> CatchUpStep:
        """Retry the remembered streams; run over the feed when due (or when ``feed`` says)."""
        with self._step_lock:
            report = CatchUpStep()
            with self._pending_lock:
                streams = sorted(self._pending)
                self._pending.clear()
            for stream in streams:
                try:
                    with self.lock:
                        self.updater.catch_up([stream])
                    report.retried.append(stream)
                except Exception as error:
                    report.still_failing.append(stream)
                    log.warning(
                        "http.projection_retry_failed",
                        error_type=type(error).__name__,
                        error=str(error),
                    )
            self._remember(report.still_failing)
            if feed if feed is not None else time.monotonic() >= self._next_feed_run:
                self._next_feed_run = time.monotonic() + self.feed_interval
                try:
                    with self.lock:
                        report.feed = self.runner.run()
                except Exception as error:
                    log.warning(
                        "http.feed_catch_up_failed",
                        error_type=type(error).__name__,
                        error=str(error),
                    )
            return report

    def start(self) -> None:
        """Run ``step`` in a background thread until ``stop``."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="read-your-writes", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the background thread, letting a step under way finish."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.step()
            except Exception:  # never let the thread die: the next round tries again
                log.exception("http.catch_up_step_failed")
            self._stopping.wait(self.retry_interval)

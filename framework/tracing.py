"""OpenTelemetry spans for a command's path and for what follows its events.

The framework depends on ``opentelemetry-api`` only. Without an SDK (no tracer provider set, or
``use_tracer_provider(None)``) ``active_tracer`` answers ``None`` and every call site takes its
plain path: no span object, no context switch, one function call per command. An application
that wants traces installs the SDK, sets a provider (``trace.set_tracer_provider``, or
``use_tracer_provider`` for a block) and exports where it likes.

Spans (all from the tracer named ``framework``):

- ``handle``: ``Application.handle``; the command's type, id, correlation id and attempts;
- ``load``: loading one aggregate; its type, the events read, whether a snapshot or the cache
  served it;
- ``commit``: one change set sent to the store; the tables, the items and the requests
  (``db.system``, ``aws.dynamodb.table_names`` on DynamoDB);
- ``project``: one event applied by one projector; the projector, stream and version;
- ``publish``: one ``PutEvents`` request of the EventBridge publisher; entries and failures.

A command's events store the trace context current when they were committed (``traceparent``,
``tracestate``: W3C Trace Context): ``continued_from`` starts a span whose parent is that stored
context, so a projection, the publisher or a process manager running later, in another process,
continues the request's trace.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanContext, Tracer, TracerProvider
from opentelemetry.trace import SpanKind as SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue as AttributeValue

__all__ = [
    "TRACER_NAME",
    "TraceCarrier",
    "active_tracer",
    "attached",
    "continued_from",
    "current_trace_context",
    "publish_context",
    "span",
    "use_tracer_provider",
]

TRACER_NAME = "framework"
"""The instrumentation scope of every span the framework starts."""

ATTEMPTS = "framework.command.attempts"
REQUESTS = "framework.requests"
"""The store's API calls within a ``load`` or ``commit`` span."""

_override: list[TracerProvider | None] = []
_tracers: dict[int, tuple[TracerProvider, Tracer]] = {}
_propagator = TraceContextTextMapPropagator()
_requests: ContextVar[list[int] | None] = ContextVar("framework_traced_requests", default=None)


class TraceCarrier(Protocol):
    """Anything that carries a stored trace context: an ``Envelope``, a ``StoredEvent``."""

    @property
    def traceparent(self) -> str | None: ...

    @property
    def tracestate(self) -> str | None: ...


def _is_noop(provider: TracerProvider) -> bool:
    # Without an SDK the API hands out a proxy (no provider set yet) or a no-op provider.
    return isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


# ``trace.get_tracer_provider()`` looks at the environment on every call while no provider is
# set, which is most of a disabled check's cost: the global is read directly, unless the
# environment names a provider to load (then the public function loads it).
_FROM_ENVIRONMENT = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ or not hasattr(
    trace, "_TRACER_PROVIDER"
)


def _global_provider() -> TracerProvider | None:
    if _FROM_ENVIRONMENT:
        return trace.get_tracer_provider()
    provider: TracerProvider | None = trace._TRACER_PROVIDER
    return provider


def active_tracer() -> Tracer | None:
    """The framework's tracer, or ``None`` when no SDK provider is set (tracing is off)."""
    provider = _override[-1] if _override else _global_provider()
    if provider is None or _is_noop(provider):
        return None
    cached = _tracers.get(id(provider))
    if cached is None or cached[0] is not provider:
        cached = (provider, provider.get_tracer(TRACER_NAME))
        _tracers[id(provider)] = cached
    return cached[1]


@contextlib.contextmanager
def use_tracer_provider(provider: TracerProvider | None) -> Iterator[None]:
    """Within the block the framework's spans go to ``provider`` (``None``: tracing off).

    OpenTelemetry lets a process set its global provider once; tests and tools that want a
    provider of their own for a while use this instead. Not meant for concurrent blocks.
    """
    _override.append(provider)
    try:
        yield
    finally:
        _override.pop()


@contextlib.contextmanager
def span(
    name: str,
    attributes: Mapping[str, AttributeValue] | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    parent: Context | None = None,
    links: Sequence[Link] = (),
) -> Iterator[Span | None]:
    """A span of the framework's tracer, current within the block; ``None`` when tracing is off."""
    tracer = active_tracer()
    if tracer is None:
        yield None
        return
    with tracer.start_as_current_span(
        name, context=parent, kind=kind, attributes=attributes, links=links
    ) as started:
        yield started


def current_trace_context() -> tuple[str | None, str | None]:
    """The current span's ``traceparent`` and ``tracestate`` (``None`` when there is none).

    Stored on the events a command commits. Without an SDK there is no span of the
    framework's, but a context a caller attached (an HTTP request's ``traceparent``) is still
    passed on.
    """
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None, None
    traceparent = f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    state = context.trace_state.to_header() if context.trace_state else ""
    return traceparent, state or None


def stored_context(traceparent: str | None, tracestate: str | None) -> Context | None:
    """The OpenTelemetry context a stored ``traceparent`` names (``None`` if absent or invalid)."""
    if not traceparent:
        return None
    carrier = {"traceparent": traceparent}
    if tracestate:
        carrier["tracestate"] = tracestate
    context = _propagator.extract(carrier)
    if not trace.get_current_span(context).get_span_context().is_valid:
        return None
    return context


@contextlib.contextmanager
def continued_from(
    carrier: TraceCarrier,
    name: str,
    attributes: Mapping[str, AttributeValue] | None = None,
    *,
    link: bool = False,
) -> Iterator[Span | None]:
    """A span continuing the trace stored on ``carrier`` (an ``Envelope``, a stored event).

    Its parent is the stored context, so the span joins the trace of the request that committed
    the event; ``link=True`` starts a new trace linked to it instead (for work that outlives
    the request by far). Without a stored context the span is a child of the current one.
    ``None`` when tracing is off.
    """
    tracer = active_tracer()
    if tracer is None:
        yield None
        return
    stored = stored_context(carrier.traceparent, carrier.tracestate)
    parent: Context | None = stored
    links: tuple[Link, ...] = ()
    if stored is not None and link:
        parent = Context()  # a root: a trace of its own
        links = (Link(trace.get_current_span(stored).get_span_context()),)
    with tracer.start_as_current_span(
        name, context=parent, kind=SpanKind.CONSUMER, attributes=attributes, links=links
    ) as started:
        yield started


@contextlib.contextmanager
def counting_requests(traced: Span) -> Iterator[None]:
    """Count the store's API calls within the block into ``traced``'s ``framework.requests``."""
    counter = [0]
    token = _requests.set(counter)
    try:
        yield
    finally:
        _requests.reset(token)
        traced.set_attribute(REQUESTS, counter[0])


def count_request(**_: Any) -> None:
    """A botocore ``before-call`` hook: one more API call for the span counting them, if any."""
    counter = _requests.get()
    if counter is not None:
        counter[0] += 1


def annotate(describe: Callable[[], Mapping[str, AttributeValue]]) -> None:
    """Add ``describe()``'s attributes to the current span when it records (a store describing
    its commit); without one they are not even built, as on nearly every untraced commit."""
    current = trace.get_current_span()
    if current.is_recording():
        current.set_attributes(describe())


def publish_context(carriers: Sequence[TraceCarrier]) -> tuple[Context | None, tuple[Link, ...]]:
    """The parent and links of a span sending several events (one request for many).

    When every event that stored a context stored one of the same trace (a command's events),
    the span joins that trace, under the first one's context; otherwise it starts where it is and
    links to each distinct stored context.
    """
    stored: dict[tuple[int, int], tuple[Context, SpanContext]] = {}
    for carrier in carriers:
        context = stored_context(carrier.traceparent, carrier.tracestate)
        if context is not None:
            span_context = trace.get_current_span(context).get_span_context()
            stored.setdefault(
                (span_context.trace_id, span_context.span_id), (context, span_context)
            )
    if not stored:
        return None, ()
    if len({trace_id for trace_id, _ in stored}) == 1:
        return next(iter(stored.values()))[0], ()
    return None, tuple(Link(span_context) for _, span_context in stored.values())


@contextlib.contextmanager
def attached(traceparent: str | None, tracestate: str | None = None) -> Iterator[None]:
    """Within the block, a caller's trace context (an HTTP request's headers) is the current one.

    Spans started inside become its children and the events committed inside store it, with or
    without an SDK. A context that is already current (a server span of an HTTP
    instrumentation) is kept; an absent or malformed ``traceparent`` is ignored, as W3C Trace
    Context asks.
    """
    parent = stored_context(traceparent, tracestate)
    if parent is None or trace.get_current_span().get_span_context().is_valid:
        yield
        return
    token = otel_context.attach(parent)
    try:
        yield
    finally:
        otel_context.detach(token)

"""Recording spans in tests: the OpenTelemetry SDK's in-memory exporter, and span look-ups."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from framework.tracing import use_tracer_provider


@contextlib.contextmanager
def recording_spans() -> Iterator[InMemorySpanExporter]:
    """Within the block the framework's spans are recorded into the exporter yielded."""
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    with use_tracer_provider(provider):
        yield exported


def named(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    """The spans called ``name``, in the order they finished."""
    return [span for span in spans if span.name == name]


def trace_id(span: ReadableSpan) -> int:
    """The id of the trace ``span`` belongs to."""
    assert span.context is not None
    return int(span.context.trace_id)


def span_id(span: ReadableSpan) -> int:
    """``span``'s own id."""
    assert span.context is not None
    return int(span.context.span_id)

"""An AWS Lambda handler for the events table's DynamoDB Stream.

Configure the event source mapping with ``FunctionResponseTypes: [ReportBatchItemFailures]``
(see ``docs/deploying-on-aws.md`` and ``deploy/template.yaml``). The handler applies each stream's
records through the projection engine, so duplicates, reordering and gaps are handled as for every
other runner. When a stream cannot be applied (the store is unreachable, a record is corrupt), its
records are reported in ``batchItemFailures`` and Lambda retries from the first of them; other
streams in the batch still count as done. A handler that keeps failing on one event does not block
the shard: the event is parked after bounded retries and reported by ``python -m framework``.

``handler`` is ready for ``Handler: framework.projections.aws_lambda.handler``: it reads
``PROJECTORS`` (comma-separated ``module:Class``), ``UPCASTERS`` (comma-separated ``module:name``,
each an ``@upcaster`` function or a list of them: the ones the application is given, so that the
projectors read old events as it does) and the store settings from the environment, on its first
invocation. A projector's event class whose upcaster chain has a missing link fails then, not at
the first old event. Unless the function configured structlog itself, it logs JSON lines at INFO,
each carrying the ids of the event being applied.

``deadlines_handler`` (``Handler: framework.projections.aws_lambda.deadlines_handler``) is the
scheduled function that fires due deadlines: it builds the application with the factory
``APPLICATION`` names on the store of the settings, and runs a ``DeadlineRunner`` once per
invocation (an EventBridge schedule calls it every minute).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
import structlog

from framework.config import Settings
from framework.errors import DefinitionError
from framework.logs import configure_logging
from framework.mapping.upcasters import Upcaster, upcaster_step
from framework.projections.deadlines import DeadlineRunner
from framework.projections.dynamodb_deadlines import DynamoDBDeadlineStore
from framework.projections.engine import ProjectionEngine, group_by_stream
from framework.projections.process_managers import application_from_settings
from framework.projections.projector import Projector
from framework.store.base import EventStore
from framework.store.dynamodb.event_store import DynamoDBEventStore
from framework.store.dynamodb.positions import DynamoDBPositionStore
from framework.store.dynamodb.streams import record_to_event
from framework.store.opening import key_ring_for
from framework.store.positions import PositionStore
from framework.store.records import StoredEvent

__all__ = ["deadlines_handler", "handler", "load_projectors", "load_upcasters", "make_handler"]

log = structlog.get_logger(__name__)

LambdaHandler = Callable[[Mapping[str, Any], Any], dict[str, Any]]


def make_handler(
    projectors: Iterable[Projector],
    store: EventStore,
    positions: PositionStore,
    **engine_options: Any,
) -> LambdaHandler:
    """A Lambda handler applying DynamoDB Streams batches to ``projectors``.

    ``engine_options`` go to each ``ProjectionEngine``: ``mapper=app.mapper`` or the
    application's ``upcasters=[...]``, so that old events read as the application reads them.
    """
    engines = [ProjectionEngine(p, store, positions, **engine_options) for p in projectors]

    def handle_batch(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        sequence_of: dict[tuple[str, int], str] = {}
        failed: list[str] = []
        events: list[StoredEvent] = []
        for raw in event.get("Records", []):
            sequence = str(raw["dynamodb"]["SequenceNumber"])
            try:
                decoded = record_to_event(raw, binary_as_base64=True)
            except Exception as error:  # a corrupt record: let Lambda retry, then dead-letter it
                log.error("projection.record_undecodable", sequence=sequence, error=str(error))
                failed.append(sequence)
                continue
            if decoded is not None:
                sequence_of[(decoded.stream, decoded.version)] = sequence
                events.append(decoded)
        for records in group_by_stream(events).values():
            for engine in engines:
                try:
                    engine.apply_stream(records)
                except Exception as error:  # report, so Lambda delivers these records again
                    log.error(
                        "projection.stream_failed",
                        projector=engine.name,
                        stream=records[0].stream,
                        error_type=type(error).__name__,
                        error=str(error),
                    )
                    failed.extend(sequence_of[(r.stream, r.version)] for r in records)
                    break
        unique = sorted(set(failed), key=int)
        return {"batchItemFailures": [{"itemIdentifier": sequence} for sequence in unique]}

    return handle_batch


def load_projectors(spec: str) -> list[Projector]:
    """Instantiate projectors from ``module:Class,module:Class``."""
    projectors: list[Projector] = []
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        module_name, _, class_name = entry.partition(":")
        cls = getattr(importlib.import_module(module_name), class_name, None)
        if not (isinstance(cls, type) and issubclass(cls, Projector)):
            raise DefinitionError(f"{entry!r} does not name a Projector subclass")
        projectors.append(cls())
    if not projectors:
        raise DefinitionError("PROJECTORS names no projector (expected module:Class,...)")
    return projectors


def load_upcasters(spec: str) -> list[Upcaster]:
    """The upcasters named by ``module:name,module:name``: each an ``@upcaster`` function or an
    iterable of them (an application's list, say). An empty ``spec`` names none."""
    found: list[Upcaster] = []
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        module_name, _, attribute = entry.partition(":")
        value = (
            getattr(importlib.import_module(module_name), attribute, None) if attribute else None
        )
        functions = [value] if callable(value) else list(value or ())
        for function in functions:
            if not callable(function) or upcaster_step(function) is None:
                raise DefinitionError(
                    f"{entry!r} names something that is not an @upcaster function "
                    "(expected module:function or module:list_of_upcasters)"
                )
            found.append(function)
        if not functions:
            raise DefinitionError(f"{entry!r} names no upcaster")
    return found


_handler: LambdaHandler | None = None


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point, configured on first use from ``framework.config.Settings``
    (the function's environment: tables, payload bucket, KMS key) and ``PROJECTORS``."""
    global _handler
    if not structlog.is_configured():
        # The function is the application here, as the command line is: JSON lines for
        # CloudWatch, each carrying the ids of the event being applied (``log_context``).
        configure_logging("INFO", json=True)
    if _handler is None:
        settings = Settings.load(default_backend="dynamo")
        store = DynamoDBEventStore.from_settings(settings)
        projectors = load_projectors(os.environ.get("PROJECTORS", ""))
        upcasters = load_upcasters(os.environ.get("UPCASTERS", ""))
        keys = key_ring_for(settings, store)
        options: dict[str, Any] = {"upcasters": upcasters}
        if keys is not None:
            options["keys"] = keys
        _handler = make_handler(projectors, store, DynamoDBPositionStore(store), **options)
    return _handler(event, context)


_runner: DeadlineRunner | None = None


def deadlines_handler(event: Mapping[str, Any], context: Any) -> dict[str, int]:
    """The scheduled entry point: fire the deadlines due now, once; returns what it did.

    A deadline whose command fails for a reason a retry may cure is given back and fired by a
    later invocation; two invocations that overlap fire each deadline once (see
    ``framework.projections.deadlines``).
    """
    global _runner
    if _runner is None:
        application, store = application_from_settings()
        _runner = DeadlineRunner(application, DynamoDBDeadlineStore(store))
    counts: dict[str, int] = attrs.asdict(_runner.run_due())
    log.info("deadlines.run", **counts)
    return counts

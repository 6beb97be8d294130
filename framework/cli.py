"""``python -m framework``: tables, streams, projections and deadlines from the command line.

Every command reads the store settings (``framework.config.Settings``) from the environment
(``AWS_REGION``, ``DYNAMO_TABLE_PREFIX``, ``DYNAMO_ENDPOINT``, ``PAYLOAD_BUCKET``, ``KMS_KEY_ID``,
...) over the TOML file ``--config`` or ``FRAMEWORK_CONFIG`` names, unless ``--prefix`` /
``--endpoint`` say otherwise.
Errors are one line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from framework.config import CONFIG_FILE_ENV, Settings
from framework.errors import FrameworkError
from framework.logs import configure_logging
from framework.mapping.formats import decode_json
from framework.mapping.upcasters import Upcaster
from framework.projections import read_models
from framework.projections.aws_lambda import load_upcasters
from framework.projections.catch_up import DEFAULT_SAFETY_WINDOW, DEFAULT_WORKERS, CatchUpRunner
from framework.projections.deadlines import DeadlineRunner, DeadlineStatus
from framework.projections.dynamodb_deadlines import DynamoDBDeadlineStore
from framework.projections.engine import ProjectionEngine
from framework.projections.process_managers import APPLICATION_ENV, load_application
from framework.projections.projector import Projector
from framework.projections.publisher import EventBridgePublisher
from framework.projections.streams_poller import StreamsPoller
from framework.store.dynamodb.event_store import DynamoDBEventStore
from framework.store.dynamodb.positions import DynamoDBPositionStore
from framework.store.keys import split_stream, stream_key
from framework.store.opening import key_ring_for

F = TypeVar("F", bound=Callable[..., Any])

console = Console()


def _settings() -> Settings:
    """The settings of the environment (and of ``main``'s options), checked."""
    return Settings.load(default_backend="dynamo")


def _store() -> DynamoDBEventStore:
    """The store the settings describe: the CLI operates DynamoDB tables."""
    return DynamoDBEventStore.from_settings(_settings())


def _engine_options(store: DynamoDBEventStore) -> dict[str, Any]:
    """The key ring of the configured KMS key, for projectors that read personal fields."""
    keys = key_ring_for(_settings(), store)
    return {} if keys is None else {"keys": keys}


def _load_projector(spec: str) -> Projector:
    """Import ``module:Class`` and build it with no arguments (it reads the environment)."""
    module_name, _, class_name = spec.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as error:
        raise click.BadParameter(f"cannot import {spec!r}: {error}") from None
    if not (isinstance(cls, type) and issubclass(cls, Projector)):
        raise click.BadParameter(f"{spec!r} is not a Projector subclass")
    projector: Projector = cls()
    return projector


class _FrameworkGroup(click.Group):
    """Turns the framework's errors into one clear line and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FrameworkError as error:
            raise click.ClickException(f"{type(error).__name__}: {error}") from None


@click.group(cls=_FrameworkGroup)
@click.option("--prefix", help="table prefix (default: $DYNAMO_TABLE_PREFIX or 'framework')")
@click.option("--endpoint", help="DynamoDB endpoint URL (default: $DYNAMO_ENDPOINT or AWS)")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="TOML settings file with a [storage] table (default: $FRAMEWORK_CONFIG)",
)
@click.option("-v", "--verbose", is_flag=True, help="show the framework's logs on stderr")
def main(prefix: str | None, endpoint: str | None, config_file: str | None, verbose: bool) -> None:
    """Operate an event store on DynamoDB and the projections built from it."""
    configure_logging("INFO" if verbose else "WARNING")
    if config_file:
        os.environ[CONFIG_FILE_ENV] = config_file
    # The options override the environment, so that projectors built from it (as on Lambda)
    # see the same tables as the command.
    if prefix:
        os.environ["DYNAMO_TABLE_PREFIX"] = prefix
    if endpoint:
        os.environ["DYNAMO_ENDPOINT"] = endpoint


_UPCASTERS_OPTION = click.option(
    "--upcasters",
    "upcaster_specs",
    metavar="MODULE:NAME[,MODULE:NAME]",
    envvar="UPCASTERS",
    default="",
    help="the application's upcasters (an @upcaster function or a list of them), so that old "
    "events read as the application reads them (default: $UPCASTERS)",
)


def _upcasters(specs: str) -> list[Upcaster]:
    """The upcasters ``--upcasters`` (or ``UPCASTERS``) names."""
    try:
        return load_upcasters(specs)
    except (ImportError, ValueError) as error:
        raise click.BadParameter(f"cannot import {specs!r}: {error}") from None


# -- tables --------------------------------------------------------------------------------


@main.group()
def tables() -> None:
    """Create, inspect or delete the event store's tables and the projectors' read models."""


_PROJECTOR_OPTION = click.option(
    "--projector",
    "projector_specs",
    metavar="MODULE:PROJECTOR",
    multiple=True,
    help="a projector whose read-model tables to manage too (repeatable; default: $PROJECTORS)",
)


def _projectors(specs: Sequence[str]) -> list[Projector]:
    """The projectors named on the command line, else in ``PROJECTORS`` (as on Lambda)."""
    if not specs:
        specs = [part.strip() for part in os.environ.get("PROJECTORS", "").split(",")]
    return [_load_projector(spec) for spec in specs if spec]


@tables.command("create")
@_PROJECTOR_OPTION
def tables_create(projector_specs: Sequence[str]) -> None:
    """Create the tables that are missing (read models too) and wait until they are active."""
    store = _store()
    store.create_tables()
    DynamoDBDeadlineStore(store).create_table()
    created = read_models.create_tables(
        store, read_models.declared_models(_projectors(projector_specs))
    )
    console.print(f"tables {store.tables.prefix}-* are active")
    for name in created:
        console.print(f"read model {name} is active")


@tables.command("status")
@_PROJECTOR_OPTION
def tables_status(projector_specs: Sequence[str]) -> None:
    """Show each table's status, the read models' too."""
    store = _store()
    statuses = store.table_status()
    deadlines = DynamoDBDeadlineStore(store)
    statuses[deadlines.table] = deadlines.table_status()
    models = read_models.declared_models(_projectors(projector_specs))
    statuses.update(read_models.table_status(store, models))
    for name in read_models.existing_tables(store):
        statuses.setdefault(name, "ACTIVE (no projector loaded declares it)")
    table = Table("table", "status")
    for name, status in statuses.items():
        table.add_row(name, status or "missing")
    console.print(table)


@tables.command("delete")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
def tables_delete(yes: bool) -> None:
    """Delete the tables, every read-model table of the prefix, and everything in them."""
    store = _store()
    if not yes:
        click.confirm(
            f"Delete every {store.tables.prefix}-* table (read models too) and all its data?",
            abort=True,
        )
    doomed = read_models.existing_tables(store)
    read_models.delete_tables(store, doomed)
    DynamoDBDeadlineStore(store).delete_table()
    store.delete_tables()
    console.print(f"tables {store.tables.prefix}-* deleted ({len(doomed)} read models)")


# -- events --------------------------------------------------------------------------------


@main.group()
def events() -> None:
    """Read event streams."""


@events.command("show")
@click.argument("aggregate_type")
@click.argument("aggregate_id")
@click.option("--after", type=int, default=0, help="only versions above this one")
def events_show(aggregate_type: str, aggregate_id: str, after: int) -> None:
    """Print the stream of one aggregate, oldest first."""
    records = _store().load_events(aggregate_type, aggregate_id, after)
    if not records:
        stream = stream_key(aggregate_type, aggregate_id)
        raise click.ClickException(f"no events in stream {stream}")
    table = Table("version", "event", "schema", "occurred at", "payload", "command")
    for record in records:
        payload = json.dumps(decode_json(record.payload), ensure_ascii=False)
        table.add_row(
            str(record.version),
            record.event_type,
            str(record.schema),
            f"{record.occurred_at:%Y-%m-%d %H:%M:%S}",
            payload,
            record.command_id,
        )
    console.print(table)


# -- projections ---------------------------------------------------------------------------


@main.group()
def projections() -> None:
    """Inspect, replay, retry or skip projections."""


@projections.command("status")
@click.argument("projectors", nargs=-1, metavar="[MODULE:PROJECTOR]...")
def projections_status(projectors: Sequence[str]) -> None:
    """Streams followed, lag and parked events of each projector (all parked events if none)."""
    store = _store()
    positions = DynamoDBPositionStore(store)
    if projectors:
        table = Table("projector", "streams", "events behind", "parked")
        for spec in projectors:
            projector = _load_projector(spec)
            name = projector.projector_name()
            known = positions.positions(name)
            behind = _lag(store, projector, {p.stream: p.version for p in known})
            parked = sum(1 for p in known if p.parked is not None)
            table.add_row(name, str(len(known)), str(behind), str(parked))
        console.print(table)
    parked_table = Table("projector", "stream", "waits at", "attempts", "error", "since")
    parked_positions = positions.parked()
    for position in parked_positions:
        assert position.parked is not None
        parked_table.add_row(
            position.projector,
            position.stream,
            str(position.parked.version),
            str(position.parked.attempts),
            position.parked.error,
            f"{position.parked.parked_at:%Y-%m-%d %H:%M:%S}",
        )
    if parked_positions:
        console.print(parked_table)
    else:
        console.print("no parked events")


def _lag(store: DynamoDBEventStore, projector: Projector, known: dict[str, int]) -> int:
    """Events committed but not yet applied by ``projector``, from the aggregates table."""
    behind = 0
    request: dict[str, Any] = {
        "TableName": store.tables.aggregates,
        "FilterExpression": "attribute_exists(aggregate_type)",
        "ProjectionExpression": "pk, version, aggregate_type",
    }
    while True:
        page = store.client.scan(**request)
        for item in page.get("Items", []):
            if projector.follows(item["aggregate_type"]["S"]):
                behind += max(0, int(item["version"]["N"]) - known.get(item["pk"]["S"], 0))
        if "LastEvaluatedKey" not in page:
            return behind
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@projections.command("replay")
@click.argument("projector_spec", metavar="MODULE:PROJECTOR")
@click.option("--rebuild", is_flag=True, help="forget positions and clear the read model first")
@click.option(
    "--safety-window",
    type=float,
    default=DEFAULT_SAFETY_WINDOW.total_seconds(),
    show_default=True,
    help="seconds short of now to stop at (the feed index is eventually consistent)",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=DEFAULT_WORKERS,
    show_default=True,
    help="feed shards replayed side by side",
)
@_UPCASTERS_OPTION
def projections_replay(
    projector_spec: str, rebuild: bool, safety_window: float, workers: int, upcaster_specs: str
) -> None:
    """Bring a projector up to date over the feed index (or rebuild it from scratch).

    Each feed shard checkpoints as it goes: after an interruption, `replay` (without
    --rebuild) resumes where each shard got to.
    """
    store = _store()
    projector = _load_projector(projector_spec)
    runner = CatchUpRunner(
        store,
        DynamoDBPositionStore(store),
        [projector],
        safety_window=dt.timedelta(seconds=safety_window),
        progress=sys.stderr.isatty(),
        workers=workers,
        upcasters=_upcasters(upcaster_specs),
        **_engine_options(store),
    )
    report = runner.rebuild() if rebuild else runner.run()
    console.print(
        f"{projector.projector_name()}: {report.applied} applied, {report.skipped} already "
        f"applied, {len(report.parked)} parked"
    )
    _exit_if_parked(report.parked)


EXIT_PARKED = 3
"""The exit code of a replay or retry that left events parked: the read model is incomplete."""


def _exit_if_parked(parked: list[str]) -> None:
    """Name what is parked on stderr and exit with ``EXIT_PARKED``, so scripts cannot miss it."""
    if not parked:
        return
    for entry in parked:
        click.echo(f"parked: {entry}", err=True)
    click.echo("see `python -m framework projections status`; retry or skip each stream", err=True)
    sys.exit(EXIT_PARKED)


@projections.command("follow")
@click.argument("projector_specs", metavar="MODULE:PROJECTOR...", nargs=-1, required=True)
@click.option(
    "--interval", type=float, default=1.0, show_default=True, help="seconds between idle polls"
)
@_UPCASTERS_OPTION
def projections_follow(
    projector_specs: Sequence[str], interval: float, upcaster_specs: str
) -> None:
    """Follow the events table's stream and apply new events live, until interrupted.

    A second `follow` of the same projectors stands by and takes over when this one stops.
    """
    store = _store()
    projectors = [_load_projector(spec) for spec in projector_specs]
    poller = StreamsPoller(
        store,
        DynamoDBPositionStore(store),
        projectors,
        upcasters=_upcasters(upcaster_specs),
        **_engine_options(store),
    )
    names = ", ".join(projector.projector_name() for projector in projectors)
    _until_stopped(
        f"following the events stream for {names}", lambda stop: poller.run(stop, interval=interval)
    )


@projections.command("retry")
@click.argument("projector_spec", metavar="MODULE:PROJECTOR")
@click.argument("stream")
@_UPCASTERS_OPTION
def projections_retry(projector_spec: str, stream: str, upcaster_specs: str) -> None:
    """Retry the parked event of STREAM (Type#id) and apply what waited behind it."""
    _release(projector_spec, stream, upcaster_specs, skip=False)


@projections.command("skip")
@click.argument("projector_spec", metavar="MODULE:PROJECTOR")
@click.argument("stream")
@_UPCASTERS_OPTION
def projections_skip(projector_spec: str, stream: str, upcaster_specs: str) -> None:
    """Step over the parked event of STREAM for good, then apply what waited behind it."""
    _release(projector_spec, stream, upcaster_specs, skip=True)


def _release(projector_spec: str, stream: str, upcaster_specs: str, *, skip: bool) -> None:
    store = _store()
    projector = _load_projector(projector_spec)
    upcasters = _upcasters(upcaster_specs)
    positions = DynamoDBPositionStore(store)
    name = projector.projector_name()
    position = positions.get(name, stream)
    if position.parked is None:
        raise click.ClickException(f"{name} has no parked event in {stream}")
    try:
        aggregate_type, aggregate_id = split_stream(stream)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    positions.release(name, stream, skip=skip)
    engine = ProjectionEngine(
        projector, store, positions, upcasters=upcasters, **_engine_options(store)
    )
    report = engine.catch_up_stream(aggregate_type, aggregate_id)
    verb = "skipped" if skip else "retried"
    outcome = f"parked again at {report.parked[0]}" if report.parked else "caught up"
    console.print(
        f"{name} {verb} {stream}@{position.parked.version}: {report.applied} applied, {outcome}"
    )
    _exit_if_parked(report.parked)


# -- publishing to EventBridge ---------------------------------------------------------------


def _load_publisher(spec: str) -> EventBridgePublisher:
    """Import ``module:Class``, an ``EventBridgePublisher``, and build it from the environment."""
    projector = _load_projector(spec)
    if not isinstance(projector, EventBridgePublisher):
        raise click.BadParameter(f"{spec!r} is not an EventBridgePublisher subclass")
    return projector


def _moment(value: str | None) -> dt.datetime | None:
    """An ISO 8601 time from the command line (UTC when it names no zone)."""
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time (2026-01-31T12:00)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@main.group()
def publish() -> None:
    """Replay the feed to an EventBridge bus; list and re-send the publisher's dead letters."""


@publish.command("replay")
@click.argument("publisher_spec", metavar="MODULE:PUBLISHER")
@click.option("--since", default=None, help="from this time (ISO 8601; default: the start)")
@click.option("--until", default=None, help="up to this time, excluded (default: now)")
@click.option("--stream", default=None, metavar="TYPE#ID", help="only this stream")
@_UPCASTERS_OPTION
def publish_replay(
    publisher_spec: str,
    since: str | None,
    until: str | None,
    stream: str | None,
    upcaster_specs: str,
) -> None:
    """Send a range of the feed to the bus again, with the same event ids.

    Positions are neither read nor moved: the publisher's live runners are not disturbed.
    """
    store = _store()
    publisher = _load_publisher(publisher_spec)
    which = None
    if stream is not None:
        try:
            which = split_stream(stream)
        except ValueError:
            raise click.BadParameter(f"{stream!r} is not TYPE#ID") from None
    report = publisher.republish(
        store,
        since=_moment(since),
        until=_moment(until),
        stream=which,
        upcasters=_upcasters(upcaster_specs),
    )
    console.print(
        f"{publisher.projector_name()}: {report.published} published, "
        f"{report.dead_lettered} dead-lettered, {report.requests} requests"
    )


@publish.group("dlq")
def publish_dlq() -> None:
    """The publisher's dead-letter queue (``PUBLISH_DLQ_URL``)."""


@publish_dlq.command("list")
@click.argument("publisher_spec", metavar="MODULE:PUBLISHER")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="one JSON document per line")
def publish_dlq_list(publisher_spec: str, limit: int, as_json: bool) -> None:
    """Show the dead-lettered entries (left in the queue): what, where and why."""
    publisher = _load_publisher(publisher_spec)
    letters = publisher.dead_letter_list(limit)
    if as_json:
        for letter in letters:
            click.echo(json.dumps(letter, sort_keys=True))
        return
    table = Table("stream", "version", "event", "error", "attempts", "dead-lettered at")
    for letter in letters:
        table.add_row(
            str(letter.get("stream")),
            str(letter.get("version")),
            str(letter.get("eventType")),
            f"{letter.get('errorCode')}: {letter.get('errorMessage')}",
            str(letter.get("attempts")),
            str(letter.get("deadLetteredAt")),
        )
    console.print(table)
    console.print(f"{len(letters)} dead-lettered entries")


@publish_dlq.command("resend")
@click.argument("publisher_spec", metavar="MODULE:PUBLISHER")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@_UPCASTERS_OPTION
def publish_dlq_resend(publisher_spec: str, limit: int, upcaster_specs: str) -> None:
    """Publish the dead-lettered events again, built anew from the store, and delete them.

    An entry refused again goes back to the queue with its new attempts.
    """
    store = _store()
    publisher = _load_publisher(publisher_spec)
    report = publisher.resend_dead_letters(store, limit, _upcasters(upcaster_specs))
    console.print(
        f"{publisher.projector_name()}: {report.published} re-sent, "
        f"{report.dead_lettered} dead-lettered again"
    )


def _until_stopped(doing: str, run: Callable[[threading.Event], None]) -> None:
    """Say what runs, run it until Ctrl-C or SIGTERM sets its stop event, say it stopped."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    click.echo(f"{doing} (Ctrl-C to stop)", err=True)
    run(stop)
    click.echo("stopped", err=True)


# -- deadlines -----------------------------------------------------------------------------


@main.group()
def deadlines() -> None:
    """The deadlines process managers scheduled: list them, fire those that are due."""


@deadlines.command("list")
@click.option(
    "--status",
    type=click.Choice([status.value for status in DeadlineStatus]),
    default=None,
    help="only deadlines in this state (default: all)",
)
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="one JSON document per line")
def deadlines_list(status: str | None, limit: int, as_json: bool) -> None:
    """Show deadlines, earliest due first: which process, when, what command, what came of it."""
    found = DynamoDBDeadlineStore(_store()).list(
        None if status is None else DeadlineStatus(status), limit
    )
    if as_json:
        for deadline in found:
            click.echo(
                json.dumps(
                    {
                        "deadlineId": deadline.deadline_id,
                        "process": deadline.process,
                        "dueAt": deadline.due_at.isoformat(),
                        "status": deadline.status.value,
                        "commandType": deadline.command_type,
                        "attempts": deadline.attempts,
                        "lastError": deadline.last_error,
                    },
                    sort_keys=True,
                )
            )
        return
    table = Table("deadline", "process", "due at", "status", "command", "attempts", "last error")
    for deadline in found:
        table.add_row(
            deadline.deadline_id,
            deadline.process,
            f"{deadline.due_at:%Y-%m-%d %H:%M:%S}",
            deadline.status.value,
            deadline.command_type,
            str(deadline.attempts),
            deadline.last_error or "",
        )
    console.print(table)
    console.print(f"{len(found)} deadlines")


@deadlines.command("run")
@click.option(
    "--application",
    "application_spec",
    metavar="MODULE:FACTORY",
    envvar=APPLICATION_ENV,
    required=True,
    help="the function that builds the application on the event store (default: $APPLICATION)",
)
@click.option("--loop", is_flag=True, help="keep firing what falls due until interrupted")
@click.option(
    "--interval", type=float, default=5.0, show_default=True, help="seconds between runs (--loop)"
)
@click.option(
    "--now",
    "now_text",
    default=None,
    help="fire what is due at this time (ISO 8601; default: now; not with --loop)",
)
def deadlines_run(application_spec: str, loop: bool, interval: float, now_text: str | None) -> None:
    """Fire the deadlines that are due, once (default) or in a loop.

    Several runners may run side by side: each deadline is claimed by one, and fires once.
    """
    store = _store()
    runner = DeadlineRunner(load_application(application_spec, store), DynamoDBDeadlineStore(store))
    if loop:
        if now_text is not None:
            raise click.BadParameter("--now fires once: leave out --loop")
        _until_stopped(
            "firing deadlines as they fall due", lambda stop: runner.run(stop, interval=interval)
        )
        return
    report = runner.run_due(_moment(now_text))
    console.print(
        f"{report.fired} fired, {report.refused} refused, {report.failed} failed "
        f"(to be retried), {report.lost} taken by another runner"
    )


# -- IAM -----------------------------------------------------------------------------------


def _arn(name_or_arn: str, prefix: str) -> str:
    """An ARN as given, or built from ``prefix`` and a bare name (a key id, a bus, a queue)."""
    return name_or_arn if name_or_arn.startswith("arn:") else f"{prefix}{name_or_arn}"


def iam_policy_document(
    prefix: str,
    region: str,
    account: str,
    bucket: str | None = None,
    kms_key: str | None = None,
    event_bus: str | None = None,
    publish_dlq: str | None = None,
    publish_payload_bucket: str | None = None,
) -> dict[str, Any]:
    """The least-privilege policy of an application using the tables of ``prefix``.

    With ``event_bus`` and ``publish_dlq`` (names), the EventBridge publisher's: ``PutEvents``
    on the bus, and on its dead-letter queue what dead-lettering, ``publish dlq list`` and
    ``resend`` use; with ``publish_payload_bucket``, writing the payloads of entries over
    256 KB under ``published/`` (their claim checks).
    """
    table = f"arn:aws:dynamodb:{region}:{account}:table/{prefix}"
    document: dict[str, Any] = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "EventStoreItems",
                "Effect": "Allow",
                "Action": [
                    "dynamodb:GetItem",
                    "dynamodb:BatchGetItem",
                    "dynamodb:Query",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:DeleteItem",
                    "dynamodb:ConditionCheckItem",
                    "dynamodb:DescribeTable",
                ],
                "Resource": [
                    f"{table}-aggregates",
                    f"{table}-events",
                    f"{table}-events/index/feed",
                    f"{table}-snapshots",
                    f"{table}-positions",
                    f"{table}-deadlines",
                    f"{table}-deadlines/index/due",
                ],
            },
            {
                "Sid": "ProjectionStatusAndParkedEvents",
                "Effect": "Allow",
                "Action": ["dynamodb:Scan"],
                "Resource": [f"{table}-positions", f"{table}-aggregates", f"{table}-deadlines"],
            },
            {
                "Sid": "EventsStream",
                "Effect": "Allow",
                "Action": [
                    "dynamodb:DescribeStream",
                    "dynamodb:GetRecords",
                    "dynamodb:GetShardIterator",
                    "dynamodb:ListStreams",
                ],
                "Resource": [f"{table}-events/stream/*"],
            },
        ],
    }
    optional = [
        (
            bucket and f"arn:aws:s3:::{bucket}/events/*",
            "OffloadedPayloads",
            ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
        ),
        (
            kms_key and _arn(kms_key, f"arn:aws:kms:{region}:{account}:key/"),
            "PersonalDataKeys",
            ["kms:GenerateDataKey", "kms:Decrypt"],
        ),
        (
            event_bus and _arn(event_bus, f"arn:aws:events:{region}:{account}:event-bus/"),
            "PublishToTheBus",
            ["events:PutEvents"],
        ),
        (
            publish_dlq and _arn(publish_dlq, f"arn:aws:sqs:{region}:{account}:"),
            "PublisherDeadLetters",
            [
                "sqs:SendMessage",
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
            ],
        ),
        (
            publish_payload_bucket and f"arn:aws:s3:::{publish_payload_bucket}/published/*",
            "PublishedPayloads",
            ["s3:PutObject"],
        ),
    ]
    for resource, sid, actions in optional:
        if resource:
            document["Statement"].append(
                {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": [resource]}
            )
    return document


@main.command("iam-policy")
@click.option("--account", default="*", show_default=True, help="AWS account id")
@click.option("--region", default=None, help="AWS region (default: the configured one)")
@click.option(
    "--bucket", default=None, help="S3 bucket of large payloads (default: the configured one)"
)
@click.option(
    "--kms-key", default=None, help="KMS key wrapping personal-data keys (default: the configured)"
)
@click.option(
    "--event-bus", default=None, help="EventBridge bus published to (default: the configured one)"
)
@click.option(
    "--publish-dlq",
    default=None,
    help="the publisher's dead-letter queue, name or ARN (default: the configured one)",
)
@click.option(
    "--publish-payload-bucket",
    default=None,
    help="where the publisher leaves entries over 256 KB (default: the configured one)",
)
def iam_policy(
    account: str,
    region: str | None,
    bucket: str | None,
    kms_key: str | None,
    event_bus: str | None,
    publish_dlq: str | None,
    publish_payload_bucket: str | None,
) -> None:
    """Print the least-privilege IAM policy for the configured tables, as JSON.

    TransactWriteItems has no IAM action of its own: each item is authorised by PutItem,
    UpdateItem, DeleteItem or ConditionCheckItem on its table. Creating and deleting tables is
    left to a deployment role.
    """
    settings = _settings()
    document = iam_policy_document(
        settings.table_prefix,
        region or settings.region,
        account,
        bucket or settings.payload_bucket,
        kms_key or settings.kms_key_id,
        event_bus or settings.event_bus,
        publish_dlq or _queue_arn(settings.publish_dlq_url),
        publish_payload_bucket or settings.publish_payload_bucket,
    )
    click.echo(json.dumps(document, indent=2))


def _queue_arn(url: str | None) -> str | None:
    """The ARN of the queue at an SQS URL (``https://sqs.REGION.amazonaws.com/ACCOUNT/NAME``).

    A URL of another shape (a local endpoint) gives its last part, a name in this account.
    """
    if not url:
        return None
    match = re.fullmatch(r"https://sqs\.([a-z0-9-]+)\.amazonaws\.com/(\d+)/([^/]+)/?", url)
    if match is None:
        return url.rstrip("/").rsplit("/", 1)[-1]
    region, account, name = match.groups()
    return f"arn:aws:sqs:{region}:{account}:{name}"


def run() -> None:
    """Entry point of ``python -m framework``."""
    main(prog_name="python -m framework")

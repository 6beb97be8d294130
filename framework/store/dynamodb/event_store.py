"""The DynamoDB event store: boto3's low-level client, one ``TransactWriteItems`` per change set.

The commit sends the writes laid out by ``items.plan_transaction`` with their condition expressions
(optimistic concurrency, unique claims, command idempotency) and a ``ClientRequestToken`` equal to
the change set id, so that botocore's own retries of a request whose answer was lost cannot apply
it twice. A cancelled transaction is explained from ``CancellationReasons``.
"""

from __future__ import annotations

import base64
import datetime as dt
import heapq
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import boto3
import structlog
from botocore import exceptions as botocore_errors
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from framework.config import Settings
from framework.errors import (
    ChangeSetTooLarge,
    ConfigurationError,
    EventStoreError,
    StoreUnavailable,
    TableMissing,
    Throttled,
    TransactionConflict,
)
from framework.store.conditions import merged
from framework.store.dynamodb import tables as provisioning
from framework.store.dynamodb.feed_hours import FeedHours
from framework.store.dynamodb.tables import FEED_INDEX, TableNames
from framework.store.items import (
    Item,
    PlannedWrite,
    TransactionPlan,
    WriteKind,
    explain_cancellation,
    item_to_command,
    item_to_event,
    item_to_snapshot,
    item_to_stream_event,
    plan_transaction,
)
from framework.store.keys import (
    FEED_SHARDS,
    checked_stream_key,
    command_key,
    feed_hour,
    feed_lanes,
    feed_partitions,
)
from framework.store.large_payloads import (
    PayloadStore,
    S3PayloadStore,
    forget_uploads,
    offload,
    resolve,
)
from framework.store.records import (
    ChangeSet,
    ProcessedCommand,
    Snapshot,
    StoredEvent,
    StreamEvent,
)
from framework.tracing import annotate, count_request

log = structlog.get_logger(__name__)

DEFAULT_TABLE_PREFIX = "framework"
FEED_PAGE_SIZE = 1000
"""Items per page when reading the feed index."""
FEED_PROJECTION = (
    "pk, sk, event_type, #schema, payload, occurred_at, change_set_id, command_id, "
    "correlation_id, causation_id, traceparent, tracestate, feed_sk"
)
"""What a feed reader needs of an event item: botocore parses every attribute of every item it
receives, which is most of a replay's time, so the feed is read without what no reader uses."""
STREAM_PROJECTION = (
    "sk, event_type, #schema, payload, occurred_at, change_set_id, command_id, "
    "correlation_id, causation_id, traceparent, tracestate"
)
"""What a stored event record needs of an event item read from its own stream: the partition
key is the stream's (known), and the feed keys are the index's business."""
HISTORY_PROJECTION = "sk, event_type, #schema, payload"
"""What ``item_to_stream_event`` reads: loading an aggregate asks for nothing more."""
DEFAULT_REGION = "us-east-1"

_THROTTLING_CODES = frozenset(
    {"ThrottlingException", "ProvisionedThroughputExceededException", "RequestLimitExceeded"}
)
_TRANSPORT_ERRORS = (
    EndpointConnectionError,
    ConnectionClosedError,
    ReadTimeoutError,
    ConnectTimeoutError,
)
_REASON_CODES = re.compile(r"\[([A-Za-z, ]+)\]")


def default_client_config() -> Config:
    """botocore settings for the store: bounded standard retries and finite timeouts."""
    return Config(
        retries={"max_attempts": 6, "mode": "standard"},
        connect_timeout=3,
        read_timeout=10,
        tcp_keepalive=True,
        max_pool_connections=32,
    )


class DynamoDBEventStore:
    """An event store on four DynamoDB tables named ``{table_prefix}-...``.

    Pass a ready boto3 DynamoDB client, or let the store make one (lazily, on first use) from
    ``endpoint_url``, ``region_name`` and ``client_config`` (default: ``default_client_config()``).
    With an ``endpoint_url`` (DynamoDB Local) and no credentials in the environment, dummy
    credentials are used.
    """

    def __init__(
        self,
        client: Any | None = None,
        *,
        table_prefix: str = DEFAULT_TABLE_PREFIX,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        command_retention: dt.timedelta = dt.timedelta(days=7),
        client_config: Config | None = None,
        large_payloads: PayloadStore | None = None,
        feed_shards: int = FEED_SHARDS,
    ) -> None:
        if not isinstance(feed_shards, int) or isinstance(feed_shards, bool) or feed_shards < 1:
            raise ConfigurationError(
                f"feed_shards must be a whole number of at least 1, got {feed_shards!r}"
            )
        self.tables = TableNames(table_prefix)
        self.feed_shards = feed_shards
        self._feed_hours: FeedHours | None = None
        self.large_payloads = large_payloads
        self.client_config = client_config or default_client_config()
        self.endpoint_url = endpoint_url
        self.region_name = region_name or DEFAULT_REGION
        self.command_retention = command_retention
        self._client = client
        self._client_given = client is not None

    def attach_client(self, client: Any) -> None:
        """Send every request of this store, the feed's included, through ``client`` from now on.

        For a client that has the same methods as boto3's but is made elsewhere: the async face
        (``framework.aio.open_async_store``) attaches one whose calls are awaited on an event
        loop. Refused once the store has a client: requests already sent went through that one.
        """
        if self._client is not None:
            raise ConfigurationError("this store already has a client: attach one before use")
        self._client = client
        self._client_given = True

    def unopened_copy(self) -> DynamoDBEventStore:
        """A store on the same tables, endpoint, region and settings that has no client yet.

        For a second face of one deployment: ``framework.aio.open_async_store`` needs a store
        not used yet, while threads keep using this one. Refused (``ConfigurationError``) for a
        store built with a client of its own: that client's endpoint and credentials are not
        the store's to copy.
        """
        if self._client_given:
            raise ConfigurationError(
                "this store was given its own client: its settings cannot be copied"
            )
        return type(self)(
            table_prefix=self.tables.prefix,
            endpoint_url=self.endpoint_url,
            region_name=self.region_name,
            command_retention=self.command_retention,
            client_config=self.client_config,
            large_payloads=self.large_payloads,
            feed_shards=self.feed_shards,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DynamoDBEventStore:
        """The store the environment describes, over the TOML file ``FRAMEWORK_CONFIG`` names
        (see ``framework.config.Settings.load``): ``AWS_REGION``, ``DYNAMO_TABLE_PREFIX``,
        ``DYNAMO_ENDPOINT``, ``DYNAMO_FEED_SHARDS``, ``PAYLOAD_BUCKET``.

        Raises ``ConfigurationError`` naming the first wrong setting, before anything is
        contacted.
        """
        return cls.from_settings(Settings.load(environ=environ, default_backend="dynamo"))

    @classmethod
    def from_settings(cls, settings: Settings) -> DynamoDBEventStore:
        """The DynamoDB store of ``settings`` (its backend must be ``dynamo``), with the S3
        bucket for large payloads when one is configured."""
        if settings.backend != "dynamo":
            raise ConfigurationError(
                f"{settings.source_of('backend')}={settings.backend!r}: "
                "this needs the dynamo backend"
            )
        payloads = None
        if settings.payload_bucket is not None:
            payloads = S3PayloadStore(settings.payload_bucket, region_name=settings.region)
        return cls(
            table_prefix=settings.table_prefix,
            endpoint_url=settings.endpoint,
            region_name=settings.region,
            feed_shards=settings.feed_shards,
            large_payloads=payloads,
        )

    @property
    def feed_hours(self) -> FeedHours:
        """The markers of the hours the feed holds events in (see ``feed_hours``)."""
        if self._feed_hours is None:
            self._feed_hours = FeedHours(self.client, self.tables.aggregates, self.feed_shards)
        return self._feed_hours

    @property
    def client(self) -> Any:
        """The boto3 low-level DynamoDB client (created on first use).

        A client the store made has the items of its ``Query`` answers decoded straight from the
        JSON (``fast_query_items``), the same values botocore's parser gives at a fraction of its
        cost: loading a stream is mostly that parsing otherwise. A client handed to the store is
        used as it is.
        """
        if self._client is None:
            self._client = lean_client(self.make_client("dynamodb"))
        return self._client

    def make_client(self, service: Literal["dynamodb", "dynamodbstreams"]) -> Any:
        """A boto3 client for ``service`` on this store's endpoint, region and credentials."""
        return boto3.session.Session().client(service, **self.client_options())

    def client_options(self) -> dict[str, Any]:
        """The keyword arguments a botocore session's ``client`` (or aiobotocore's
        ``create_client``) takes for this store: region, endpoint, settings, and dummy
        credentials for a local endpoint when the environment names none."""
        options: dict[str, Any] = {
            "region_name": self.region_name,
            "config": self.client_config,
        }
        if self.endpoint_url:
            options["endpoint_url"] = self.endpoint_url
            if not os.environ.get("AWS_ACCESS_KEY_ID") and not os.environ.get("AWS_PROFILE"):
                options["aws_access_key_id"] = "local"
                options["aws_secret_access_key"] = "local"
        return options

    # -- provisioning ------------------------------------------------------------------------

    def create_tables(self) -> None:
        """Create the four tables if missing (Streams and the feed index on) and wait for them."""
        with translated_errors(None):
            provisioning.create_tables(self.client, self.tables)

    def delete_tables(self) -> None:
        """Delete the four tables and everything in them."""
        with translated_errors(None):
            provisioning.delete_tables(self.client, self.tables)

    def table_status(self) -> dict[str, str | None]:
        """Each table's status, ``None`` for a missing one."""
        with translated_errors(None):
            return {
                name: provisioning.describe_table_status(self.client, name)
                for name in self.tables.all()
            }

    # -- writing -----------------------------------------------------------------------------

    def commit(self, change_set: ChangeSet) -> None:
        """Send the change set as one ``TransactWriteItems``; see ``EventStore.commit``."""
        change_set, uploaded = offload(change_set, self.large_payloads)
        try:
            self._send(change_set)
        except StoreUnavailable:
            raise  # the outcome is unknown: the uploads may be referenced, keep them
        except BaseException:
            forget_uploads(self.large_payloads, uploaded)
            raise

    def _send(self, change_set: ChangeSet) -> None:
        plan = plan_transaction(
            change_set,
            self.tables,
            command_retention=self.command_retention,
            feed_shards=self.feed_shards,
        )
        hours = {feed_hour(e.occurred_at) for c in change_set.aggregates for e in c.events}
        if hours:
            with translated_errors(self.tables.aggregates):
                self.feed_hours.mark(hours)  # before the events: never an unmarked hour
        request = {
            "TransactItems": [_transact_item(write) for write in plan.writes],
            "ClientRequestToken": change_set.change_set_id,
        }
        annotate(
            lambda: {
                "db.system": "dynamodb",
                "db.operation": "TransactWriteItems",
                "aws.dynamodb.table_names": sorted({write.table for write in plan.writes}),
                "framework.commit.items": len(plan.writes),
            }
        )
        try:
            with translated_errors(None):
                self.client.transact_write_items(**request)
        except TransactionCancelled as cancelled:
            raise explain_cancellation(plan, cancelled.reasons) from None
        except TableMissing:
            raise self._which_table_is_missing(plan) from None

    def _which_table_is_missing(self, plan: TransactionPlan) -> TableMissing:
        for name in sorted({write.table for write in plan.writes}):
            if provisioning.describe_table_status(self.client, name) is None:
                return TableMissing(name)
        return TableMissing(", ".join(sorted({write.table for write in plan.writes})))

    # -- reading -----------------------------------------------------------------------------

    def load_events(
        self, aggregate_type: str, aggregate_id: str, after_version: int = 0
    ) -> list[StoredEvent]:
        """Query the stream (consistent read, every page) for versions above ``after_version``."""
        key = checked_stream_key(aggregate_type, aggregate_id)
        stream = (aggregate_type, aggregate_id)
        return [
            resolve(item_to_event(item, stream), self.large_payloads)
            for item in self._query_stream(key, after_version)
        ]

    def load_history(
        self, aggregate_type: str, aggregate_id: str, after_version: int = 0
    ) -> list[StreamEvent]:
        """``load_events`` with only the four attributes an aggregate is rebuilt from.

        Each item's commit metadata (ids, commit time, trace context) is most of its size: of a
        deposit's 259 bytes that ``load_events`` asks for, these four are 55. Left out, a
        stream just short of its next snapshot loads in about a fifth less time (see
        docs/benchmarks.md, "Loading reads only what an aggregate is rebuilt from").
        """
        key = checked_stream_key(aggregate_type, aggregate_id)
        stream = (aggregate_type, aggregate_id)
        items = self._query_stream(key, after_version, HISTORY_PROJECTION)
        return [resolve(item_to_stream_event(item, stream), self.large_payloads) for item in items]

    def resolve_payload(self, record: StoredEvent) -> StoredEvent:
        """The record with its offloaded payload fetched back from S3 (and verified)."""
        return resolve(record, self.large_payloads)

    def stream_exists(self, aggregate_type: str, aggregate_id: str) -> bool:
        """One consistent Query for at most one key of the stream."""
        request = self._stream_query(checked_stream_key(aggregate_type, aggregate_id), 0)
        request["Limit"] = 1
        request["ProjectionExpression"] = "pk"
        with translated_errors(self.tables.events):
            page = self.client.query(**request)
        return bool(page.get("Items"))

    def _stream_query(self, key: str, after_version: int) -> dict[str, Any]:
        return {
            "TableName": self.tables.events,
            "KeyConditionExpression": "pk = :pk AND sk > :after",
            "ExpressionAttributeValues": {":pk": {"S": key}, ":after": {"N": str(after_version)}},
            "ConsistentRead": True,
        }

    def _query_stream(
        self, key: str, after_version: int, projection: str = STREAM_PROJECTION
    ) -> Iterator[Item]:
        """The stream's items: only the attributes a record holds (not the feed keys).

        botocore's shape-driven parsing of every attribute of every item was about a third of a
        cold command's time and most of loading a stream: a client the store made decodes
        ``Query`` answers from the JSON itself (see ``client``), and fewer attributes are sent.
        """
        request = self._stream_query(key, after_version)
        request["ProjectionExpression"] = projection
        request["ExpressionAttributeNames"] = {"#schema": "schema"}
        while True:
            with translated_errors(self.tables.events):
                page = self.client.query(**request)
            yield from page.get("Items", [])
            last = page.get("LastEvaluatedKey")
            if not last:
                return
            request["ExclusiveStartKey"] = last

    def load_snapshot(self, aggregate_type: str, aggregate_id: str) -> Snapshot | None:
        """GetItem (consistent) of the aggregate's latest snapshot."""
        with translated_errors(self.tables.snapshots):
            response = self.client.get_item(
                TableName=self.tables.snapshots,
                Key={"pk": {"S": checked_stream_key(aggregate_type, aggregate_id)}},
                ConsistentRead=True,
            )
        item = response.get("Item")
        return None if item is None else item_to_snapshot(item)

    def feed_start(self) -> dt.datetime:
        """When the events table was created: no event can be older."""
        with translated_errors(self.tables.events):
            table = self.client.describe_table(TableName=self.tables.events)["Table"]
        created: dt.datetime = table["CreationDateTime"]
        return created.astimezone(dt.UTC)

    def read_feed(
        self, since: dt.datetime | None = None, until: dt.datetime | None = None
    ) -> Iterator[StoredEvent]:
        """Walk the ``feed`` index hour by hour, merging each hour's shards in commit order.

        Without ``since`` the walk starts at the table's creation; hours without events are
        skipped by their markers (``feed_hours``), a hundred hours a request. One page per shard
        is held in memory at a time. The whole feed is one lane: ``read_feed_lane(0, 1)``.
        """
        return self.read_feed_lane(0, 1, since, until)

    def feed_lanes(self) -> int:
        """Into how many lanes the feed splits for a parallel replay (see ``keys.feed_lanes``):
        every stream's events in one lane, whatever shard counts writers used."""
        with translated_errors(self.tables.aggregates):
            return feed_lanes(self.feed_hours.shard_counts() | {self.feed_shards})

    def feed_hours_to_read(
        self, since: dt.datetime | None = None, until: dt.datetime | None = None
    ) -> list[tuple[dt.datetime, int]]:
        """The hours from ``since`` (default: the table's creation) to ``until`` that may hold
        events, each with the shard count to query it with.

        Reading them costs a DescribeTable (without ``since``), a GetItem and a BatchGetItem
        per hundred hours: a parallel replay reads them once and hands them to every lane
        (``read_feed_lane(hours=...)``) instead of each lane reading the same markers.
        """
        end = until or dt.datetime.now(dt.UTC)
        with translated_errors(self.tables.aggregates):
            return list(self.feed_hours.hours(since or self.feed_start(), end))

    def read_feed_lane(
        self,
        lane: int,
        lanes: int,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        *,
        hours: Sequence[tuple[dt.datetime, int]] | None = None,
    ) -> Iterator[StoredEvent]:
        """The events of one lane of the feed, hour by hour, in commit order within the lane.

        A stream's events all land in one lane, so the lanes can be replayed side by side
        (``CatchUpRunner(workers=...)``) without reordering any stream. ``hours``: the hours
        to read (``feed_hours_to_read``) when the caller already has them; those before
        ``since``'s hour are skipped.
        """
        end = until or dt.datetime.now(dt.UTC)
        with translated_errors(self.tables.aggregates):
            if hours is None:
                to_read: Iterable[tuple[dt.datetime, int]] = self.feed_hours.hours(
                    since or self.feed_start(), end
                )
            else:
                first = None if since is None else feed_hour(since)
                to_read = (entry for entry in hours if first is None or entry[0] >= first)
            for hour, shard_count in to_read:
                partitions = feed_partitions(hour, shard_count)[lane::lanes]
                shards = [self._query_feed(partition) for partition in partitions]
                for item in heapq.merge(*shards, key=lambda item: str(item["feed_sk"]["S"])):
                    event = item_to_event(item)
                    if since is not None and event.occurred_at < since:
                        continue
                    if event.occurred_at >= end:
                        return
                    yield self.resolve_payload(event)

    def approximate_event_count(self) -> int:
        """The events table's item count as DescribeTable reports it.

        DynamoDB refreshes it about every six hours, so it is an estimate: good for a
        progress bar, not for anything that must be exact.
        """
        with translated_errors(self.tables.events):
            table = self.client.describe_table(TableName=self.tables.events)["Table"]
        return int(table.get("ItemCount", 0))

    def _query_feed(self, partition: str) -> Iterator[Item]:
        request: dict[str, Any] = {
            "TableName": self.tables.events,
            "IndexName": FEED_INDEX,
            "KeyConditionExpression": "feed_pk = :p",
            "ExpressionAttributeValues": {":p": {"S": partition}},
            "ProjectionExpression": FEED_PROJECTION,
            "ExpressionAttributeNames": {"#schema": "schema"},
            # Pages are merged across shards, one page per shard held at a time: a bounded
            # page keeps that memory flat whatever the number of events.
            "Limit": FEED_PAGE_SIZE,
        }
        while True:
            with translated_errors(self.tables.events):
                page = self.client.query(**request)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def get_processed_command(self, command_id: str) -> ProcessedCommand | None:
        """GetItem (consistent) of the processed-command record."""
        with translated_errors(self.tables.aggregates):
            response = self.client.get_item(
                TableName=self.tables.aggregates,
                Key={"pk": {"S": command_key(command_id)}},
                ConsistentRead=True,
            )
        item = response.get("Item")
        return None if item is None else item_to_command(item)


def lean_client(client: Any) -> Any:
    """``client`` (boto3's or aiobotocore's DynamoDB client) made lean for the store, returned.

    Its ``Query`` answers are decoded straight from the JSON (``fast_query_items``), and each
    request it sends is counted for the span around it. botocore and aiobotocore
    emit the same events, so one copy of both hooks serves the sync and the async store.
    """
    client.meta.events.register("before-parse.dynamodb.Query", fast_query_items)
    client.meta.events.register("before-call.dynamodb", count_request)
    return client


def fast_query_items(
    response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any
) -> None:
    """A ``before-parse`` hook: hand a ``Query`` answer's items over decoded from the JSON.

    botocore walks every attribute of every item through its shape model, which costs more
    than everything else a replay does. The items of DynamoDB's JSON are already in the
    low-level form the store reads (``{"S": ...}``, numbers as text); only binary values are
    base64 text, decoded here as botocore would. Error answers, and answers without items,
    are left to botocore. The other fields (``LastEvaluatedKey``, ``Count``) are parsed by
    botocore from what remains of the body.
    """
    if response_dict.get("status_code", 500) >= 300:
        return
    body = response_dict.get("body")
    if not body:
        return
    document = json.loads(body)
    items = document.pop("Items", None)
    if items is None:
        return
    for item in items:
        for name, value in item.items():
            if "S" not in value and "N" not in value:  # the common kinds, kept as they are
                item[name] = _wire_value(value)
    customized_response_dict["Items"] = items
    response_dict["body"] = json.dumps(document).encode()


def _wire_value(value: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB JSON attribute value as botocore parses it: binary decoded, the rest as is."""
    ((kind, data),) = value.items()
    if kind == "B":
        return {"B": base64.b64decode(data)}
    if kind == "BS":
        return {"BS": [base64.b64decode(element) for element in data]}
    if kind == "L":
        return {"L": [_wire_value(element) for element in data]}
    if kind == "M":
        return {"M": {name: _wire_value(element) for name, element in data.items()}}
    return value


class TransactionCancelled(Exception):
    """A cancelled transaction with its reasons; the store package explains it further."""

    def __init__(self, reasons: list[Mapping[str, Any]]) -> None:
        super().__init__("transaction cancelled")
        self.reasons = reasons


# botocore's errors that no retry cures, each with the fix to name; the first match decides.
_CONFIGURATION_FIXES: tuple[tuple[type[BotoCoreError], str], ...] = (
    (
        botocore_errors.NoCredentialsError,
        "no AWS credentials were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
        "AWS_PROFILE, or run with an IAM role; for DynamoDB Local set DYNAMO_ENDPOINT (dummy "
        "credentials are used then)",
    ),
    (
        botocore_errors.PartialCredentialsError,
        "the AWS credentials are incomplete ({error}): set both AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials)",
    ),
    (
        botocore_errors.UnknownCredentialError,
        "the AWS credentials cannot be used ({error}): check AWS_PROFILE and ~/.aws/config",
    ),
    (
        botocore_errors.BaseEndpointResolverError,  # NoRegionError among them
        "no usable AWS region or endpoint ({error}): set AWS_REGION (or pass region_name), "
        "or DYNAMO_ENDPOINT for DynamoDB Local",
    ),
    (
        botocore_errors.InvalidRegionError,
        "the AWS region is not valid ({error}): check AWS_REGION (for example eu-west-1)",
    ),
    (
        botocore_errors.UnknownRegionError,
        "the AWS region is not valid ({error}): check AWS_REGION (for example eu-west-1)",
    ),
    (
        botocore_errors.ProfileNotFound,
        "the AWS profile does not exist ({error}): check AWS_PROFILE and ~/.aws/config",
    ),
    (
        botocore_errors.ConfigNotFound,
        "the AWS configuration file is missing ({error}): check AWS_CONFIG_FILE",
    ),
    (
        botocore_errors.ConfigParseError,
        "the AWS configuration file cannot be read ({error}): fix ~/.aws/config",
    ),
    (
        botocore_errors.InvalidConfigError,
        "the AWS configuration is invalid ({error}): check AWS_PROFILE and ~/.aws/config",
    ),
    (
        botocore_errors.InvalidRetryConfigurationError,
        "the botocore retry configuration is invalid ({error}): fix the client_config",
    ),
    (
        botocore_errors.ParamValidationError,
        "the request was built wrongly ({error}): a bug in the code that calls DynamoDB, or a "
        "value of the wrong type; retrying will not help",
    ),
)

# DynamoDB's answers to credentials it does not know or that lack a permission.
_ACCESS_CODES = frozenset(
    {
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignatureException",
        "MissingAuthenticationTokenException",
        "InvalidClientTokenId",
        "ExpiredTokenException",
        "SignatureDoesNotMatch",
    }
)


@contextmanager
def translated_errors(table: str | None) -> Iterator[None]:
    """Map botocore's errors onto the framework's typed errors; ``table`` names the one read.

    What a retry may cure is ``StoreUnavailable`` (or ``Throttled``); what needs a person to
    change the configuration, the tables or the code is ``ConfigurationError``.
    """
    try:
        yield
    except ClientError as error:
        raise _translate_client_error(error, table) from error
    except _TRANSPORT_ERRORS as error:
        raise StoreUnavailable(
            f"DynamoDB did not answer ({type(error).__name__}: {error}); the outcome of a "
            "commit is unknown, retrying the same command id is safe"
        ) from error
    except BotoCoreError as error:
        for error_type, fix in _CONFIGURATION_FIXES:
            if isinstance(error, error_type):
                raise ConfigurationError(fix.format(error=error)) from error
        raise StoreUnavailable(f"DynamoDB request failed: {error}") from error


def _translate_client_error(error: ClientError, table: str | None) -> Exception:
    response: Mapping[str, Any] = error.response
    code = response.get("Error", {}).get("Code", "")
    message = response.get("Error", {}).get("Message", "")
    if code == "TransactionCanceledException":
        return TransactionCancelled(_cancellation_reasons(response, message))
    if code == "ResourceNotFoundException":
        return TableMissing(table or "?")
    if code in _THROTTLING_CODES:
        return Throttled(f"DynamoDB throttled the request after retries: {message}")
    if code in ("TransactionConflictException", "TransactionInProgressException"):
        return TransactionConflict(f"{code}: {message}")
    if code == "ValidationException" and "size" in message.lower():
        return ChangeSetTooLarge(f"DynamoDB refused the change set: {message}")
    if code == "ValidationException":
        return ConfigurationError(
            f"DynamoDB refused the request as malformed ({message}): the table"
            f"{f' {table!r}' if table else 's'} may not have the key schema or indexes this "
            "code expects (a wrong DYNAMO_TABLE_PREFIX, tables made by something else), or the "
            "code builds a wrong expression; retrying will not help"
        )
    if code in _ACCESS_CODES:
        return ConfigurationError(
            f"DynamoDB refused the credentials or the permission ({code}: {message}): check "
            "AWS_ACCESS_KEY_ID/AWS_PROFILE, that the credentials belong to the tables' account "
            "and region (AWS_REGION), and that their IAM policy allows this action on "
            f"{repr(table) if table else 'the tables'}"
        )
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if status >= 500:
        return StoreUnavailable(f"DynamoDB failed ({code}): {message}")
    return EventStoreError(f"DynamoDB refused the request ({code}): {message}")


def _cancellation_reasons(response: Mapping[str, Any], message: str) -> list[Mapping[str, Any]]:
    reasons = response.get("CancellationReasons")
    if reasons:
        return list(reasons)
    # Some emulators only put the codes in the message: "... [None, ConditionalCheckFailed]".
    found = _REASON_CODES.search(message)
    if not found:
        return []
    return [{"Code": code.strip()} for code in found.group(1).split(",")]


def _transact_item(write: PlannedWrite) -> dict[str, Any]:
    """The ``TransactWriteItems`` entry of a planned write, guarded by the plan's condition."""
    item = write.item
    request: dict[str, Any] = {"TableName": write.table}
    if write.action == "Put":
        request["Item"] = item
    else:
        request["Key"] = {"pk": item["pk"]}
    if write.action == "Update":
        request["UpdateExpression"] = "SET #v = :v, updated_at = :u, last_change_set_id = :c"
        request["ExpressionAttributeNames"] = {"#v": "version"}
        request["ExpressionAttributeValues"] = {
            ":v": item["version"],
            ":u": item["updated_at"],
            ":c": item["last_change_set_id"],
        }
    condition = write.condition
    if condition is not None:
        request = merged(request, condition)
        if write.kind is not WriteKind.EVENT:  # the item tells which version or owner won
            request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    return {write.action: request}

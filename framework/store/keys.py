"""Every key the framework writes, built and split in one place, and the names and ids it accepts.

The aggregates table holds several kinds of items under one partition key: aggregate metadata
(``{aggregate_type}#{aggregate_id}``), unique-value claims (``unique#{scope}#{value}``), processed
commands (``command#{command_id}``) and wrapped data keys (``key#{subject}``). They cannot collide
only because an aggregate type name is never one of the framework's prefixes and never contains
``#``: ``check_aggregate_type`` refuses such names when the class is defined.

An aggregate id ends up in several keys, each with its own DynamoDB limit: the stream's partition
key (2,048 bytes), the ``feed`` index's sort key (1,024 bytes, the tightest), projector
positions (2,048 bytes, after the projector's name) and the object key of an offloaded payload.
``max_id_bytes`` is the largest id that fits in all of them, and ``check_aggregate_id`` refuses
anything else with ``InvalidIdentifier`` before a request is sent, the same way on every store.

This module depends on the standard library and ``framework.errors`` only, so that the domain
layer can refuse a reserved type name at class definition without knowing anything else of the
store.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import math
import zlib
from collections.abc import Iterable

from framework.errors import DefinitionError, InvalidIdentifier

SEPARATOR = "#"
"""Between the parts of every key. Type and projector names never contain it; ids may."""

COMMAND_PREFIX = "command"
UNIQUE_PREFIX = "unique"
DATA_KEY_PREFIX = "key"
FEED_HOUR_PREFIX = "feed"
RESERVED_TYPE_NAMES = frozenset({COMMAND_PREFIX, UNIQUE_PREFIX, DATA_KEY_PREFIX, FEED_HOUR_PREFIX})
"""Prefixes of the framework's own items in the aggregates table: no aggregate type may use one.

Any new kind of item in that table adds its prefix here, which refuses it as a type name."""

FEED_CHECKPOINT_PREFIX = "feed"
SHARD_CHECKPOINT_PREFIX = "shard"
LEASE_PREFIX = "lease"
RESERVED_PROJECTOR_NAMES = frozenset(
    {FEED_CHECKPOINT_PREFIX, SHARD_CHECKPOINT_PREFIX, LEASE_PREFIX}
)
"""Prefixes of the runners' own items in the positions table: no projector may be named so."""

MAX_PARTITION_KEY_BYTES = 2048
"""DynamoDB's limit on a partition key value."""
MAX_SORT_KEY_BYTES = 1024
"""DynamoDB's limit on a sort key value, which the ``feed`` index's ``feed_sk`` is."""
MAX_NAME_BYTES = 255
"""The longest aggregate type or projector name, in UTF-8 bytes.

Bounding names lets ``max_id_bytes`` account for the positions table, whose keys hold a
projector name before the stream, without knowing which projectors will ever run."""
MAX_OBJECT_STREAM_BYTES = 512
"""Above this, an offloaded payload's object key names the stream by its digest (S3 keys are
limited to 1,024 bytes, the bucket prefix included)."""

FEED_SHARDS = 4
"""Events of one commit hour are spread over this many feed partitions (see ``feed_key``)."""
_FEED_TIME_FORMAT = "%Y%m%dT%H%M%S.%f"
_VERSION_DIGITS = 10
_FEED_SORT_KEY_OVERHEAD = len("20240101T000000.000000") + 2 * len(SEPARATOR) + _VERSION_DIGITS
"""The bytes of ``feed_sk`` that are not the stream: commit time, two separators, the version."""
_COMMAND_ID_LIMIT = MAX_PARTITION_KEY_BYTES - len(COMMAND_PREFIX + SEPARATOR)


# ---------------------------------------------------------------------------------------------
# names and ids


def _utf8_length(text: str) -> int | None:
    """Bytes of ``text`` in UTF-8, or ``None`` when it cannot be encoded (a lone surrogate)."""
    try:
        return len(text.encode())
    except UnicodeEncodeError:
        return None


def check_name(kind: str, name: object) -> str:
    """Refuse an aggregate type or projector name that cannot be part of a key.

    Empty names, names containing ``#``, names that are not UTF-8 text and names longer than
    ``MAX_NAME_BYTES`` raise ``DefinitionError``; this runs at class definition.
    """
    if not isinstance(name, str) or not name:
        raise DefinitionError(f"{kind} name must be a non-empty string, got {name!r}")
    if SEPARATOR in name:
        raise DefinitionError(f"{kind} name {name!r} contains {SEPARATOR!r}")
    length = _utf8_length(name)
    if length is None:
        raise DefinitionError(f"{kind} name {name!r} cannot be encoded as UTF-8")
    if length > MAX_NAME_BYTES:
        raise DefinitionError(
            f"{kind} name {name[:40]!r}... is {length} bytes; at most {MAX_NAME_BYTES} are allowed"
        )
    return name


def check_projector_name(name: object) -> str:
    """Refuse a projector name that cannot key positions or collides with the runners' items."""
    checked = check_name("projector", name)
    if checked in RESERVED_PROJECTOR_NAMES:
        raise DefinitionError(
            f"projector name {checked!r} is reserved for the runners' own items in the "
            f"positions table ({', '.join(sorted(RESERVED_PROJECTOR_NAMES))}): choose another "
            "with class ...(Projector, name=...)"
        )
    return checked


def check_aggregate_type(name: object) -> str:
    """Refuse an aggregate type name that cannot key a stream or collides with the framework's.

    ``command``, ``unique`` and ``key`` name the framework's own items in the aggregates table: a
    ``command`` aggregate's metadata would be read as a processed command, and forgetting a
    subject would delete a ``key`` aggregate's metadata.
    """
    checked = check_name("aggregate type", name)
    if checked in RESERVED_TYPE_NAMES:
        raise DefinitionError(
            f"aggregate type name {checked!r} is reserved for the framework's own items "
            f"({', '.join(sorted(RESERVED_TYPE_NAMES))}): choose another with "
            f"class ...(Aggregate, name='...')"
        )
    return checked


@functools.lru_cache(maxsize=1024)
def max_id_bytes(aggregate_type: str) -> int:
    """The longest id, in UTF-8 bytes, that fits every key an aggregate of this type is under.

    The ``feed`` index's sort key (commit time, stream, version) is the binding limit: with
    ``MAX_NAME_BYTES`` names, the stream's partition key and the positions table's keys
    (``{projector}#{stream}``) always have room to spare.
    """
    type_bytes = len(aggregate_type.encode()) + len(SEPARATOR)
    return min(
        MAX_PARTITION_KEY_BYTES - type_bytes,
        MAX_SORT_KEY_BYTES - _FEED_SORT_KEY_OVERHEAD - type_bytes,
        MAX_PARTITION_KEY_BYTES - MAX_NAME_BYTES - len(SEPARATOR) - type_bytes,
    )


def check_aggregate_id(aggregate_type: str, aggregate_id: object) -> str:
    """Refuse an id that is empty, not text, not UTF-8 encodable or too long for its keys.

    Raises ``InvalidIdentifier`` (a 4xx in the HTTP layer) naming the type, the id's length in
    bytes and the limit; called before any request is sent, so no store ever sees such an id.
    """
    what = f"{aggregate_type} id"
    if not isinstance(aggregate_id, str):
        raise InvalidIdentifier(what, repr(aggregate_id), "must be a string", aggregate_type)
    if not aggregate_id:
        raise InvalidIdentifier(what, aggregate_id, "must not be empty", aggregate_type)
    return _check_length(what, aggregate_id, max_id_bytes(aggregate_type), aggregate_type)


def check_command_id(command_id: object) -> str:
    """Refuse a command id that is empty, not UTF-8 text or too long for its record's key."""
    if not isinstance(command_id, str):
        raise InvalidIdentifier("command_id", repr(command_id), "must be a string")
    if not command_id:
        raise InvalidIdentifier("command_id", command_id, "must not be empty")
    return _check_length("command_id", command_id, _COMMAND_ID_LIMIT)


def check_claim(scope: object, value: object) -> None:
    """Refuse an empty or non-text scope or value, and a claim too long for its key."""
    if not isinstance(scope, str) or not scope:
        raise InvalidIdentifier("unique scope", repr(scope), "must be a non-empty string")
    if not isinstance(value, str) or not value:
        raise InvalidIdentifier(
            f"unique value in scope {scope!r}", repr(value), "must be a non-empty string"
        )
    _check_length("unique scope", scope, MAX_PARTITION_KEY_BYTES)
    limit = MAX_PARTITION_KEY_BYTES - len(claim_key_prefix(scope).encode())
    _check_length(f"unique value in scope {scope!r}", value, limit)


def _check_length(what: str, text: str, limit: int, aggregate_type: str | None = None) -> str:
    length = _utf8_length(text)
    if length is None:
        raise InvalidIdentifier(what, text, "cannot be encoded as UTF-8", aggregate_type)
    if length > limit:
        raise InvalidIdentifier(
            what,
            text,
            f"is {length} bytes; at most {limit} fit in every key it is stored under",
            aggregate_type,
            length=length,
            limit=limit,
        )
    return text


# ---------------------------------------------------------------------------------------------
# streams


def stream_key(aggregate_type: str, aggregate_id: str) -> str:
    """The partition key of an aggregate's stream: ``{aggregate_type}#{aggregate_id}``."""
    return f"{aggregate_type}{SEPARATOR}{aggregate_id}"


def split_stream(pk: str) -> tuple[str, str]:
    """Inverse of ``stream_key``: aggregate type names never contain ``#``, ids may."""
    aggregate_type, separator, aggregate_id = pk.partition(SEPARATOR)
    if not separator:
        raise ValueError(f"{pk!r} is not a stream key")
    return aggregate_type, aggregate_id


def checked_stream_key(aggregate_type: str, aggregate_id: object) -> str:
    """``stream_key`` of an id that was checked first: what the stores use to read a stream."""
    return stream_key(aggregate_type, check_aggregate_id(aggregate_type, aggregate_id))


# ---------------------------------------------------------------------------------------------
# the framework's own items in the aggregates table


def claim_key_prefix(scope: str) -> str:
    """``unique#{escaped scope}#``: everything of a claim key before its value."""
    return f"{UNIQUE_PREFIX}{SEPARATOR}{escape_scope(scope)}{SEPARATOR}"


def escape_scope(scope: str) -> str:
    """Percent-encode ``%`` and ``#`` in a claim scope, and nothing else.

    With ``#`` escaped, the first ``#`` after the prefix ends the scope, so scope ``email#work``
    with value ``x`` and scope ``email`` with value ``work#x`` are different claims. Escaping was
    chosen over length-prefixing because a scope without ``%`` or ``#`` (every scope in practice)
    keeps exactly the key it had before: claims already stored keep holding their values. The
    value needs no escaping: it is everything after that first separator.
    """
    return scope.replace("%", "%25").replace(SEPARATOR, "%23")


def claim_key(scope: str, value: str) -> str:
    """The aggregates-table key of a unique-value claim: ``unique#{escaped scope}#{value}``."""
    check_claim(scope, value)
    return claim_key_prefix(scope) + value


def command_key(command_id: str) -> str:
    """The aggregates-table key that records a processed command id: ``command#{command_id}``."""
    return f"{COMMAND_PREFIX}{SEPARATOR}{command_id}"


def split_command_key(key: str) -> str:
    """The command id of a processed-command key (inverse of ``command_key``)."""
    prefix = COMMAND_PREFIX + SEPARATOR
    if not key.startswith(prefix):
        raise ValueError(f"{key!r} is not a processed-command key")
    return key[len(prefix) :]


def data_key_key(subject: str) -> str:
    """The aggregates-table key of a subject's wrapped personal-data key: ``key#{subject}``."""
    return f"{DATA_KEY_PREFIX}{SEPARATOR}{subject}"


# ---------------------------------------------------------------------------------------------
# the feed index


def feed_key(
    stream: str, version: int, committed_at: dt.datetime, shards: int = FEED_SHARDS
) -> tuple[str, str]:
    """The (``feed_pk``, ``feed_sk``) of an event in the ``feed`` index.

    ``feed_pk`` is the commit hour plus a shard derived from the stream, so that a busy hour is
    spread over ``shards`` partitions instead of one hot key (each partition takes about 1,000
    writes a second); ``feed_sk`` sorts by commit time, then stream and version. A reader of all
    events merges the shards of each hour. A stream always lands in one shard of an hour, and
    with more shards its shard number only grows: shard ``crc32(stream) % n`` is below ``n``, so a
    reader that queries the partitions of the largest count an hour was written with reads every
    event of the hour.
    """
    hour, moment = _feed_times(committed_at.astimezone(dt.UTC))
    shard = zlib.crc32(stream.encode()) % shards
    return (
        f"{hour}{SEPARATOR}{shard}",
        f"{moment}{SEPARATOR}{stream}{SEPARATOR}{version:0{_VERSION_DIGITS}d}",
    )


def _feed_times(moment: dt.datetime) -> tuple[str, str]:
    """The commit hour and time of a UTC moment as ``strftime`` writes them in the feed keys.

    Spelled out from the fields: every commit formats its own moment, and ``strftime`` was the
    dearest part of a feed key. Years before 1000, which ``strftime`` does not pad, go to it.
    """
    if moment.year < 1000:
        return f"{moment:%Y%m%d%H}", f"{moment:{_FEED_TIME_FORMAT}}"
    hour = f"{moment.year}{moment.month:02d}{moment.day:02d}{moment.hour:02d}"
    return hour, (
        f"{hour[:8]}T{hour[8:]}{moment.minute:02d}{moment.second:02d}.{moment.microsecond:06d}"
    )


def feed_hour(moment: dt.datetime) -> dt.datetime:
    """The start of the commit hour ``moment`` falls in, in UTC."""
    return moment.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def feed_partitions(hour: dt.datetime, shards: int = FEED_SHARDS) -> list[str]:
    """The ``feed_pk`` values of every shard of one commit hour."""
    return [f"{hour.astimezone(dt.UTC):%Y%m%d%H}{SEPARATOR}{shard}" for shard in range(shards)]


def feed_lanes(shard_counts: Iterable[int]) -> int:
    """How many lanes a feed written with these shard counts splits into, streams kept whole.

    Lane ``p % g`` of partition ``p`` with ``g`` the greatest common divisor of the counts: for
    every count ``n`` that ``g`` divides, ``(crc % n) % g == crc % g``, so all of a stream's
    events are in one lane whatever count each hour was written with.
    """
    return math.gcd(*shard_counts) or FEED_SHARDS


def feed_hour_key(hour: dt.datetime) -> str:
    """The aggregates-table key of the marker saying that events were written in ``hour``."""
    return f"{FEED_HOUR_PREFIX}{SEPARATOR}{hour.astimezone(dt.UTC):%Y%m%d%H}"


FEED_MARKERS_SINCE_KEY = f"{FEED_HOUR_PREFIX}{SEPARATOR}since"
"""The aggregates-table key of the time the hour markers were first written."""


# ---------------------------------------------------------------------------------------------
# the positions table


def position_key(projector: str, stream: str) -> str:
    """The positions-table key of a projector's position in a stream: ``{projector}#{stream}``."""
    return f"{projector}{SEPARATOR}{stream}"


def feed_checkpoint_key(projector: str) -> str:
    """Where the catch-up runner keeps how far a projector got in the feed."""
    return f"{FEED_CHECKPOINT_PREFIX}{SEPARATOR}{projector}"


def feed_lane_checkpoint_key(projector: str, lane: int, lanes: int) -> str:
    """Where the catch-up runner keeps how far a projector got in one lane of the feed.

    A parallel replay reads each lane on its own, so each has its own checkpoint: an
    interrupted replay resumes every lane from where it got to. The number of lanes is part of
    the key, since lane ``n`` of four and lane ``n`` of two are different parts of the feed.
    """
    return f"{FEED_CHECKPOINT_PREFIX}{SEPARATOR}{lane}of{lanes}{SEPARATOR}{projector}"


def shard_checkpoint_key(shard_id: str, projector: str) -> str:
    """Where the Streams poller keeps a projector's progress in one shard."""
    return f"{SHARD_CHECKPOINT_PREFIX}{SEPARATOR}{shard_id}{SEPARATOR}{projector}"


def lease_key(name: str) -> str:
    """The positions-table key of a runner lease (two pollers of one set of projectors)."""
    return f"{LEASE_PREFIX}{SEPARATOR}{name}"


def checkpoint_projector(key: str) -> str:
    """The projector a checkpoint key belongs to: its name is the key's last part."""
    return key.rsplit(SEPARATOR, 1)[-1]


# ---------------------------------------------------------------------------------------------
# offloaded payloads


def payload_object_key(stream: str, version: int, change_set_id: str) -> str:
    """The object key of an event payload offloaded to S3: ``{stream}/{version}-{change set}``.

    A stream longer than ``MAX_OBJECT_STREAM_BYTES`` is named by its SHA-256 instead, so that
    the key stays within S3's 1,024 bytes whatever the id; readers follow the key stored in the
    event, never rebuild it.
    """
    name = stream
    if len(stream.encode()) > MAX_OBJECT_STREAM_BYTES:
        aggregate_type, _ = split_stream(stream)
        digest = hashlib.sha256(stream.encode()).hexdigest()
        name = f"{aggregate_type}{SEPARATOR}sha256-{digest}"
    return f"{name}/{version}-{change_set_id}"

"""A framework for domain-driven, event-sourced CQRS applications on Amazon DynamoDB.

Everything an application needs is importable from here; the submodules are the implementation.
"""

from framework.application import Application, Backoff
from framework.cache import AggregateCache
from framework.domain import (
    Aggregate,
    Command,
    Event,
    command_handler,
    event_handler,
    subject_of,
)
from framework.encryption import ERASED, KeyRing, KmsKeyWrapper, LocalKeyWrapper
from framework.errors import (
    AggregateAlreadyExists,
    AggregateNotFound,
    ChangeSetTooLarge,
    CommandIdReused,
    ConcurrencyError,
    ConfigurationError,
    ConflictError,
    CorruptEvent,
    DefinitionError,
    DomainError,
    DuplicateCommand,
    EventStoreError,
    FrameworkError,
    InvalidCommand,
    InvalidEvent,
    InvalidIdentifier,
    MissingEventHandler,
    StoreUnavailable,
    SubjectForgotten,
    TableMissing,
    Throttled,
    TransactionConflict,
    UniqueConstraintViolated,
    UnknownCommand,
    UnknownEventType,
)
from framework.projections import CatchUpRunner, Envelope, Projector, StreamsPoller
from framework.results import CommandResult
from framework.snapshots import EveryNEvents, NoSnapshots, SnapshotPolicy
from framework.store import DynamoDBEventStore, EventStore, InMemoryEventStore
from framework.store.dynamodb_positions import DynamoDBPositionStore
from framework.store.positions import InMemoryPositionStore, PositionStore
from framework.unit_of_work import UnitOfWork
from framework.upcasting import upcaster

__all__ = [
    "ERASED",
    "Aggregate",
    "AggregateAlreadyExists",
    "AggregateCache",
    "AggregateNotFound",
    "Application",
    "Backoff",
    "CatchUpRunner",
    "ChangeSetTooLarge",
    "Command",
    "CommandIdReused",
    "CommandResult",
    "ConcurrencyError",
    "ConfigurationError",
    "ConflictError",
    "CorruptEvent",
    "DefinitionError",
    "DomainError",
    "DuplicateCommand",
    "DynamoDBEventStore",
    "DynamoDBPositionStore",
    "Envelope",
    "Event",
    "EventStore",
    "EventStoreError",
    "EveryNEvents",
    "FrameworkError",
    "InMemoryEventStore",
    "InMemoryPositionStore",
    "InvalidCommand",
    "InvalidEvent",
    "InvalidIdentifier",
    "KeyRing",
    "KmsKeyWrapper",
    "LocalKeyWrapper",
    "MissingEventHandler",
    "NoSnapshots",
    "PositionStore",
    "Projector",
    "SnapshotPolicy",
    "StoreUnavailable",
    "StreamsPoller",
    "SubjectForgotten",
    "TableMissing",
    "Throttled",
    "TransactionConflict",
    "UniqueConstraintViolated",
    "UnitOfWork",
    "UnknownCommand",
    "UnknownEventType",
    "command_handler",
    "event_handler",
    "subject_of",
    "upcaster",
]

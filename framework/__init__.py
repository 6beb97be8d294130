"""A framework for domain-driven, event-sourced CQRS applications on Amazon DynamoDB.

The root holds what a domain author writes with: aggregates, commands, events, their decorators
and marks, the errors a domain raises, and the few names that wire a domain into an application.
Everything else lives in a public module with its own ``__all__``:

- ``framework.application``: the write side (``Application``, ``Backoff``, ``CommandResult``,
  ``AggregateCache``, snapshot policies);
- ``framework.errors``: every error the framework raises on purpose;
- ``framework.store``: event stores, position stores, payload and key storage;
- ``framework.projections`` (and ``framework.projections.read_models``): read models and runners;
- ``framework.mapping``: the event mapper each application owns (``app.mapper``): stored type
  names, upcasters, personal-field sealing, the payload format;
- ``framework.encryption``: personal data, key rings and key wrappers;
- ``framework.logs``: logging set-up;
- ``framework.testing``: scenarios and the projector kit (the pytest plugin is opt-in:
  ``framework.testing.pytest_plugin``).

``import framework`` loads attrs and the standard library only: a domain module and its unit tests
need nothing more. The names below whose modules need more (the application, the stores, the
projector) are imported on first use.
"""

from typing import TYPE_CHECKING

from framework.application.snapshots import EveryNEvents, NoSnapshots
from framework.domain import (
    Aggregate,
    Command,
    Event,
    command_handler,
    event_handler,
    subject_of,
)
from framework.errors import ConcurrencyError, DomainError
from framework.mapping.upcasters import upcaster

if TYPE_CHECKING:
    from framework.application import Application
    from framework.application.unit_of_work import UnitOfWork
    from framework.projections import Projector
    from framework.store import DynamoDBEventStore, InMemoryEventStore
else:
    from framework._lazy import lazy_exports

    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "Application": "framework.application",
            "DynamoDBEventStore": "framework.store",
            "InMemoryEventStore": "framework.store",
            "Projector": "framework.projections",
            "UnitOfWork": "framework.application.unit_of_work",
        },
    )

__all__ = [
    "Aggregate",
    "Application",
    "Command",
    "ConcurrencyError",
    "DomainError",
    "DynamoDBEventStore",
    "Event",
    "EveryNEvents",
    "InMemoryEventStore",
    "NoSnapshots",
    "Projector",
    "UnitOfWork",
    "command_handler",
    "event_handler",
    "subject_of",
    "upcaster",
]

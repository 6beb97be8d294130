"""Upcasters: reading events stored under an older schema version of their class.

An event class whose shape changes gets a new schema version (``class Deposited(Event,
version=3)``) and, for every older version, an upcaster: a function from the stored document of
version N to the document of version N+1::

    @upcaster("Deposited", from_version=1)
    def add_currency(document: dict) -> dict:
        return {**document, "currency": "EUR"}

On read, the stored document runs through the chain up to the class's current version before it
is turned into an event. Nothing stored is ever rewritten. A chain with a missing link is found
when the application (or a projector's engine) starts, never when the first old event is read.

Upcasters are registered by stored type name, so they keep working when a class is renamed (keep
its ``name=``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from framework.domain import Event, event_schema_version, event_type_name
from framework.errors import DefinitionError

Document = dict[str, Any]
Upcaster = Callable[[Document], Document]
U = TypeVar("U", bound=Upcaster)

_upcasters: dict[tuple[str, int], Upcaster] = {}


def upcaster(event: str | type[Event], *, from_version: int) -> Callable[[U], U]:
    """Register the function that turns version ``from_version`` of ``event`` into the next."""
    name = event if isinstance(event, str) else event_type_name(event)
    if not isinstance(from_version, int) or from_version < 1:
        raise DefinitionError(f"@upcaster({name!r}): from_version must be an int >= 1")

    def register(function: U) -> U:
        key = (name, from_version)
        existing = _upcasters.get(key)
        if existing is not None and _identity(existing) != _identity(function):
            raise DefinitionError(
                f"two upcasters from version {from_version} of {name!r}: "
                f"{_identity(existing)} and {_identity(function)}"
            )
        _upcasters[key] = function
        return function

    return register


def _identity(function: Upcaster) -> str:
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', function)}"


def check_upcasters(event_class: type[Event]) -> None:
    """Fail now if an older stored version of ``event_class`` could not be read."""
    name = event_type_name(event_class)
    current = event_schema_version(event_class)
    missing = [version for version in range(1, current) if (name, version) not in _upcasters]
    if missing:
        raise DefinitionError(
            f"{event_class.__name__} is at schema version {current}, but events stored at version "
            f"{', '.join(map(str, missing))} could not be read: add "
            + " and ".join(f"@upcaster({name!r}, from_version={v})" for v in missing)
        )


def upcast(name: str, stored_version: int, target_version: int, document: Document) -> Document:
    """Run ``document`` through the chain from ``stored_version`` to ``target_version``."""
    for version in range(stored_version, target_version):
        document = _upcasters[(name, version)](document)
        if not isinstance(document, dict):
            raise TypeError(f"the upcaster from version {version} of {name!r} returned no dict")
    return document

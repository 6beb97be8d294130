"""Upcasters: reading events stored under an older schema version of their class.

An event class whose shape changes gets a new schema version (``class Deposited(Event,
version=3)``) and, for every older version, an upcaster: a function from the stored document of
version N to the document of version N+1::

    @upcaster("Deposited", from_version=1)
    def add_currency(document: dict) -> dict:
        return {**document, "currency": "EUR"}

    app = Application(..., upcasters=[add_currency])

``@upcaster`` only marks the function with the step it performs; it registers nothing. An
application (and a projection engine, which reads events without one) is given its upcasters,
and its mapper owns them: two applications in one process may read the same stored type name
in two ways. On read, the stored document runs through the chain up to the class's current
version before it is turned into an event; nothing stored is ever rewritten. A chain with a
missing link is found when the application (or a projector's engine) is built, never when the
first old event is read.

Upcasters are keyed by stored type name, so they keep working when a class is renamed (keep its
``name=``). This module needs attrs and the standard library only: the root package exports
``upcaster`` without loading cattrs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import attrs

from framework.domain import Event, event_schema_version, event_type_name
from framework.errors import DefinitionError

Document = dict[str, Any]
Upcaster = Callable[[Document], Document]
"""A function from the stored document of one schema version to the next, marked ``@upcaster``."""
U = TypeVar("U", bound=Upcaster)

_MARK = "__upcaster__"


@attrs.frozen
class UpcasterStep:
    """The step an upcaster performs: from ``from_version`` of stored type ``name`` to the next."""

    name: str
    from_version: int


def upcaster(event: str | type[Event], *, from_version: int) -> Callable[[U], U]:
    """Mark a function as the step from version ``from_version`` of ``event`` to the next.

    ``event`` is the stored type name or the event class (whose stored name is used). The mark
    registers nothing: give the function to the ``Application`` (``upcasters=[...]``) and to the
    projection engines that read the same events.
    """
    name = event if isinstance(event, str) else event_type_name(event)
    if not isinstance(from_version, int) or isinstance(from_version, bool) or from_version < 1:
        raise DefinitionError(f"@upcaster({name!r}): from_version must be an int >= 1")
    step = UpcasterStep(name, from_version)

    def mark(function: U) -> U:
        existing = getattr(function, _MARK, None)
        if existing is not None and existing != step:
            raise DefinitionError(
                f"{_identity(function)} is already the upcaster from version "
                f"{existing.from_version} of {existing.name!r}"
            )
        setattr(function, _MARK, step)
        return function

    return mark


def upcaster_step(function: Upcaster) -> UpcasterStep | None:
    """The step ``function`` was marked with by ``@upcaster``, or ``None``."""
    step = getattr(function, _MARK, None)
    return step if isinstance(step, UpcasterStep) else None


def _identity(function: Upcaster) -> str:
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', function)}"


class Upcasters:
    """The upcasters one mapper owns, by stored type name and the version each starts from.

    Built once from the functions an application is given: a function not marked
    ``@upcaster`` and two functions for one step are refused here, at start-up.
    """

    def __init__(self, functions: Iterable[Upcaster] = ()) -> None:
        self.functions: tuple[Upcaster, ...] = tuple(dict.fromkeys(functions))
        self._steps: dict[str, dict[int, Upcaster]] = {}
        for function in self.functions:
            step = upcaster_step(function)
            if step is None:
                raise DefinitionError(
                    f"{_identity(function)} is given as an upcaster but is not marked "
                    "@upcaster(EventType, from_version=N)"
                )
            by_version = self._steps.setdefault(step.name, {})
            existing = by_version.get(step.from_version)
            if existing is not None:
                raise DefinitionError(
                    f"two upcasters from version {step.from_version} of {step.name!r}: "
                    f"{_identity(existing)} and {_identity(function)}"
                )
            by_version[step.from_version] = function

    def steps(self, name: str) -> dict[int, Upcaster]:
        """The upcasters of stored type ``name``, by the version each reads."""
        return dict(self._steps.get(name, {}))

    def check(self, event_class: type[Event]) -> None:
        """Fail now if an older stored version of ``event_class`` could not be read."""
        name = event_type_name(event_class)
        current = event_schema_version(event_class)
        known = self._steps.get(name, {})
        missing = [version for version in range(1, current) if version not in known]
        if missing:
            raise DefinitionError(
                f"{event_class.__name__} is at schema version {current}, but events stored at "
                f"version {', '.join(map(str, missing))} could not be read: add "
                + " and ".join(f"@upcaster({name!r}, from_version={v})" for v in missing)
                + " and give it to the application (and the projection engines): upcasters=[...]"
            )


def run_chain(
    name: str, steps: dict[int, Upcaster], stored: int, target: int, document: Document
) -> Document:
    """Run ``document`` of type ``name`` through ``steps`` from ``stored`` to ``target``."""
    for version in range(stored, target):
        document = steps[version](document)
        if not isinstance(document, dict):
            raise TypeError(f"the upcaster from version {version} of {name!r} returned no dict")
    return document

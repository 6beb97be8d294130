"""One function per event class that turns a stored event's document into the event.

Decoding an event through cattrs' generic structure function (with its detailed validation) and
then the class's own ``__init__``, whose ``__attrs_post_init__`` checks every field's type again
(``framework.typecheck``), was most of decoding it. For an event class made only of plain
fields, the function built here converts each field with the very hook cattrs would call for it,
sets the fields on a new instance directly, and checks only what those hooks do not already
guarantee: a ``Decimal`` that may come out infinite or NaN, a ``datetime`` that may come out
naive, and whatever cattrs structures in full (nested classes, collections, unions, literals).
The result is the instance ``converter.structure`` gives, or a refusal where it refuses
(``tests/unit/test_structure.py`` holds the two ways to each other on arbitrary documents).

A class with anything more to its construction (validators, converters, its own
``__attrs_post_init__`` or ``__init__``, private fields, a cached hash) is structured by cattrs
and built by its ``__init__``, as before.
"""

from __future__ import annotations

import enum
import types
import typing
import uuid
from collections.abc import Callable
from typing import Any

import attrs
import cattrs

from framework.domain import Event
from framework.typecheck import Checker, checker_for

Structure = Callable[[Any], Event]
"""Turns a decoded (and upcast) document into an instance of one event class."""

_GUARANTEED: frozenset[Any] = frozenset({str, int, float, bool, uuid.UUID})
"""Types whose structure hook (``cls(value)``) returns exactly that type or raises: nothing is
left for the type check to find. ``Decimal`` and ``datetime`` are not among them: their hooks
can return a NaN or a naive datetime, which the type check refuses."""

_NOT_GIVEN = object()


def structure_function(event_class: type[Event], converter: cattrs.Converter) -> Structure:
    """The function that structures documents into ``event_class``, built once per class."""
    plan = _plan(event_class, converter)
    if plan is None:
        hook = converter.get_structure_hook(event_class)

        def structure_by_cattrs(document: Any) -> Event:
            event: Event = hook(document, event_class)
            return event

        return structure_by_cattrs
    return _direct(event_class, plan)


_Field = tuple[str, Callable[[Any, Any], Any], Any, Any, Checker | None, Checker]
"""(name, structure hook, type, default or ``_NOT_GIVEN``, check after the hook, full check)."""


def _plan(event_class: type[Event], converter: cattrs.Converter) -> list[_Field] | None:
    """How to build ``event_class`` field by field, or ``None`` when it must go through cattrs."""
    if not _builds_plainly(event_class):
        return None
    try:
        hints = typing.get_type_hints(event_class)
    except Exception:  # an annotation out of reach: cattrs decides what to do with it
        return None
    plan: list[_Field] = []
    for field in attrs.fields(event_class):
        annotation = hints.get(field.name)
        if annotation is None:
            return None
        default: Any = field.default
        if default is attrs.NOTHING:
            default = _NOT_GIVEN
        elif isinstance(default, attrs.Factory) and default.takes_self:  # type: ignore[arg-type]
            return None
        full = checker_for(annotation)
        check = None if _guaranteed(annotation) else full
        hook = converter.get_structure_hook(annotation)
        plan.append((field.name, hook, annotation, default, check, full))
    return plan


def _builds_plainly(event_class: type[Event]) -> bool:
    """True when building the class is setting its fields and checking their types, no more."""
    if not attrs.has(event_class) or "__attrs_pre_init__" in dir(event_class):
        return False
    if getattr(event_class, "__attrs_post_init__", None) is not Event.__attrs_post_init__:
        return False
    init = event_class.__init__
    if not getattr(init, "__code__", None) or not init.__code__.co_filename.startswith(
        "<attrs generated"
    ):
        return False
    if any("cached_hash" in name for cls in event_class.__mro__ for name in _slots(cls)):
        return False
    return all(
        field.init
        and field.validator is None
        and field.converter is None
        and field.alias == field.name
        for field in attrs.fields(event_class)
    )


def _slots(cls: type) -> tuple[str, ...]:
    slots = cls.__dict__.get("__slots__", ())
    return (slots,) if isinstance(slots, str) else tuple(slots)


def _guaranteed(annotation: Any) -> bool:
    """True when the structure hook of ``annotation`` gives a value its type check accepts."""
    if annotation in _GUARANTEED:
        return True
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        arguments = typing.get_args(annotation)
        others = [argument for argument in arguments if argument is not type(None)]
        # ``X | None``: cattrs gives None for None, and X's hook's value otherwise.
        return len(arguments) == 2 and len(others) == 1 and _guaranteed(others[0])
    return False


def _direct(event_class: type[Event], plan: list[_Field]) -> Structure:
    new = object.__new__
    set_field = object.__setattr__  # past the frozen class's refusal, as attrs' __init__ does
    name_of_class = event_class.__name__

    def structure(document: Any) -> Event:
        if not isinstance(document, dict):
            raise TypeError(f"{name_of_class}: the document is not a JSON object")
        event = new(event_class)
        for name, hook, annotation, default, check, full in plan:
            if name in document:
                try:
                    value = hook(document[name], annotation)
                except Exception as error:
                    raise ValueError(f"{name_of_class}: {name}: {error!r}") from error
            elif default is _NOT_GIVEN:
                raise KeyError(f"{name_of_class}: {name} is missing")
            else:
                value = default.factory() if isinstance(default, attrs.Factory) else default  # type: ignore[arg-type]
                check = full
            if check is not None:
                problem = check(value)
                if problem is not None:
                    raise ValueError(f"{name_of_class}: {name}: {problem}")
            set_field(event, name, value)
        return event

    return structure

"""Aggregate state for snapshots: its fingerprint, and its document in both directions.

A snapshot stores the aggregate's declared state (its annotated attributes) as a JSON document,
with a fingerprint of the state's shape (``state_schema``): a snapshot written for another shape
of the class is ignored, never misapplied. Sealing a state that holds personal data is the
mapper's job (``personal.seal_state``); this module only turns values into documents and back.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import typing
from collections.abc import Mapping
from typing import Any

import attrs

from framework.domain import Aggregate, aggregate_state_fields, undeclared_state
from framework.errors import DefinitionError
from framework.mapping.converter import converter
from framework.subjects import Subject


class SnapshotStateError(DefinitionError):
    """An aggregate holds state that a snapshot would silently lose."""


@attrs.frozen
class DecodedState:
    """A snapshot's attribute values and the subjects whose personal data they hold."""

    values: Mapping[str, Any]
    subjects: frozenset[Subject] = frozenset()


def state_document(aggregate: Aggregate) -> dict[str, Any]:
    """The declared state of ``aggregate`` as a JSON-ready document.

    Raises ``SnapshotStateError`` when the aggregate set attributes it does not declare: a
    snapshot would lose them.
    """
    undeclared = undeclared_state(aggregate)
    if undeclared:
        raise SnapshotStateError(
            f"{type(aggregate).__name__} sets attributes that are not declared as annotated "
            f"state ({', '.join(undeclared)}); annotate them on the class so snapshots keep them"
        )
    fields = aggregate_state_fields(type(aggregate))
    state = vars(aggregate)
    return {
        name: converter.unstructure(state[name], hint)
        for name, hint in fields.items()
        if name in state
    }


def state_values(aggregate_class: type[Aggregate], document: Any) -> dict[str, Any]:
    """The attribute values of ``aggregate_class`` in a snapshot's document."""
    if not isinstance(document, dict):
        raise ValueError("snapshot state is not a JSON object")
    fields = aggregate_state_fields(aggregate_class)
    return {
        name: converter.structure(value, fields[name])
        for name, value in document.items()
        if name in fields
    }


def state_schema(aggregate_class: type[Aggregate]) -> str:
    """A fingerprint of the aggregate's declared state, stored with each snapshot.

    Any change to the shape of the state changes the fingerprint: a state attribute added,
    removed, renamed or retyped, the same for a field of a nested attrs class or dataclass (at any
    depth, inside generics too), an enum's members or values, or the class's
    ``__snapshot_version__``. Older snapshots are then ignored in favour of a full replay: a
    snapshot is never applied to a class it was not written by.
    """
    fields = aggregate_state_fields(aggregate_class)
    described = ";".join(
        f"{name}:{_describe_type(hint, frozenset())[0]}" for name, hint in sorted(fields.items())
    )
    version = getattr(aggregate_class, "__snapshot_version__", 1)
    text = f"{aggregate_class.aggregate_type()}|{version}|{described}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _describe_type(hint: Any, seen: frozenset[type]) -> tuple[str, bool]:
    """The text of ``hint`` in a state fingerprint, and whether it has a structure of its own.

    Attrs classes and dataclasses are described by their fields, enums by their members and
    values, generics by their arguments, recursively; ``seen`` holds the classes being described
    on the way down, so a class that refers to itself ends the recursion. A type made only of
    plain types keeps the text it always had (``repr`` for generics), so snapshots of such
    states stay valid across this change.
    """
    arguments = typing.get_args(hint)
    if arguments:
        parts = [_describe_type(argument, seen) for argument in arguments]
        if not any(structured for _, structured in parts):
            return repr(hint), False
        origin = typing.get_origin(hint)
        return f"{origin!r}[{','.join(text for text, _ in parts)}]", True
    if not isinstance(hint, type):
        return repr(hint), False
    name = f"{hint.__module__}.{hint.__qualname__}"
    if hint in seen:
        return name, True
    if issubclass(hint, enum.Enum):
        return name + "(" + ",".join(f"{m.name}={m.value!r}" for m in hint) + ")", True
    if attrs.has(hint) or dataclasses.is_dataclass(hint):
        try:
            hints = typing.get_type_hints(hint)
        except (NameError, TypeError):
            hints = {}
        if attrs.has(hint):
            names = [f.name for f in attrs.fields(hint)]
        else:
            names = [f.name for f in dataclasses.fields(hint)]  # type: ignore[arg-type]
        inner = ";".join(
            f"{field}:{_describe_type(hints.get(field, Any), seen | {hint})[0]}" for field in names
        )
        return f"{name}{{{inner}}}", True
    return name, False

"""Run-time type checks for the fields of commands and events.

attrs does not check types, and a command that carries ``"5"`` where a ``Decimal`` belongs would
otherwise travel all the way into the event store. The checks here run when a command or event is
built, so bad input fails at the door with a message naming the field, before anything is written.

Checkers are built once per class from its resolved type hints and cached; a field whose annotation
cannot be resolved (a forward reference to a class local to a function) is not checked rather than
guessed at.
"""

from __future__ import annotations

import datetime as dt
import sys
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

import attrs

Checker = Callable[[Any], str | None]
"""Returns ``None`` when the value fits, else a short description of the mismatch."""

_class_checkers: dict[type, tuple[tuple[str, Checker], ...]] = {}


def check_fields(instance: Any) -> list[str]:
    """Return one message per field of the attrs ``instance`` whose value does not fit its type."""
    cls = type(instance)
    checkers = _class_checkers.get(cls)
    if checkers is None:
        checkers = _build_class_checkers(cls)
        _class_checkers[cls] = checkers
    problems = []
    for name, checker in checkers:
        problem = checker(getattr(instance, name))
        if problem is not None:
            problems.append(f"{name}: {problem}")
    return problems


def _build_class_checkers(cls: type) -> tuple[tuple[str, Checker], ...]:
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError):
        hints = {}
    checkers = []
    for field in attrs.fields(cls):
        annotation = hints.get(field.name, field.type)
        if isinstance(annotation, str):
            annotation = _resolve_one(cls, annotation)
        if annotation is None:
            continue
        checkers.append((field.name, checker_for(annotation)))
    return tuple(checkers)


def _resolve_one(cls: type, annotation: str) -> Any:
    """Resolve one string annotation, or ``None`` when it names something out of reach."""
    module = sys.modules.get(cls.__module__)
    namespace = dict(vars(module)) if module is not None else {}
    try:
        return eval(annotation, namespace, dict(vars(cls)))  # the same lookup get_type_hints does
    except Exception:
        return None


_UNRESOLVED = object()
_text_kinds: dict[tuple[type, str], str | None] = {}


def text_field_kind(cls: type, name: str) -> str | None:
    """Whether the attrs field ``name`` of ``cls`` holds text, read from its annotation.

    ``"str"``, ``"optional"`` (``str | None``), ``"other"``, or ``None`` when the annotation cannot
    be resolved (a name local to a function, under ``from __future__ import annotations``): the
    domain refuses a personal field that is not text when its class is defined, and must not guess
    when it cannot tell. Cached per class and field.
    """
    key = (cls, name)
    if key in _text_kinds:
        return _text_kinds[key]
    field = attrs.fields_dict(cls)[name]
    annotation: Any = field.type
    if isinstance(annotation, str):
        module = sys.modules.get(cls.__module__)
        namespace = dict(vars(module)) if module is not None else {}
        try:
            annotation = eval(annotation, namespace, dict(vars(cls)))
        except Exception:
            annotation = _UNRESOLVED
    kind: str | None
    if annotation is _UNRESOLVED:
        kind = None
    elif annotation is str:
        kind = "str"
    elif set(typing.get_args(annotation)) == {str, type(None)}:
        kind = "optional"
    else:
        kind = "other"
    _text_kinds[key] = kind
    return kind


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _isinstance_checker(expected: type) -> Checker:
    def check(value: Any) -> str | None:
        if isinstance(value, expected):
            return None
        return f"expected {expected.__name__}, got {_describe(value)}"

    return check


def _int_checker(value: Any) -> str | None:
    # bool is a subclass of int, but True is never a meaningful count or amount.
    if isinstance(value, int) and not isinstance(value, bool):
        return None
    return f"expected int, got {_describe(value)}"


def _float_checker(value: Any) -> str | None:
    if isinstance(value, float | int) and not isinstance(value, bool):
        return None
    return f"expected float, got {_describe(value)}"


def _datetime_checker(value: Any) -> str | None:
    if not isinstance(value, dt.datetime):
        return f"expected datetime, got {_describe(value)}"
    if value.tzinfo is None:
        return "expected a timezone-aware datetime (naive datetimes are ambiguous once stored)"
    return None


def _decimal_checker(value: Any) -> str | None:
    if not isinstance(value, Decimal):
        return f"expected Decimal, got {_describe(value)}"
    if not value.is_finite():
        # NaN never equals itself and raises in comparisons: it would break the rules that
        # compare amounts, and no stored event could be checked for equality again.
        return f"expected a finite Decimal, got {value}"
    return None


def _any_checker(value: Any) -> str | None:
    return None


def checker_for(annotation: Any) -> Checker:
    """Build a checker for one type annotation."""
    if annotation is Any or annotation is object:
        return _any_checker
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return _union_checker(args)
    if origin is typing.Literal:
        allowed = args

        def check_literal(value: Any) -> str | None:
            if value in allowed:
                return None
            return f"expected one of {allowed!r}, got {_describe(value)}"

        return check_literal
    if origin is typing.ClassVar:
        return _any_checker
    if origin is not None:
        return _generic_checker(origin, args)
    if annotation is int:
        return _int_checker
    if annotation is float:
        return _float_checker
    if annotation is dt.datetime:
        return _datetime_checker
    if annotation is Decimal:
        return _decimal_checker
    if isinstance(annotation, type):
        return _isinstance_checker(annotation)
    return _any_checker


def _union_checker(args: tuple[Any, ...]) -> Checker:
    options = [checker_for(arg) for arg in args]
    names = " | ".join(getattr(arg, "__name__", repr(arg)) for arg in args)

    def check(value: Any) -> str | None:
        for option in options:
            if option(value) is None:
                return None
        return f"expected {names}, got {_describe(value)}"

    return check


def _generic_checker(origin: Any, args: tuple[Any, ...]) -> Checker:
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        item = checker_for(args[0])
        return _collection_checker(tuple, item)
    if origin is tuple:
        items = [checker_for(arg) for arg in args]

        def check_tuple(value: Any) -> str | None:
            if not isinstance(value, tuple) or len(value) != len(items):
                return f"expected a tuple of {len(items)} items, got {_describe(value)}"
            for index, (element, check) in enumerate(zip(value, items, strict=True)):
                problem = check(element)
                if problem is not None:
                    return f"item {index}: {problem}"
            return None

        return check_tuple
    if origin in (list, frozenset, set) or origin is typing.AbstractSet:
        item = checker_for(args[0]) if args else _any_checker
        return _collection_checker(origin, item)
    if origin in (dict, Mapping) or origin is typing.Mapping:
        key = checker_for(args[0]) if args else _any_checker
        val = checker_for(args[1]) if len(args) > 1 else _any_checker
        return _mapping_checker(key, val)
    if isinstance(origin, type):
        return _isinstance_checker(origin)
    return _any_checker


def _collection_checker(container: type, item: Checker) -> Checker:
    def check(value: Any) -> str | None:
        if not isinstance(value, container):
            return f"expected {container.__name__}, got {_describe(value)}"
        elements = typing.cast(Iterable[Any], value)
        for index, element in enumerate(elements):
            problem = item(element)
            if problem is not None:
                return f"item {index}: {problem}"
        return None

    return check


def _mapping_checker(key: Checker, val: Checker) -> Checker:
    def check(value: Any) -> str | None:
        if not isinstance(value, Mapping):
            return f"expected a mapping, got {_describe(value)}"
        for k, v in value.items():
            problem = key(k) or val(v)
            if problem is not None:
                return f"key {k!r}: {problem}"
        return None

    return check

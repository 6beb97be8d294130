"""The domain layer: aggregates, commands, events and the decorators that wire handlers.

This module depends on the standard library and attrs only, so that a domain model can be read,
tested and reasoned about without any knowledge of DynamoDB, serialization or logging.

Commands and events are frozen attrs classes; what the framework needs to know about their fields
is said with class keywords, so that the fields stay plain attrs fields that type checkers read
as they are::

    @frozen
    class Deposit(Command, target="account_id"):
        account_id: str
        amount: Decimal

    @frozen
    class AccountOpened(Event, personal={"owner": subject_of("User", field="owner_id")}):
        owner: str
        owner_id: str

Aggregates declare their handlers with decorators; the handler tables are built once, when the class
is defined, so a handler declared twice or for the wrong kind of class fails at import time instead
of in the middle of a request.
"""

from __future__ import annotations

import ast
import copy
import datetime as dt
import enum
import inspect
import os
import textwrap
import types
import typing
import uuid
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any, ClassVar, Self, TypeVar

import attrs

from framework.errors import (
    DefinitionError,
    DomainError,
    InvalidCommand,
    InvalidEvent,
    MissingEventHandler,
)
from framework.store.keys import check_aggregate_type, check_claim, check_command_id
from framework.subjects import ERASED, Subject
from framework.typecheck import check_fields, text_field_kind

__all__ = [
    "Aggregate",
    "Command",
    "DomainError",
    "Event",
    "command_handler",
    "event_handler",
    "subject_of",
]

_COMMAND_MARK = "__framework_command_handler__"
_EVENT_MARK = "__framework_event_handler__"

F = TypeVar("F", bound=Callable[..., Any])


def new_id() -> str:
    """A fresh random identifier: a version 4 UUID, as ``str(uuid.uuid4())`` writes it.

    Every command and change set takes one, so it is spelled out from 16 random bytes instead of
    going through ``uuid.UUID``'s integer arithmetic (about three times the work).
    """
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


@attrs.frozen
class Event:
    """Base class of domain events: something that happened, named in the past tense.

    An event class has a stable *type name* and a *schema version*, stored with every event; they
    default to the class name and 1 and can be set with class keywords, so that a class can be
    renamed without orphaning the events already stored::

        @frozen
        class Deposited(Event, name="MoneyDeposited", version=2):
            amount: Decimal

    The ``personal=`` keyword names the fields that hold personal data: stored encrypted (with
    the key of their *subject*, by default the aggregate whose stream holds the event) and read
    back as ``ERASED`` (``None`` for an optional field) once the subject is forgotten. Only text
    fields (``str`` or ``str | None``) can be personal. A field that holds another aggregate's
    data names it with ``subject_of``::

        @frozen
        class UserRegistered(Event, personal=("name", "email")):
            name: str
            email: str

        @frozen
        class AccountOpened(Event, personal={"owner": subject_of("User", field="owner_id")}):
            owner: str
            owner_id: str

    Class keywords rather than field markers, so that the fields stay plain attrs fields: a type
    checker reads them as they are (a marker with a default would make every later field need
    one too). A keyword that names no field of the class is refused when the class is defined.
    """

    def __init_subclass__(
        cls,
        *,
        name: str | None = None,
        version: int | None = None,
        forgets_subject: bool | None = None,
        personal: PersonalDeclaration | None = None,
    ) -> None:
        # No **kwargs: a misspelt class keyword is then a type error, not only a run-time one.
        super().__init_subclass__()
        if personal is not None:
            cls.__personal__ = _declared_personal(cls, cls.__personal__, personal)
        if forgets_subject is not None:
            cls.__forgets_subject__ = forgets_subject
        # attrs rebuilds slotted classes (without the class keywords) and copies the class
        # namespace, so keep what the first pass set instead of resetting it to the defaults.
        if name is not None:
            cls.__event_name__ = name
        elif "__event_name__" not in cls.__dict__:
            cls.__event_name__ = cls.__name__
        if version is not None:
            if not isinstance(version, int) or isinstance(version, bool) or version < 1:
                raise DefinitionError(f"{cls.__name__}: version must be an int >= 1")
            cls.__event_version__ = version
        elif "__event_version__" not in cls.__dict__:
            cls.__event_version__ = 1
        if "__attrs_attrs__" in cls.__dict__:  # attrs' own pass: the fields are known now
            _check_declared_fields(cls)

    __event_name__: ClassVar[str] = "Event"
    __event_version__: ClassVar[int] = 1
    __forgets_subject__: ClassVar[bool] = False
    """True for an event that erases its aggregate's personal data once committed: the key of its
    stream's subject is tombstoned. ``class UserForgotten(Event, forgets_subject=True)``."""
    __personal__: ClassVar[tuple[PersonalField, ...]] = ()
    """The fields that hold personal data (``personal=``): stored encrypted with their subject's
    key, erased when the subject is forgotten, never logged."""

    def __attrs_post_init__(self) -> None:
        problems = check_fields(self)
        if problems:
            raise InvalidEvent(f"{type(self).__name__}: " + "; ".join(problems))


def event_type_name(event_class: type[Event]) -> str:
    """The stable name under which events of this class are stored."""
    return event_class.__event_name__


def event_schema_version(event_class: type[Event]) -> int:
    """The schema version written with events of this class."""
    return event_class.__event_version__


@attrs.frozen
class Command:
    """Base class of commands: a request to change one or more aggregates.

    The ``target=`` class keyword names the field that holds the id of the aggregate the command
    is addressed to (required for a command handled by an aggregate's method); ``personal=``
    names fields whose values are kept out of the framework's logs (see ``Event``)::

        @frozen
        class ChangeEmail(Command, target="user_id", personal=("email",)):
            user_id: str
            email: str

    ``command_id`` makes the command idempotent: handling a command whose id was already processed
    returns the first result and writes nothing. Pass your own (for example an HTTP
    ``Idempotency-Key``) to make retries by clients safe. ``correlation_id`` and ``causation_id``
    are copied onto every event the command produces.
    """

    command_id: str = attrs.field(factory=new_id, kw_only=True)
    correlation_id: str | None = attrs.field(default=None, kw_only=True)
    causation_id: str | None = attrs.field(default=None, kw_only=True)

    __target__: ClassVar[str | None] = None
    """The field that names the aggregate the command is addressed to (``target=``)."""
    __personal__: ClassVar[tuple[PersonalField, ...]] = ()
    """The fields whose values are never logged (``personal=``)."""

    def __init_subclass__(
        cls,
        *,
        target: str | None = None,
        personal: PersonalDeclaration | None = None,
    ) -> None:
        # No **kwargs: a misspelt class keyword is then a type error, not only a run-time one.
        super().__init_subclass__()
        # As for events: attrs' second pass comes without the keywords, the first pass's
        # values are in the namespace it copies.
        if target is not None:
            if not isinstance(target, str) or not target.isidentifier():
                raise DefinitionError(
                    f"{cls.__name__}: target= takes the name of a field, got {target!r}"
                )
            cls.__target__ = target
        if personal is not None:
            cls.__personal__ = _declared_personal(cls, cls.__personal__, personal)
        if "__attrs_attrs__" in cls.__dict__:
            _check_declared_fields(cls)

    def __attrs_post_init__(self) -> None:
        problems = check_fields(self)
        if problems:
            raise InvalidCommand(f"{type(self).__name__}: " + "; ".join(problems))
        # Checked here, not at commit: a command id too long for its record's key is refused
        # before any handler runs.
        check_command_id(self.command_id)


@attrs.frozen
class PersonalField:
    """A field declared personal: its name and whose data it is.

    ``subject_field``/``subject_type`` name another aggregate as the subject (the field holding
    its id, and its type); both ``None`` means the aggregate whose stream holds the event.
    """

    name: str
    subject_field: str | None = None
    subject_type: type[Aggregate] | str | None = None

    def subject(self, message: Any, own: Subject) -> Subject:
        """The subject of this field's value in ``message`` (an event of stream ``own``)."""
        if self.subject_field is None or self.subject_type is None:
            return own
        subject_id = getattr(message, self.subject_field)
        if subject_id is None:  # an optional owner left out: the data is the stream's own
            return own
        subject_type = self.subject_type
        type_name = subject_type if isinstance(subject_type, str) else subject_type.aggregate_type()
        return (type_name, subject_id)


@attrs.frozen
class SubjectOf:
    """The subject of a personal field that holds another aggregate's data (see ``subject_of``)."""

    aggregate: type[Aggregate] | str
    field: str

    def __attrs_post_init__(self) -> None:
        aggregate = self.aggregate
        if isinstance(aggregate, str):
            if not aggregate:
                raise DefinitionError("subject_of() needs an aggregate type name, got ''")
        elif not (isinstance(aggregate, type) and issubclass(aggregate, Aggregate)):
            raise DefinitionError(
                f"subject_of() takes an Aggregate class or its type name, got {aggregate!r}"
            )
        if not isinstance(self.field, str) or not self.field:
            raise DefinitionError(
                "subject_of() needs field=, the name of the field that holds the subject's id"
            )


def subject_of(aggregate: type[Aggregate] | str, *, field: str) -> SubjectOf:
    """Name whose data a personal field is, when it is not the stream's own aggregate's.

    ``personal={"owner": subject_of(User, field="owner_id")}`` seals ``owner`` with the key of the
    user whose id is in ``owner_id`` (an aggregate class, or its type name when the class cannot
    be imported here), so that forgetting that user erases it here too. When ``owner_id`` is
    optional and ``None``, the value is the stream's own.
    """
    return SubjectOf(aggregate, field)


PersonalDeclaration: typing.TypeAlias = "str | Iterable[str] | Mapping[str, SubjectOf | None]"
"""What the ``personal=`` class keyword takes: field names, or a mapping from field name to its
subject (``subject_of(...)``, or ``None`` for the stream's own aggregate)."""


def _declared_personal(
    cls: type, inherited: tuple[PersonalField, ...], declared: Any
) -> tuple[PersonalField, ...]:
    """The personal fields of ``cls``: its bases' and those its ``personal=`` keyword names."""
    entries: dict[Any, Any]
    if isinstance(declared, str):
        entries = {declared: None}
    elif isinstance(declared, Mapping):
        entries = dict(declared)
    elif isinstance(declared, Iterable):
        entries = dict.fromkeys(declared)
    else:
        raise DefinitionError(
            f"{cls.__name__}: personal= takes field names or a mapping of field names to "
            f"subject_of(...), got {declared!r}"
        )
    fields = {spec.name: spec for spec in inherited}
    for name, subject in entries.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise DefinitionError(f"{cls.__name__}: personal= takes field names, got {name!r}")
        if subject is None:
            fields[name] = PersonalField(name)
        elif isinstance(subject, SubjectOf):
            fields[name] = PersonalField(name, subject.field, subject.aggregate)
        else:
            raise DefinitionError(
                f"{cls.__name__}: personal field {name!r} maps to {subject!r}: use "
                "subject_of(AggregateClass, field=...), or None for the stream's own aggregate"
            )
    return tuple(fields.values())


def _check_declared_fields(cls: type) -> None:
    """Refuse a ``target=`` or ``personal=`` keyword of ``cls`` that names no field of its own.

    Runs when attrs builds the class (its fields are known then), so a typo fails at import; a
    class attrs did not rebuild is checked on first use instead. Event fields declared personal
    must be text (``str`` or ``str | None``): they are encrypted as text. A field whose annotation
    cannot be resolved yet is checked when the event is registered (``require_text_fields``).
    """
    fields = attrs.fields_dict(cls)
    target = getattr(cls, "__target__", None)
    if target is not None and target not in fields:
        raise DefinitionError(
            f"{cls.__name__} names {target!r} as its target, but has no field {target!r} "
            f"(its fields: {', '.join(fields)})"
        )
    specs: tuple[PersonalField, ...] = getattr(cls, "__personal__", ())
    names = {spec.name for spec in specs}
    for spec in specs:
        if spec.name not in fields:
            raise DefinitionError(
                f"{cls.__name__} declares {spec.name!r} personal, but has no field "
                f"{spec.name!r} (its fields: {', '.join(fields)})"
            )
        if spec.subject_field is not None and (
            spec.subject_field not in fields or spec.subject_field in names
        ):
            raise DefinitionError(
                f"{cls.__name__}.{spec.name} names {spec.subject_field!r} as the id of its "
                "subject: that must be a str (or str | None) field of the event, not itself "
                "personal"
            )
    if issubclass(cls, Event):
        _check_text_fields(cls, specs, strict=False)


def _check_text_fields(cls: type, specs: tuple[PersonalField, ...], *, strict: bool) -> None:
    for spec in specs:
        kind = text_field_kind(cls, spec.name)
        if kind == "other" or (strict and kind is None):
            annotation = attrs.fields_dict(cls)[spec.name].type
            found = "its annotation %r cannot be resolved" if kind is None else "it is %r"
            raise DefinitionError(
                f"{cls.__name__}.{spec.name} is declared personal but {found % (annotation,)}: "
                "personal fields must be str or str | None"
            )
        if spec.subject_field is None:
            continue
        kind = text_field_kind(cls, spec.subject_field)
        if kind == "other" or (strict and kind is None):
            raise DefinitionError(
                f"{cls.__name__}.{spec.name} names {spec.subject_field!r} as the id of its "
                "subject: that must be a str (or str | None) field of the event, not itself "
                "personal"
            )


def require_text_fields(event_class: type[Event]) -> None:
    """Refuse an event whose personal fields (or their subjects' ids) are not text.

    Called when the event class is registered, by which time every annotation the class
    definition could not resolve yet must resolve.
    """
    _check_text_fields(event_class, personal_specs(event_class), strict=True)


_personal_fields: dict[type, tuple[PersonalField, ...]] = {}


def personal_specs(message_class: type) -> tuple[PersonalField, ...]:
    """The fields of an event or command class declared personal (``personal=``)."""
    known = _personal_fields.get(message_class)
    if known is None:
        _check_declared_fields(message_class)
        known = getattr(message_class, "__personal__", ())
        _personal_fields[message_class] = known
    return known


def personal_fields(message_class: type) -> tuple[str, ...]:
    """The names of the fields of ``message_class`` declared personal."""
    return tuple(spec.name for spec in personal_specs(message_class))


def personal_subjects(event: Event, own: Subject) -> set[Subject]:
    """The subjects whose personal data ``event`` carries in clear (erased values count not)."""
    found: set[Subject] = set()
    for spec in personal_specs(type(event)):
        value = getattr(event, spec.name)
        if value is not None and value != ERASED:
            found.add(spec.subject(event, own))
    return found


_target_fields: dict[type, str | None] = {}


def command_target_field(command_class: type[Command]) -> str | None:
    """The field named by the command's ``target=`` class keyword (``None`` when it has none)."""
    if command_class in _target_fields:
        return _target_fields[command_class]
    _check_declared_fields(command_class)
    result = command_class.__target__
    _target_fields[command_class] = result
    return result


@attrs.frozen
class CommandHandlerSpec:
    """What ``@command_handler`` records on the function it decorates."""

    command_type: type[Command]
    creates: bool | None


def _require_message_class(kind: str, base: type, candidate: Any) -> None:
    if not (isinstance(candidate, type) and issubclass(candidate, base)):
        raise DefinitionError(
            f"@{kind}_handler needs a subclass of {base.__name__}, got {candidate!r}"
        )
    # attrs.has() is true for an undecorated subclass too (it inherits the base's fields), so
    # look for the class's own attrs definition: a forgotten @frozen would drop every field.
    if "__attrs_attrs__" not in vars(candidate):
        raise DefinitionError(
            f"{candidate.__name__} must be an attrs class: decorate it with @attrs.frozen"
        )


def command_handler(
    command_type: type[Command], *, creates: bool | None = False
) -> Callable[[F], F]:
    """Declare the handler of ``command_type``.

    On an ``Aggregate`` method, ``handler(self, command)``: the aggregate is named by the
    command's target field (``class Deposit(Command, target="account_id")``) and is loaded
    (``creates=False``, the default: a missing aggregate is ``AggregateNotFound``), created fresh
    (``creates=True``: an existing one is ``AggregateAlreadyExists``), or loaded if it exists and
    created otherwise (``creates=None``). On a plain function, ``handler(uow, command)``,
    registered with the ``Application``: for commands that touch several aggregates, all
    committed in one transaction.

    A handler whose command parameter is annotated with another command class is refused here:
    ``@command_handler(Deposit)`` on ``def withdraw(self, command: Withdraw)`` would route
    deposits to the code written for withdrawals, and nothing else would notice.
    """
    _require_message_class("command", Command, command_type)

    def mark(func: F) -> F:
        _check_message_parameter("command", Command, command_type, func, inspect.currentframe())
        setattr(func, _COMMAND_MARK, CommandHandlerSpec(command_type, creates))
        return func

    return mark


def event_handler(event_type: type[Event]) -> Callable[[F], F]:
    """Declare the method that applies ``event_type`` to an aggregate's (or projector's) state.

    As with ``command_handler``, a method whose event parameter is annotated with another event
    class is refused.
    """
    _require_message_class("event", Event, event_type)

    def mark(func: F) -> F:
        _check_message_parameter("event", Event, event_type, func, inspect.currentframe())
        setattr(func, _EVENT_MARK, event_type)
        return func

    return mark


_UNRESOLVED: Any = object()


def _check_message_parameter(
    kind: str, base: type, message_type: type, func: Any, frame: types.FrameType | None
) -> None:
    """Refuse a handler whose message parameter (the second one) is annotated with another class.

    The annotation is resolved the way the interpreter would see it where the handler is defined:
    module globals, and for a class defined inside a function, the class body and the function's
    locals (read from the frame that applies the decorator). What cannot be resolved (a name
    imported only for type checkers, a class defined further down) is compared by name with the
    message classes that exist; anything else that is not plainly a message class (``Any``, a
    type variable, a protocol) is accepted: a correct handler is never refused.
    """
    target = func.__func__ if isinstance(func, staticmethod | classmethod) else func
    if not inspect.isfunction(target):
        return
    code = target.__code__
    positional = code.co_varnames[: code.co_argcount]
    if len(positional) < 2:
        return
    parameter = positional[1]
    annotation = target.__annotations__.get(parameter)
    if annotation is None:
        return
    caller = frame.f_back if frame is not None else None
    resolved = _resolve_annotation(annotation, target.__globals__, caller)
    if resolved is _UNRESOLVED:
        accepted = _accepts_by_name(annotation, base, message_type)
    else:
        accepted = _accepts(resolved, base, message_type)
    if not accepted:
        shown = (
            annotation
            if isinstance(annotation, str)
            else getattr(annotation, "__name__", repr(annotation))
        )
        raise DefinitionError(
            f"{target.__qualname__} is declared @{kind}_handler({message_type.__name__}) but its "
            f"parameter {parameter!r} is annotated {shown}: it is called with "
            f"{message_type.__name__} {kind}s"
        )


def _resolve_annotation(
    annotation: Any, module_globals: dict[str, Any], caller: types.FrameType | None
) -> Any:
    if not isinstance(annotation, str):
        return annotation
    scopes: list[dict[str, Any]] = []
    frame = caller
    # The class bodies the decorator is applied in, innermost first, then the function around
    # them (not a module's frame: its locals are the globals, or an importer's own variables).
    while frame is not None and "__qualname__" in frame.f_locals and "__module__" in frame.f_locals:
        scopes.append(frame.f_locals)
        frame = frame.f_back
    if frame is not None and frame.f_locals is not frame.f_globals:
        scopes.append(frame.f_locals)
    try:
        namespace: dict[str, Any] = {}
        for scope in reversed(scopes):  # the innermost scope wins
            namespace.update(scope)
        return eval(annotation, module_globals, namespace)
    except Exception:
        return _UNRESOLVED


def _plain_classes(annotation: Any) -> list[type] | None:
    """The classes a resolved annotation admits (``None`` when it is not plain classes)."""
    if annotation is None or annotation is type(None):
        return []
    if inspect.isclass(annotation) and not isinstance(annotation, types.GenericAlias):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        found: list[type] = []
        for argument in typing.get_args(annotation):
            classes = _plain_classes(argument)
            if classes is None:
                return None
            found.extend(classes)
        return found
    if origin is typing.Annotated:
        return _plain_classes(typing.get_args(annotation)[0])
    return None


def _accepts(annotation: Any, base: type, message_type: type) -> bool:
    classes = _plain_classes(annotation)
    if not classes:
        return True
    try:
        if any(issubclass(message_type, cls) for cls in classes):
            return True
        return not all(issubclass(cls, base) for cls in classes)
    except TypeError:
        return True


def _accepts_by_name(annotation: str, base: type, message_type: type) -> bool:
    try:
        tree = ast.parse(annotation, mode="eval").body
    except SyntaxError:
        return True
    names: list[str] = []
    parts = [tree]
    while parts:
        part = parts.pop()
        if isinstance(part, ast.BinOp) and isinstance(part.op, ast.BitOr):
            parts += [part.left, part.right]
        elif isinstance(part, ast.Name):
            names.append(part.id)
        elif isinstance(part, ast.Attribute):
            names.append(part.attr)
        elif not (isinstance(part, ast.Constant) and part.value is None):
            return True  # something other than a union of class names: cannot tell
    own = {cls.__name__ for cls in message_type.__mro__}
    if not names or any(name in own for name in names):
        return True
    known = {cls.__name__ for cls in _all_subclasses(base)}
    return not all(name in known for name in names)


def _all_subclasses(base: type) -> set[type]:
    found: set[type] = set()
    pending = [base]
    while pending:
        subclasses: list[type] = pending.pop().__subclasses__()
        for sub in subclasses:
            if sub not in found:
                found.add(sub)
                pending.append(sub)
    return found


def command_handler_spec(func: Any) -> CommandHandlerSpec | None:
    """The ``@command_handler`` declaration on ``func``, if any."""
    spec = getattr(func, _COMMAND_MARK, None)
    return spec if isinstance(spec, CommandHandlerSpec) else None


def collect_event_handlers(cls: type) -> dict[type[Event], Callable[..., Any]]:
    """Build the event handler table of ``cls`` from the ``@event_handler`` methods in its MRO.

    A subclass may override a handler by redefining the method under the same name; two methods
    of different names for one event type are ambiguous and refused.
    """
    return _collect(cls, _EVENT_MARK, lambda mark: mark)


def collect_command_handlers(
    cls: type,
) -> dict[type[Command], tuple[Callable[..., Any], CommandHandlerSpec]]:
    """Build the command handler table of ``cls`` (see ``collect_event_handlers``)."""
    table = _collect(cls, _COMMAND_MARK, lambda spec: spec.command_type)
    return {
        command_type: (func, getattr(func, _COMMAND_MARK)) for command_type, func in table.items()
    }


def _collect(cls: type, mark: str, key_of: Callable[[Any], type]) -> dict[Any, Callable[..., Any]]:
    by_name: dict[str, tuple[type, Callable[..., Any]]] = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            func = value.__func__ if isinstance(value, staticmethod | classmethod) else value
            declared = getattr(func, mark, None)
            if declared is not None:
                by_name[name] = (key_of(declared), func)
            elif name in by_name:
                # An undecorated override replaces the decorated method of a base class.
                del by_name[name]
    table: dict[Any, Callable[..., Any]] = {}
    owners: dict[Any, str] = {}
    for name, (key, func) in by_name.items():
        if key in table:
            raise DefinitionError(
                f"{cls.__name__} declares two handlers for {key.__name__}: "
                f"{owners[key]}() and {name}()"
            )
        table[key] = func
        owners[key] = name
    return table


class Aggregate:
    """Base class of aggregates: a consistency boundary rebuilt from its own stream of events.

    State changes only through events: a command handler checks the rules and calls
    ``self.emit(event)``, which applies the event through its ``@event_handler`` at once and
    records it for the unit of work to commit. State attributes should be annotated on the class
    (``balance: Decimal``): the annotations are what snapshots serialize.

    The aggregate type name stored with its events defaults to the class name and can be set with
    a class keyword: ``class Account(Aggregate, name="BankAccount")``.
    """

    __aggregate_type__: ClassVar[str] = "Aggregate"
    _event_handlers: ClassVar[dict[type[Event], Callable[..., Any]]] = {}
    _command_handlers: ClassVar[
        dict[type[Command], tuple[Callable[..., Any], CommandHandlerSpec]]
    ] = {}
    _mutable_defaults: ClassVar[dict[str, Any]] = {}

    id: str
    version: int

    def __init_subclass__(cls, *, name: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.__aggregate_type__ = check_aggregate_type(cls.__name__ if name is None else name)
        cls._event_handlers = collect_event_handlers(cls)
        cls._command_handlers = collect_command_handlers(cls)
        cls._mutable_defaults = _mutable_state_defaults(cls)
        for command_type in cls._command_handlers:
            if command_target_field(command_type) is None:
                raise DefinitionError(
                    f"{cls.__name__} handles {command_type.__name__}, which names no target: "
                    f'declare it with class {command_type.__name__}(Command, target="<field>") '
                    "so that the application can tell which aggregate to load"
                )

    def __init__(self, aggregate_id: str) -> None:
        self.id = aggregate_id
        self.version = 0
        self._pending_events: list[Event] = []
        self._pending_claims: list[UniqueClaimRequest] = []
        # Whose personal data the state holds (from the events applied), so that a snapshot is
        # sealed with each of their keys and a forget can find the cached copies.
        self._personal_subjects: set[Subject] = set()
        # A class-level default such as ``items: list[str] = []`` is one object shared by every
        # instance: appending to one cart's items would change every cart's. Each instance gets
        # its own copy (defaults of immutable types are shared, as they safely can be).
        for name, default in self._mutable_defaults.items():
            setattr(self, name, copy.deepcopy(default))

    @classmethod
    def aggregate_type(cls) -> str:
        """The stable type name stored with this aggregate's events."""
        return cls.__aggregate_type__

    @classmethod
    def handled_event_types(cls) -> Iterable[type[Event]]:
        """Event classes this aggregate applies."""
        return cls._event_handlers.keys()

    @classmethod
    def handled_command_types(cls) -> Mapping[type[Command], CommandHandlerSpec]:
        """Command classes this aggregate handles, with their declarations."""
        return {t: spec for t, (_, spec) in cls._command_handlers.items()}

    def emit(self, event: Event) -> None:
        """Apply ``event`` to this aggregate now and record it to be committed."""
        if not isinstance(event, Event):
            raise InvalidEvent(f"emit() takes an Event, got {type(event).__name__}")
        self.apply_history(event)
        self._pending_events.append(event)

    def claim_unique(self, scope: str, value: str) -> None:
        """Claim ``value`` in ``scope`` (e.g. an email address) for this aggregate.

        The claim is written in the same transaction as the events; if another aggregate holds the
        value, the whole command fails with ``UniqueConstraintViolated`` and nothing is written.
        An empty scope or value, or one too long for its key, raises ``InvalidIdentifier``.
        """
        check_claim(scope, value)
        self._pending_claims.append(UniqueClaimRequest(scope, value, claim=True))

    def release_unique(self, scope: str, value: str) -> None:
        """Give up this aggregate's claim on ``value`` in ``scope``, in the same transaction."""
        check_claim(scope, value)
        self._pending_claims.append(UniqueClaimRequest(scope, value, claim=False))

    def handle_command(self, command: Command) -> Any:
        """Run this aggregate's handler for ``command`` (the unit of work calls this)."""
        entry = self._command_handlers.get(type(command))
        if entry is None:
            raise DefinitionError(
                f"{type(self).__name__} has no @command_handler for {type(command).__name__}"
            )
        return entry[0](self, command)

    def apply_history(self, event: Event) -> None:
        """Apply a stored event: run its ``@event_handler`` and count the version.

        The repository replays a stream through this; ``emit`` applies a new event the same
        way and records it to be committed.
        """
        handler = self._event_handlers.get(type(event))
        if handler is None:
            raise MissingEventHandler(self.aggregate_type(), type(event).__name__)
        handler(self, event)
        self.version += 1
        if personal_specs(type(event)):
            self._personal_subjects |= personal_subjects(event, (self.aggregate_type(), self.id))

    @classmethod
    def restore(
        cls,
        aggregate_id: str,
        version: int,
        state: Mapping[str, Any],
        subjects: Iterable[Subject] = (),
    ) -> Self:
        """An aggregate rebuilt from a snapshot: its declared state at ``version``.

        ``subjects`` are those whose personal data the state holds (a later snapshot is sealed
        with their keys, and forgetting one of them evicts the cached copy).
        """
        aggregate = cls(aggregate_id)
        for name, value in state.items():
            setattr(aggregate, name, value)
        aggregate.version = version
        aggregate._personal_subjects = set(subjects)
        return aggregate

    @property
    def personal_subjects(self) -> frozenset[Subject]:
        """The subjects whose personal data this aggregate's state was built from."""
        return frozenset(self._personal_subjects)

    def take_changes(self) -> PendingChanges:
        """The events and unique claims recorded since the last call, handed to be committed."""
        changes = PendingChanges(tuple(self._pending_events), tuple(self._pending_claims))
        self._pending_events, self._pending_claims = [], []
        return changes

    @property
    def has_pending_changes(self) -> bool:
        """True while the aggregate holds events or claims not yet committed."""
        return bool(self._pending_events or self._pending_claims)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id!r} v{self.version}>"


@attrs.frozen
class UniqueClaimRequest:
    """A claim (or release) of a unique value, made by an aggregate during a command."""

    scope: str
    value: str
    claim: bool


@attrs.frozen
class PendingChanges:
    """What an aggregate recorded during a command: new events and unique-value claims."""

    events: tuple[Event, ...]
    claims: tuple[UniqueClaimRequest, ...]


_FRAMEWORK_ATTRIBUTES = frozenset(
    {"id", "version", "_pending_events", "_pending_claims", "_personal_subjects"}
)


_state_fields: dict[type, Mapping[str, Any]] = {}


def aggregate_state_fields(cls: type[Aggregate]) -> Mapping[str, Any]:
    """The annotated state attributes of an aggregate class, with their types.

    These are what a snapshot stores. Class variables and the framework's own attributes are left
    out. Resolved once per class (``typing.get_type_hints`` compiles every string annotation
    anew, which cost more than reading a snapshot) and kept read-only.
    """
    known = _state_fields.get(cls)
    if known is not None:
        return known
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError) as error:
        raise DefinitionError(
            f"cannot resolve the state annotations of {cls.__name__}: {error}"
        ) from error
    fields: dict[str, Any] = {}
    for name, hint in hints.items():
        if name in _FRAMEWORK_ATTRIBUTES or name.startswith("__"):
            continue
        if typing.get_origin(hint) is ClassVar or hint is ClassVar:
            continue
        fields[name] = hint
    known = _state_fields[cls] = types.MappingProxyType(fields)
    return known


def undeclared_state(aggregate: Aggregate) -> list[str]:
    """Instance attributes set on ``aggregate`` that are not declared as annotated state."""
    declared = aggregate_state_fields(type(aggregate))
    return sorted(
        name
        for name in vars(aggregate)
        if name not in declared and name not in _FRAMEWORK_ATTRIBUTES
    )


_IMMUTABLE_DEFAULTS: tuple[type, ...] = (
    type(None),
    bool,
    int,
    float,
    complex,
    str,
    bytes,
    Decimal,
    frozenset,
    range,
    enum.Enum,
    dt.date,
    dt.time,
    dt.timedelta,
    uuid.UUID,
)


def _state_annotations(cls: type[Aggregate]) -> dict[str, Any]:
    """The raw annotations of ``cls`` and its bases below ``Aggregate`` (unresolved, cheap)."""
    names: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if klass is Aggregate or not issubclass(klass, Aggregate):
            continue
        names.update(vars(klass).get("__annotations__", {}))
    return names


def _is_class_var(annotation: Any) -> bool:
    if isinstance(annotation, str):
        return annotation.split("[", 1)[0].rsplit(".", 1)[-1] == "ClassVar"
    return annotation is ClassVar or typing.get_origin(annotation) is ClassVar


def _mutable_state_defaults(cls: type[Aggregate]) -> dict[str, Any]:
    """Annotated state attributes whose class-level default is mutable (copied per instance).

    Computed once per class, when it is defined; frozen attrs instances and tuples are copied
    too (they may hold mutable values), plain immutable values are not.
    """
    defaults: dict[str, Any] = {}
    for name, annotation in _state_annotations(cls).items():
        if name in _FRAMEWORK_ATTRIBUTES or name.startswith("__") or _is_class_var(annotation):
            continue
        for klass in cls.__mro__:
            if name in vars(klass):
                value = vars(klass)[name]
                break
        else:
            continue
        if isinstance(value, _IMMUTABLE_DEFAULTS) or callable(value) or hasattr(value, "__get__"):
            continue
        defaults[name] = value
    return defaults


def assigned_attributes(cls: type[Aggregate]) -> dict[str, str] | None:
    """Attributes the methods of ``cls`` assign on ``self``, each with a method that does it.

    Read from the source of every method defined below ``Aggregate`` in the class's MRO:
    ``self.x = ...``, tuple targets (``self.a, self.b = ...``), augmented (``self.x += 1``) and
    annotated (``self.x: int = 0``) assignments. Returns ``None`` when some source cannot be
    read (a class built at run time, a frozen application): the static check is then skipped.
    """
    found: dict[str, str] = {}
    for klass in cls.__mro__:
        if klass is Aggregate or not issubclass(klass, Aggregate):
            continue
        for method_name, value in vars(klass).items():
            func = value.__func__ if isinstance(value, staticmethod | classmethod) else value
            if isinstance(func, property):
                func = func.fset
            if not inspect.isfunction(func):
                continue
            try:
                tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
            except (OSError, TypeError, SyntaxError):
                return None
            for name in _self_assignments(tree):
                found.setdefault(name, f"{klass.__qualname__}.{method_name}()")
    return found


def _self_assignments(tree: ast.AST) -> list[str]:
    definition = next(
        (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)), None
    )
    if definition is None or not definition.args.args:
        return []
    receiver = definition.args.args[0].arg
    names: list[str] = []
    for node in ast.walk(definition):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        while targets:
            target = targets.pop()
            if isinstance(target, ast.Tuple | ast.List):
                targets.extend(target.elts)
            elif isinstance(target, ast.Starred):
                targets.append(target.value)
            elif (
                isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id == receiver
            ):
                names.append(target.attr)
    return names


def unsnapshottable_state(cls: type[Aggregate]) -> dict[str, str]:
    """Attributes the methods of ``cls`` set that a snapshot would lose: not annotated state.

    Empty when the source cannot be read (see ``assigned_attributes``). Attributes that are
    properties or other data descriptors on the class are not instance state and are left out.
    """
    assigned = assigned_attributes(cls)
    if not assigned:
        return {}
    declared = aggregate_state_fields(cls)
    return {
        name: where
        for name, where in sorted(assigned.items())
        if name not in declared
        and name not in _FRAMEWORK_ATTRIBUTES
        and not hasattr(inspect.getattr_static(cls, name, None), "__set__")
    }

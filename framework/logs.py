"""Logging set-up for applications and tools built on the framework.

Library code only ever calls ``structlog.get_logger``; it never configures logging, since that is
the application's decision. Applications that have no opinion call ``configure_logging``.

The framework's own log lines carry ids, types, versions and durations, never event payloads.
Where one quotes text that may hold a command's input (the reason a rule refused it), the values
of the command's fields declared personal (``personal=``) are withheld (``withhold``), whatever
their shape: redaction follows what the domain declares, not a pattern. ``redact_sensitive`` goes
further for everything logged through the configured pipeline: it drops fields that hold payloads
or secrets and, as a last net, masks well-formed email addresses inside any text.

``log_context`` binds ids (command, correlation, causation, event) to every line logged inside a
block, whichever module logs it: the application binds a command's ids while it handles it, the
projection engine an event's while a projector applies it, so one conversation can be followed
through every log line it caused. The ids live in one context variable of the framework's own
(binding them costs about a dictionary copy, which matters at one binding per projected event;
structlog's ``bind_contextvars`` costs several times that), and the ``merge_log_context``
processor adds them to each line: ``configure_logging`` installs it; an application that
configures structlog itself adds it to its processors.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from contextvars import ContextVar, Token
from types import MappingProxyType
from typing import Any

import structlog

__all__ = [
    "LazyValue",
    "configure_logging",
    "log_context",
    "log_context_from",
    "merge_log_context",
    "redact_sensitive",
    "withhold",
]

SENSITIVE_KEYS = frozenset(
    {
        "payload",
        "state",
        "password",
        "secret",
        "token",
        "authorization",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "credentials",
    }
)
"""Field names whose values are never written to logs (compared case-insensitively)."""

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
REDACTED = "[redacted]"
WITHHELD = "[personal]"


def withhold(text: str, personal_values: Iterable[str]) -> str:
    """``text`` with every occurrence of the personal values replaced by ``[personal]``.

    Matching ignores case and surrounding white space, since rules often quote a normalised form
    of what they were given (an address trimmed and lower-cased).
    """
    patterns = sorted(
        {value.strip() for value in personal_values if value.strip()}, key=len, reverse=True
    )
    if not patterns:
        return text
    pattern = re.compile("|".join(re.escape(value) for value in patterns), re.IGNORECASE)
    return pattern.sub(WITHHELD, text)


_EMPTY: Mapping[str, Any] = MappingProxyType({})
_bound: ContextVar[Mapping[str, Any]] = ContextVar("framework_log_context", default=_EMPTY)


class LazyValue:
    """A log-context value computed only when a line is logged (an id derived by hashing)."""

    __slots__ = ("_args", "_function")

    def __init__(self, function: Callable[..., Any], *args: Any) -> None:
        self._function = function
        self._args = args

    def __call__(self) -> Any:
        return self._function(*self._args)


def log_context(**ids: str | int | LazyValue | None) -> contextlib.AbstractContextManager[None]:
    """Within the block, every log line of this thread (or task) carries ``ids``.

    ``None`` values are left out. Blocks nest: an inner block adds to (or overrides) the outer
    one's ids and restores them when it ends, also when it ends with an exception. The lines
    carry them through the ``merge_log_context`` processor.
    """
    return _LogContext(ids)


class _LogContext(contextlib.AbstractContextManager[None]):
    """``log_context``'s block: a class rather than a generator, which costs twice as much."""

    __slots__ = ("_ids", "_token")

    def __init__(self, ids: Mapping[str, Any]) -> None:
        self._ids = ids
        self._token: Token[Mapping[str, Any]] | None = None

    def __enter__(self) -> None:
        merged = dict(_bound.get())
        for name, value in self._ids.items():
            if value is not None:
                merged[name] = value
        self._token = _bound.set(merged)

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _bound.reset(self._token)
            self._token = None


def log_context_from(
    compute: Callable[..., Mapping[str, Any]], *args: Any
) -> contextlib.AbstractContextManager[None]:
    """Within the block, log lines carry the ids ``compute(*args)`` returns, computed only when
    a line is logged (at most once per block).

    For a block entered per item of a stream of work: the projection engine binds an event's
    ids around each handler call, and most calls log nothing, so building the ids (and merging
    them with the outer block's) each time cost more than the rest of the binding. Otherwise
    as ``log_context``: ``None`` values are left out, the ids override the outer block's.
    """
    return _LazyIds(compute, args)


class _LazyIds(Mapping[str, Any]):
    """``log_context_from``'s block, and the ids it binds: the outer block's merged with those
    it computes, when first read."""

    __slots__ = ("_args", "_compute", "_merged", "_outer", "_token")

    def __init__(self, compute: Callable[..., Mapping[str, Any]], args: tuple[Any, ...]) -> None:
        self._compute = compute
        self._args = args
        self._merged: dict[str, Any] | None = None
        self._outer: Mapping[str, Any] = _EMPTY
        self._token: Token[Mapping[str, Any]] | None = None

    def __enter__(self) -> None:
        self._outer = _bound.get()
        self._token = _bound.set(self)

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _bound.reset(self._token)
            self._token = None

    def _ids(self) -> dict[str, Any]:
        if self._merged is None:
            merged = dict(self._outer)
            for name, value in self._compute(*self._args).items():
                if value is not None:
                    merged[name] = value
            self._merged = merged
        return self._merged

    def __getitem__(self, name: str) -> Any:
        return self._ids()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids())

    def __len__(self) -> int:
        return len(self._ids())


def merge_log_context(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: add the ids bound by ``log_context`` (a line's own keys win)."""
    for name, value in _bound.get().items():
        if name not in event_dict:
            event_dict[name] = value() if isinstance(value, LazyValue) else value
    return event_dict


def redact_sensitive(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: drop sensitive fields, mask email addresses in text values."""
    for key in list(event_dict):
        if key.lower() in SENSITIVE_KEYS:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _mask(event_dict[key])
    return event_dict


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return _EMAIL.sub("<email>", value)
    if isinstance(value, dict):
        return {
            k: REDACTED if str(k).lower() in SENSITIVE_KEYS else _mask(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_mask(item) for item in value)
    return value


def configure_logging(level: str = "INFO", *, json: bool = False) -> None:
    """Route structlog to stderr at ``level``, as key=value lines or (``json=True``) JSON."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            merge_log_context,  # the ids bound by ``log_context``
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_sensitive,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # Looked up at each logger's creation, so that a replaced sys.stderr (pytest's capture,
        # a daemon's redirection) is honoured.
        logger_factory=lambda *_: structlog.PrintLogger(sys.stderr),
        cache_logger_on_first_use=False,
    )

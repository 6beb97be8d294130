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
through every log line it caused. It uses structlog's context variables, which
``configure_logging`` (and structlog's default configuration) merge into each line.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Iterable, Iterator, MutableMapping
from typing import Any

import structlog
from structlog.contextvars import bind_contextvars, reset_contextvars

__all__ = ["configure_logging", "log_context", "redact_sensitive", "withhold"]

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


@contextlib.contextmanager
def log_context(**ids: str | int | None) -> Iterator[None]:
    """Within the block, every log line of this thread (or task) carries ``ids``.

    ``None`` values are left out. Blocks nest: an inner block adds to (or overrides) the outer
    one's ids and restores them when it ends, also when it ends with an exception.
    """
    tokens = bind_contextvars(**{name: value for name, value in ids.items() if value is not None})
    try:
        yield
    finally:
        reset_contextvars(**tokens)


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
            structlog.contextvars.merge_contextvars,  # the ids bound by ``log_context``
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

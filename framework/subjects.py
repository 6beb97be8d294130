"""Whose personal data a value is: subjects, their stored names, and what erased data reads as.

Standard library (and the key scheme) only, so that the domain (which declares personal fields),
the key ring (which keys them) and the stores (which keep the keys) share one definition without
importing each other.
"""

from __future__ import annotations

from framework.store.keys import split_stream, stream_key

ERASED = "[erased]"
"""What a personal text field reads as once its subject was forgotten."""

Subject = tuple[str, str]
"""An aggregate whose personal data a value is: its (type name, id)."""


def subject_name(subject: Subject) -> str:
    """The name a subject's key is stored under: its stream key, ``{type}#{id}``."""
    return stream_key(*subject)


def split_subject_name(name: str) -> Subject:
    """Inverse of ``subject_name``."""
    return split_stream(name)

"""Whose personal data a value is: subjects, their stored names, and what erased data reads as.

Standard library only, so that the domain (which declares personal fields), the key ring (which
keys them) and the stores (which keep the keys) share one definition without importing each
other.
"""

from __future__ import annotations

ERASED = "[erased]"
"""What a personal text field reads as once its subject was forgotten."""

Subject = tuple[str, str]
"""An aggregate whose personal data a value is: its (type name, id)."""


def subject_name(subject: Subject) -> str:
    """The name a subject's key is stored under: its stream key, ``{type}#{id}``."""
    aggregate_type, aggregate_id = subject
    return f"{aggregate_type}#{aggregate_id}"


def split_subject_name(name: str) -> Subject:
    """Inverse of ``subject_name``: aggregate type names never contain ``#``, ids may."""
    aggregate_type, _, aggregate_id = name.partition("#")
    return (aggregate_type, aggregate_id)

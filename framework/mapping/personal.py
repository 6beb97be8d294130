"""The mapper's hooks for personal data: fields sealed on the way to bytes, opened on the way back.

The keys and ciphers are ``framework.encryption``'s (``KeyRing``); what belongs to the mapping is
*where* they apply: which fields of a document are sealed with which subject's key, what an
opened field reads as once its subject is forgotten (``ERASED``, or ``None`` for an optional
field), and how a snapshot state built from personal data is sealed whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from framework.domain import Aggregate, Event, PersonalField
from framework.encryption import ENCRYPTED_MARK, KeyRing
from framework.errors import DefinitionError
from framework.mapping.formats import OLD_SEALED_STATE_TAG, SEALED_STATE_TAG
from framework.store.keys import check_aggregate_id
from framework.subjects import ERASED, Subject, split_subject_name, subject_name

_SEALED_STATE = bytes([SEALED_STATE_TAG])
_OLD_SEALED_STATE = bytes([OLD_SEALED_STATE_TAG])


def seal_fields(
    keys: KeyRing | None,
    event: Event,
    name: str,
    specs: Sequence[PersonalField],
    document: dict[str, Any],
    stream: Subject | None,
) -> None:
    """Replace each personal field of ``document`` by its value sealed with its subject's key.

    The subject is ``stream`` itself unless the field names another aggregate. Raises
    ``SubjectForgotten`` for a forgotten subject.
    """
    for spec in specs:
        value = document.get(spec.name)
        if value is None:
            continue
        if keys is None or (stream is None and spec.subject_field is None):
            raise DefinitionError(
                f"{type(event).__name__}.{spec.name} is personal data: give the Application "
                "a KeyRing (keys=...) so that it is stored encrypted with its subject's key"
            )
        subject_type, subject_id = spec.subject(event, stream or ("", ""))
        check_aggregate_id(subject_type, subject_id)  # a declared owner's id is input too
        subject = subject_name((subject_type, subject_id))
        document[spec.name] = keys.encrypt_text(subject, value, f"{name}.{spec.name}")


def open_fields(
    keys: KeyRing | None,
    name: str,
    fields: Sequence[tuple[str, bool]],
    document: dict[str, Any],
) -> None:
    """Replace each sealed field of ``document`` by its text, or by what erased data reads as.

    ``fields`` are the personal fields' names, each with whether it is optional: an optional
    field of a forgotten subject reads as ``None``, any other as ``ERASED``.
    """
    for field, optional in fields:
        value = document.get(field)
        if not (isinstance(value, dict) and ENCRYPTED_MARK in value):
            continue
        text = None if keys is None else keys.decrypt_text(value, f"{name}.{field}")
        if text is None:  # the subject was forgotten (or no key ring can read it)
            text = None if optional else ERASED
        document[field] = text


def seal_state(keys: KeyRing | None, aggregate: Aggregate, encoded: bytes) -> bytes:
    """A snapshot state built from personal data, sealed with each of its subjects' keys.

    Raises ``SubjectForgotten`` when one of them is forgotten: such a state must not be stored.
    """
    subjects = aggregate.personal_subjects
    if not subjects:
        return encoded
    if keys is None:
        raise DefinitionError(
            f"{type(aggregate).__name__} holds personal data: its snapshots need a KeyRing"
        )
    names = [subject_name(subject) for subject in subjects]
    sealed = keys.encrypt_blob(names, encoded, f"snapshot:{aggregate.aggregate_type()}")
    return _SEALED_STATE + sealed


def open_state(
    keys: KeyRing | None, aggregate_type: str, payload: bytes
) -> tuple[bytes, frozenset[Subject]]:
    """The state bytes inside a sealed snapshot state, and the subjects it was sealed for.

    A state that is not sealed comes back as it is. Raises ``ValueError`` when a subject was
    forgotten: the snapshot is then ignored and the stream replayed, personal fields erased.
    """
    head = payload[:1]
    if head == _SEALED_STATE:
        opened = (
            None if keys is None else keys.decrypt_blob(payload[1:], f"snapshot:{aggregate_type}")
        )
        if opened is None:
            raise ValueError("the snapshot is sealed with a key that is gone")
        state, names = opened
        return state, frozenset(split_subject_name(name) for name in names)
    if head == _OLD_SEALED_STATE:
        raise ValueError("the snapshot was sealed by an older format: replay instead")
    return payload, frozenset()

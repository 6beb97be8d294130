"""The structure function built per event class gives what cattrs and the class's own checks give.

Decoding skips cattrs' generic function and the class's ``__init__`` for classes made of plain
fields (``framework.mapping.structure``): on any document, it must build the same event, or
refuse where the old way (``converter.structure``, then the type checks of ``__init__``) refuses.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from decimal import Decimal
from typing import Any, Literal

import attrs
import pytest
from attrs import frozen
from hypothesis import given, settings
from hypothesis import strategies as st

from framework import Event
from framework.errors import CorruptEvent
from framework.mapping import EventMapper
from framework.mapping.converter import converter
from framework.mapping.structure import structure_function
from framework.testing.bank import AccountOpened, Address, Currency, Deposited
from framework.typecheck import check_fields


@frozen
class EveryKind(Event):
    text: str
    count: int
    ratio: float
    flag: bool
    amount: Decimal
    at: dt.datetime
    reference: uuid.UUID
    currency: Currency
    maybe_text: str | None
    maybe_count: int | None
    choice: Literal["a", "b"]
    amounts: tuple[Decimal, ...]
    tags: list[str]
    address: Address | None = None
    note: str = "none"
    extra: tuple[int, ...] = attrs.Factory(tuple)


CLASSES: list[type[Event]] = [Deposited, AccountOpened, EveryKind]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # json.loads reads NaN and Infinity too
    | st.text(max_size=8)
    | st.sampled_from(
        [
            "1.5",
            "NaN",
            "-Infinity",
            "1e999",
            "EUR",
            "a",
            "2026-01-02T03:04:05+00:00",
            "2026-01-02T03:04:05",
            "00000000-0000-0000-0000-00000000002a",
        ]
    ),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["street", "city", "x"]), inner, max_size=3)
    ),
    max_leaves=6,
)


def documents(event_class: type[Event]) -> st.SearchStrategy[Any]:
    """Documents with each field of ``event_class`` present (any JSON value) or missing."""
    names = [field.name for field in attrs.fields(event_class)]
    fields = st.fixed_dictionaries({}, optional=dict.fromkeys(names, json_values))
    return fields | json_values


def _old_way(document: Any, event_class: type[Event]) -> Event | None:
    try:
        event: Event = converter.structure(document, event_class)
    except Exception:
        return None
    return event


def _new_way(document: Any, event_class: type[Event]) -> Event | None:
    try:
        return structure_function(event_class, converter)(document)
    except Exception:
        return None


def _same(left: Event, right: Event) -> bool:
    """Equal field by field (a float NaN is read into both, and never equals itself)."""
    for field in attrs.fields(type(left)):
        a, b = getattr(left, field.name), getattr(right, field.name)
        if isinstance(a, float) and math.isnan(a):
            if not (isinstance(b, float) and math.isnan(b)):
                return False
        elif a != b or type(a) is not type(b):
            return False
    return True


@pytest.mark.parametrize("event_class", CLASSES, ids=lambda cls: cls.__name__)
@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_the_direct_function_builds_what_cattrs_builds_and_refuses_what_it_refuses(
    event_class: type[Event], data: st.DataObject
) -> None:
    document = data.draw(documents(event_class))
    old = _old_way(document, event_class)
    new = _new_way(document, event_class)
    if old is None:
        assert new is None, f"{document!r} was refused, is now read as {new!r}"
    else:
        assert new is not None, f"{document!r} was read as {old!r}, is now refused"
        assert type(new) is event_class and _same(new, old)
        assert check_fields(new) == []


def _valid_every_kind() -> dict[str, Any]:
    return {
        "text": "t",
        "count": 3,
        "ratio": 0.5,
        "flag": True,
        "amount": "1.25",
        "at": "2026-01-02T03:04:05+00:00",
        "reference": str(uuid.UUID(int=7)),
        "currency": "EUR",
        "maybe_text": None,
        "maybe_count": 4,
        "choice": "b",
        "amounts": ["1", "2.5"],
        "tags": ["x"],
        "address": {"street": "s", "city": "c"},
    }


def test_a_valid_document_round_trips_with_defaults_filled() -> None:
    event = EventMapper([EveryKind]).decode(
        "EveryKind", 1, converter_json(_valid_every_kind()), stream="S#1", version=1
    )
    assert event == converter.structure(_valid_every_kind(), EveryKind)
    assert (event.note, event.extra, event.address) == ("none", (), Address("s", "c"))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.note = "changed"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("amount", "NaN", "finite Decimal"),
        ("amount", "Infinity", "finite Decimal"),
        ("at", "2026-01-02T03:04:05", "timezone-aware"),
        ("amounts", ["1", "NaN"], "finite Decimal"),
        ("choice", "c", "choice: "),
        ("count", "many", "count: ValueError"),
        ("currency", "GBP", "currency: "),
    ],
)
def test_a_payload_whose_field_does_not_fit_is_a_corrupt_event_naming_where(
    field: str, value: Any, problem: str
) -> None:
    document = {**_valid_every_kind(), field: value}
    with pytest.raises(CorruptEvent, match="version 7 of stream 'S#1'") as raised:
        EventMapper([EveryKind]).decode(
            "EveryKind", 1, converter_json(document), stream="S#1", version=7
        )
    assert "cannot decode EveryKind" in str(raised.value) and problem in str(raised.value)


def test_a_missing_field_without_a_default_is_a_corrupt_event() -> None:
    document = _valid_every_kind()
    del document["text"]
    with pytest.raises(CorruptEvent, match="text is missing"):
        EventMapper([EveryKind]).decode(
            "EveryKind", 1, converter_json(document), stream="S#1", version=1
        )


@frozen
class Checked(Event):
    amount: Decimal = attrs.field(validator=attrs.validators.gt(Decimal(0)))


@frozen
class Guarded(Event):
    amount: Decimal

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        if self.amount > 100:
            raise ValueError("too much")


@pytest.mark.parametrize("event_class", [Checked, Guarded], ids=lambda cls: cls.__name__)
def test_a_class_with_more_to_its_construction_is_still_built_by_its_init(
    event_class: type[Event],
) -> None:
    mapper = EventMapper([event_class])
    name = event_class.__name__
    assert mapper.decode(name, 1, b'{"amount":"5"}', stream="S#1", version=1) == event_class(
        amount=Decimal(5)  # type: ignore[call-arg]
    )
    refused = b'{"amount":"-1"}' if event_class is Checked else b'{"amount":"101"}'
    with pytest.raises(CorruptEvent, match=f"cannot decode {name}"):
        mapper.decode(name, 1, refused, stream="S#1", version=2)
    with pytest.raises(CorruptEvent, match=f"version 3 of stream 'S#1': cannot decode {name}"):
        mapper.decode(name, 1, b'{"amount":"NaN"}', stream="S#1", version=3)


def converter_json(document: dict[str, Any]) -> bytes:
    from framework.mapping.formats import encode_json

    return encode_json(document)

"""The event mapper: exact round trips, compression, format tags and clear failures."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from attrs import frozen
from hypothesis import given
from hypothesis import strategies as st

from framework import Event
from framework.errors import CorruptEvent, DefinitionError, UnknownEventType
from framework.mapping import EventMapper
from framework.mapping.formats import (
    COMPRESSION_THRESHOLD,
    MAPPING_TAGS,
    decode_json,
    encode_json,
)
from framework.mapping.state import state_schema
from framework.store.large_payloads import REFERENCE_TAG
from framework.testing.bank import Account, Address, Currency, Deposited


@frozen
class Everything(Event):
    amount: Decimal
    when: dt.datetime
    day: dt.date
    reference: uuid.UUID
    currency: Currency
    address: Address
    tags: tuple[str, ...]
    counts: dict[str, int]
    maybe: Address | None
    ratio: float
    blob: bytes


finite_decimals = st.decimals(allow_nan=False, allow_infinity=False)
aware_datetimes = st.datetimes(
    timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=-7, minutes=-30))])
)
addresses = st.builds(Address, street=st.text(), city=st.text())
everything = st.builds(
    Everything,
    amount=finite_decimals,
    when=aware_datetimes,
    day=st.dates(),
    reference=st.uuids(),
    currency=st.sampled_from(Currency),
    address=addresses,
    tags=st.lists(st.text(), max_size=5).map(tuple),
    counts=st.dictionaries(st.text(), st.integers()),
    maybe=st.none() | addresses,
    ratio=st.floats(allow_nan=False),
    blob=st.binary(),
)


@given(everything)
def test_every_supported_type_round_trips_exactly(event: Everything) -> None:
    mapper = EventMapper([Everything])
    encoded = mapper.encode(event)
    decoded = mapper.decode(
        encoded.event_type, encoded.schema, encoded.payload, stream="s", version=1
    )
    assert decoded == event
    assert isinstance(decoded, Everything)
    assert str(decoded.amount) == str(event.amount)  # same digits, same exponent
    assert decoded.when.utcoffset() == event.when.utcoffset()


def test_small_payloads_are_plain_json_and_large_ones_compressed() -> None:
    small = encode_json({"amount": "1"})
    assert small == b'{"amount":"1"}'
    large_document = {"text": "word " * COMPRESSION_THRESHOLD}
    large = encode_json(large_document)
    assert large[:1] == b"z" and len(large) < COMPRESSION_THRESHOLD
    assert decode_json(large) == large_document


@given(st.dictionaries(st.text(), st.text() | st.integers()))
def test_encoding_is_never_larger_than_plain_json(document: dict[str, object]) -> None:
    plain = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    encoded = encode_json(document, threshold=16)
    assert len(encoded) <= len(plain)
    assert decode_json(encoded) == document


def test_the_stores_claim_check_tag_is_not_a_mapping_format() -> None:
    """The store resolves its S3 references before the mapper reads a payload; the tags must
    never be confused (the store may not import the mapping, so they are kept apart here)."""
    assert REFERENCE_TAG not in MAPPING_TAGS
    assert encode_json({"x": "y" * 5000})[0] in MAPPING_TAGS


@pytest.mark.parametrize("payload", [b"", b"\x00abc", b"z-not-zlib", b"{not json", b'{"a":1} x'])
def test_undecodable_payloads_raise(payload: bytes) -> None:
    with pytest.raises(ValueError):
        decode_json(payload)


def test_unknown_event_type_is_named_with_its_stream() -> None:
    with pytest.raises(UnknownEventType) as raised:
        EventMapper([Deposited]).decode("Gone", 1, b"{}", stream="Account#a", version=4)
    assert "'Gone' at version 4 of stream 'Account#a'" in str(raised.value)


def test_payload_that_does_not_fit_the_class_is_corrupt() -> None:
    mapper = EventMapper([Deposited])
    with pytest.raises(CorruptEvent, match="version 2 of stream 'Account#a'"):
        mapper.decode("Deposited", 1, b'{"amount":"lots"}', stream="Account#a", version=2)
    with pytest.raises(CorruptEvent):
        mapper.decode("Deposited", 1, b'{"other":1}', stream="Account#a", version=2)


def test_a_schema_version_the_class_does_not_read_is_refused() -> None:
    mapper = EventMapper([Deposited])
    with pytest.raises(CorruptEvent, match="schema version 2, newer than the version 1"):
        mapper.decode("Deposited", 2, b'{"amount":"1"}', stream="Account#a", version=2)


def test_two_classes_with_one_name_are_refused() -> None:
    @frozen
    class Deposited(Event):  # same name as framework.testing.bank.Deposited
        amount: Decimal

    from framework.testing import bank

    with pytest.raises(DefinitionError, match="'Deposited' is used by both"):
        EventMapper([bank.Deposited, Deposited])


def test_renamed_class_keeps_reading_its_stored_name() -> None:
    @frozen
    class CashDeposited(Event, name="Deposited"):
        amount: Decimal

    stored = EventMapper([Deposited]).encode(Deposited(amount=Decimal("2.50")))
    decoded = EventMapper([CashDeposited]).decode(
        stored.event_type, stored.schema, stored.payload, stream="s", version=1
    )
    assert decoded == CashDeposited(amount=Decimal("2.50"))


def test_state_schema_changes_with_the_declared_state() -> None:
    class Account2(Account, name="Account"):
        nickname: str

    class Account3(Account, name="Account"):
        __snapshot_version__ = 2

    assert state_schema(Account) == state_schema(Account)
    assert state_schema(Account2) != state_schema(Account)
    assert state_schema(Account3) != state_schema(Account)


def test_the_state_schema_is_computed_once_per_class() -> None:
    mapper = EventMapper()
    assert mapper.state_schema(Account) == state_schema(Account)
    assert mapper.state_schema(Account) is mapper.state_schema(Account)


def test_a_mapper_extended_for_a_projector_keeps_its_classes_upcasters_and_keys() -> None:
    @frozen
    class Renamed(Event, name="Deposited"):
        amount: Decimal

    base = EventMapper([Deposited])
    extended = base.extended([Everything])
    assert set(extended.classes()) == {Deposited, Everything}
    assert base.classes() == [Deposited]
    # A projector reading a stored type into a class of its own gets that class.
    stored = base.encode(Deposited(amount=Decimal(1)))
    own = base.extended([Renamed])
    assert own.decode("Deposited", 1, stored.payload, stream="s", version=1) == Renamed(
        amount=Decimal(1)
    )
    with pytest.raises(DefinitionError, match="'Deposited' is used by both"):
        base.extended([Renamed, Deposited])


@pytest.mark.parametrize("payload", [b'{"a": 1}', b'{"a":1} \n', b'{ "a" : 1 }'])
def test_payloads_written_by_hand_read_as_json_loads_reads_them(payload: bytes) -> None:
    assert decode_json(payload) == json.loads(payload) == {"a": 1}


def test_the_root_and_the_mapping_module_import_neither_cattrs_nor_the_mapper() -> None:
    """``framework.upcaster`` and ``framework.mapping`` are for domain modules: the mapper and
    cattrs load when an application (or ``EventMapper``) is first used."""
    code = (
        "import json, sys, framework, framework.mapping\n"
        "assert framework.upcaster is framework.mapping.upcaster\n"
        "heavy = ('cattrs', 'framework.mapping.mapper', 'boto3', 'botocore', 'cryptography')\n"
        "print(json.dumps([name for name in heavy if name in sys.modules]))\n"
    )
    finished = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(finished.stdout) == []

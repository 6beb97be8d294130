"""The store's own decoding of ``Query`` answers gives exactly what botocore's parser gives.

A client the store makes hands every ``Query`` answer to ``fast_query_items`` before botocore
parses it (the event stream, the feed, and any other table read through that client). botocore's
shape-driven parser is the definition; here both read the same answer bodies, written as DynamoDB
writes them, and must agree to the value and type, for every kind of attribute value, nested at
any depth, in items and in ``LastEvaluatedKey``.
"""

from __future__ import annotations

import base64
import functools
import json
from typing import Any

import botocore.parsers
import botocore.session
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.store.dynamodb.event_store import fast_query_items


@functools.cache
def _query_output_shape() -> Any:
    model = botocore.session.get_session().get_service_model("dynamodb")
    return model.operation_model("Query").output_shape


def _parse(body: bytes, status: int, *, lean: bool) -> dict[str, Any]:
    """The answer as botocore's own parser reads it or, ``lean``, as a client the store made
    reads it: the hook first, then botocore's parser on what the hook left of the body, the
    hook's items merged in (as botocore's endpoint does)."""
    response = {"status_code": status, "headers": {}, "body": body}
    customized: dict[str, Any] = {}
    if lean:
        fast_query_items(response_dict=response, customized_response_dict=customized)
    parsed = botocore.parsers.create_parser("json").parse(response, _query_output_shape())
    parsed.update(customized)
    parsed.pop("ResponseMetadata", None)
    return dict(parsed)


def _botocore(body: bytes, status: int = 200) -> dict[str, Any]:
    return _parse(body, status, lean=False)


def _store(body: bytes, status: int = 200) -> dict[str, Any]:
    return _parse(body, status, lean=True)


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode()


names = st.text(min_size=1, max_size=12)
numbers = st.one_of(
    st.integers(-(10**38), 10**38).map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=6).map(str),
    st.sampled_from(["0", "-0", "1E+3", "1.5e-7", "00012.500"]),
)
scalar_values = st.one_of(
    st.text(max_size=20).map(lambda text: {"S": text}),
    numbers.map(lambda number: {"N": number}),
    st.binary(max_size=20).map(lambda data: {"B": _base64(data)}),
    st.booleans().map(lambda flag: {"BOOL": flag}),
    st.just({"NULL": True}),
    st.lists(st.text(max_size=8), min_size=1, max_size=4, unique=True).map(
        lambda texts: {"SS": texts}
    ),
    st.lists(numbers, min_size=1, max_size=4, unique=True).map(lambda ns: {"NS": ns}),
    st.lists(st.binary(min_size=1, max_size=8), min_size=1, max_size=4, unique=True).map(
        lambda blobs: {"BS": [_base64(blob) for blob in blobs]}
    ),
)
attribute_values = st.recursive(
    scalar_values,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda values: {"L": values}),
        st.dictionaries(names, inner, max_size=4).map(lambda members: {"M": members}),
    ),
    max_leaves=12,
)
items = st.dictionaries(names, attribute_values, min_size=1, max_size=6)


@settings(max_examples=300, deadline=None)
@given(
    answer_items=st.lists(items, max_size=5),
    last_key=st.none() | st.fixed_dictionaries({"pk": scalar_values, "sk": scalar_values}),
)
def test_every_kind_of_value_is_read_as_botocore_reads_it(
    answer_items: list[dict[str, Any]], last_key: dict[str, Any] | None
) -> None:
    document: dict[str, Any] = {
        "Items": answer_items,
        "Count": len(answer_items),
        "ScannedCount": len(answer_items) + 3,
    }
    if last_key is not None:
        document["LastEvaluatedKey"] = last_key
    body = json.dumps(document, ensure_ascii=False).encode()
    assert _store(body) == _botocore(body)


def test_the_events_of_a_stream_are_read_as_botocore_reads_them() -> None:
    """The shape every load reads: the history's four attributes, a page's end key."""
    document = {
        "Items": [
            {
                "sk": {"N": str(version)},
                "event_type": {"S": "Deposited"},
                "schema": {"N": "1"},
                "payload": {"B": _base64(b'{"amount":"1.25","note":"caf\xc3\xa9"}')},
            }
            for version in range(1, 4)
        ],
        "Count": 3,
        "ScannedCount": 3,
        "LastEvaluatedKey": {"pk": {"S": "Account#a#1"}, "sk": {"N": "3"}},
    }
    body = json.dumps(document).encode()
    store = _store(body)
    assert store == _botocore(body)
    assert store["Items"][0]["payload"]["B"] == b'{"amount":"1.25","note":"caf\xc3\xa9"}'


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, b'{"Count":0,"ScannedCount":0}'),
        (200, b'{"Items":[],"Count":0,"ScannedCount":7}'),
        (400, b'{"__type":"com.amazon.coral.validate#ValidationException","message":"bad"}'),
        (
            400,
            b'{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException",'
            b'"message":"Requested resource not found","Items":[{"a":{"S":"x"}}]}',
        ),
    ],
)
def test_answers_without_items_and_error_answers_are_left_to_botocore(
    status: int, body: bytes
) -> None:
    assert _store(body, status) == _botocore(body, status)

"""schemathesis against the example app's OpenAPI description: no input makes it fail (5xx)."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Ok

from example_app.http_api import create_app
from framework import DynamoDBEventStore
from tests.example.http_support import AUTH, TOKEN, Server

pytestmark = pytest.mark.dynamodb_local


def test_no_request_makes_the_api_fail(example_store: DynamoDBEventStore) -> None:
    # Over a socket, with the app's lifespan run (uvicorn's): the commands go through the
    # aiobotocore store it opens, as when served.
    with Server(create_app(example_store, api_token=TOKEN)) as client:
        schema = schemathesis.openapi.from_url(f"{client.base_url}/openapi.json")
        fuzz(schema)


def fuzz(schema: Any) -> None:
    # Driven through Hypothesis directly rather than schemathesis' pytest integration, which
    # depends on pytest internals that change between pytest releases.
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # an Err: the app's schema could not be read
        operations.append(result.ok())
    assert len(operations) == 13
    for operation in operations:

        @given(operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
        def no_server_error(case: Any) -> None:
            response = case.call(headers=AUTH)
            assert response.status_code < 500, (case.method, case.path, response.text)
            if response.status_code >= 400:
                content_type = response.headers["content-type"]
                if isinstance(content_type, list):  # schemathesis keeps every header value
                    content_type = content_type[0]
                assert content_type == "application/problem+json", response.text
                assert response.json()["status"] == response.status_code

        no_server_error()

"""botocore's errors as the framework's: a misconfiguration is ``ConfigurationError`` (a person
must fix something: the message says what), only what a retry may cure is ``StoreUnavailable``.

Stubbed clients (botocore's ``Stubber``, or a fake raising botocore's exceptions) for each
error, and real ones where cheap: a missing table, a table with another key schema, a client
without credentials, all on DynamoDB Local.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore import exceptions as botocore_errors
from botocore.stub import Stubber

from framework import DynamoDBEventStore
from framework.errors import (
    ChangeSetTooLarge,
    ConfigurationError,
    EventStoreError,
    StoreUnavailable,
    TableMissing,
    Throttled,
)
from framework.testing.pytest_plugin import unique_prefix
from tests.example.http_support import CREDENTIAL_VARIABLES


def stubbed_store() -> tuple[DynamoDBEventStore, Stubber]:
    client = boto3.session.Session().client(
        "dynamodb",
        region_name="us-east-1",
        aws_access_key_id="stub",
        aws_secret_access_key="stub",
    )
    return DynamoDBEventStore(client, table_prefix="stub"), Stubber(client)


def error_of(code: str, message: str, status: int = 400) -> Exception:
    store, stubber = stubbed_store()
    stubber.add_client_error(
        "query", service_error_code=code, service_message=message, http_status_code=status
    )
    with stubber, pytest.raises(Exception) as raised:
        store.load_events("Account", "a1")
    return raised.value


@pytest.mark.parametrize(
    ("code", "message", "fix"),
    [
        ("ResourceNotFoundException", "Requested resource not found", "create_tables()"),
        (
            "ValidationException",
            'Invalid KeyConditionExpression: Syntax error; token: "="',
            "retrying will not help",
        ),
        (
            "ValidationException",
            "Query condition missed key schema element: pk",
            "key schema",
        ),
        ("AccessDeniedException", "User: arn:aws:iam::1:user/x is not authorized", "IAM policy"),
        ("UnrecognizedClientException", "The security token included is invalid.", "credentials"),
        ("InvalidSignatureException", "The request signature we calculated...", "credentials"),
        ("MissingAuthenticationTokenException", "Request is missing token", "AWS_ACCESS_KEY_ID"),
        ("ExpiredTokenException", "The security token included has expired", "credentials"),
    ],
)
def test_misconfigurations_are_configuration_errors_naming_the_fix(
    code: str, message: str, fix: str
) -> None:
    error = error_of(code, message)
    assert isinstance(error, ConfigurationError), error
    assert not isinstance(error, StoreUnavailable)
    assert fix in str(error)


def test_a_missing_table_is_a_configuration_error_naming_the_table() -> None:
    error = error_of("ResourceNotFoundException", "Requested resource not found")
    assert isinstance(error, TableMissing) and isinstance(error, ConfigurationError)
    assert error.table == "stub-events"


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ThrottlingException", 400, Throttled),
        ("ProvisionedThroughputExceededException", 400, Throttled),
        ("InternalServerError", 500, StoreUnavailable),
        ("ServiceUnavailable", 503, StoreUnavailable),
    ],
)
def test_what_a_retry_may_cure_stays_store_unavailable(
    code: str, status: int, expected: type[Exception]
) -> None:
    error = error_of(code, "try again", status)
    assert isinstance(error, expected) and not isinstance(error, ConfigurationError)


def test_a_validation_exception_about_size_stays_change_set_too_large() -> None:
    error = error_of("ValidationException", "Item size has exceeded the maximum allowed size")
    assert isinstance(error, ChangeSetTooLarge) and not isinstance(error, ConfigurationError)


def test_another_client_error_is_an_event_store_error() -> None:
    error = error_of("SomethingNew", "what is this")
    assert type(error) is EventStoreError


class RaisingClient:
    """A client whose every call raises ``error``, as botocore does before sending anything."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __getattr__(self, name: str) -> Any:
        def call(**_: Any) -> Any:
            raise self.error

        return call


@pytest.mark.parametrize(
    ("error", "fix"),
    [
        (botocore_errors.NoCredentialsError(), "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        (
            botocore_errors.PartialCredentialsError(provider="env", cred_var="AWS_SECRET_KEY"),
            "set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        ),
        (botocore_errors.NoRegionError(), "set AWS_REGION"),
        (botocore_errors.InvalidRegionError(region_name="us east"), "check AWS_REGION"),
        (botocore_errors.ProfileNotFound(profile="nope"), "check AWS_PROFILE"),
        (
            botocore_errors.ParamValidationError(report="Invalid type for parameter Key"),
            "retrying will not help",
        ),
    ],
)
def test_botocore_configuration_errors_are_configuration_errors(error: Exception, fix: str) -> None:
    store = DynamoDBEventStore(RaisingClient(error), table_prefix="fake")
    for call in (
        lambda: store.load_events("Account", "a1"),
        lambda: store.load_snapshot("Account", "a1"),
        store.create_tables,
    ):
        with pytest.raises(ConfigurationError, match=fix) as raised:
            call()
        assert raised.value.__cause__ is error


@pytest.mark.parametrize(
    "error",
    [
        botocore_errors.EndpointConnectionError(endpoint_url="http://x"),
        botocore_errors.ReadTimeoutError(endpoint_url="http://x"),
        botocore_errors.CredentialRetrievalError(provider="imds", error_msg="timed out"),
    ],
)
def test_transport_errors_stay_store_unavailable(error: Exception) -> None:
    store = DynamoDBEventStore(RaisingClient(error), table_prefix="fake")
    with pytest.raises(StoreUnavailable):
        store.load_events("Account", "a1")


# -- real ones, on DynamoDB Local ------------------------------------------------------------


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """A machine without AWS credentials: none in the environment, no files, no metadata."""
    for name in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield


@pytest.mark.dynamodb_local
def test_a_client_without_credentials_is_a_configuration_error(
    dynamodb_local_endpoint: str, no_credentials: None
) -> None:
    client = boto3.session.Session().client(
        "dynamodb", region_name="us-east-1", endpoint_url=dynamodb_local_endpoint
    )
    store = DynamoDBEventStore(client, table_prefix=unique_prefix())
    with pytest.raises(ConfigurationError, match="no AWS credentials were found"):
        store.load_events("Account", "a1")


@pytest.mark.dynamodb_local
def test_the_store_on_dynamodb_local_needs_no_credentials(
    dynamodb_local_endpoint: str, no_credentials: None
) -> None:
    """With an endpoint and no credentials the store signs with dummy ones: no error at all."""
    store = DynamoDBEventStore(table_prefix=unique_prefix(), endpoint_url=dynamodb_local_endpoint)
    with pytest.raises(TableMissing):  # reached DynamoDB Local: the tables are just not there
        store.load_events("Account", "a1")


@pytest.mark.dynamodb_local
def test_a_missing_table_on_dynamodb_local_is_a_configuration_error(
    dynamodb_local_endpoint: str,
) -> None:
    store = DynamoDBEventStore(table_prefix=unique_prefix(), endpoint_url=dynamodb_local_endpoint)
    with pytest.raises(ConfigurationError, match=f"{store.tables.events}.*create_tables"):
        store.load_events("Account", "a1")


@pytest.mark.dynamodb_local
def test_a_table_of_another_schema_on_dynamodb_local_is_a_configuration_error(
    dynamodb_local_endpoint: str,
) -> None:
    """Someone else's table under the events table's name: DynamoDB answers ValidationException
    to the store's query, and no retry would change that."""
    store = DynamoDBEventStore(table_prefix=unique_prefix(), endpoint_url=dynamodb_local_endpoint)
    store.client.create_table(
        TableName=store.tables.events,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    try:
        with pytest.raises(ConfigurationError, match="malformed") as raised:
            store.load_events("Account", "a1")
        assert not isinstance(raised.value, StoreUnavailable)
        assert store.tables.events in str(raised.value)
    finally:
        store.client.delete_table(TableName=store.tables.events)

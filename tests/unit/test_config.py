"""One settings object: read from a TOML file and the environment, checked before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from framework.config import Settings
from framework.errors import ConfigurationError
from framework.store import DynamoDBEventStore, InMemoryEventStore, key_ring_for, open_store

TOML = """
[storage]
backend = "dynamo"
payload_bucket = "bank-large-payloads"
kms_key_id = "alias/bank-personal-data"
event_bus = "bank-events"
publish_dlq_url = "https://sqs.eu-west-1.amazonaws.com/123456789012/bank-dlq"
publish_payload_bucket = "bank-published"

[storage.dynamo]
region = "eu-west-1"
table_prefix = "bank"
endpoint = "http://127.0.0.1:8000"
feed_shards = 8
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "framework.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_defaults_describe_dynamodb_on_aws() -> None:
    settings = Settings.load(environ={})
    assert (settings.backend, settings.region, settings.table_prefix) == (
        "dynamo",
        "us-east-1",
        "framework",
    )
    assert settings.endpoint is settings.payload_bucket is settings.kms_key_id is None
    assert settings.source_of("region") == "the default region"


def test_every_setting_is_read_from_the_toml_file(tmp_path: Path) -> None:
    path = write(tmp_path, TOML)
    settings = Settings.load(path, environ={})
    assert settings == Settings(
        backend="dynamo",
        region="eu-west-1",
        table_prefix="bank",
        endpoint="http://127.0.0.1:8000",
        feed_shards=8,
        payload_bucket="bank-large-payloads",
        kms_key_id="alias/bank-personal-data",
        event_bus="bank-events",
        publish_dlq_url="https://sqs.eu-west-1.amazonaws.com/123456789012/bank-dlq",
        publish_payload_bucket="bank-published",
    )
    assert settings.source_of("table_prefix") == f"{path} storage.dynamo.table_prefix"
    assert Settings.load(environ={"FRAMEWORK_CONFIG": str(path)}) == settings


def test_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, TOML)
    environ = {
        "DYNAMO_TABLE_PREFIX": "other",
        "AWS_REGION": "us-west-2",
        "DYNAMO_FEED_SHARDS": "2",
        "PAYLOAD_BUCKET": "other-bucket",
        "KMS_KEY_ID": "arn:aws:kms:us-west-2:111122223333:key/abc",
        "EVENT_BUS_NAME": "other-bus",
        "PUBLISH_DLQ_URL": "https://sqs.us-west-2.amazonaws.com/111122223333/other-dlq",
    }
    settings = Settings.load(path, environ=environ)
    assert (settings.table_prefix, settings.region, settings.feed_shards) == (
        "other",
        "us-west-2",
        2,
    )
    assert (settings.payload_bucket, settings.event_bus) == ("other-bucket", "other-bus")
    assert settings.publish_dlq_url == environ["PUBLISH_DLQ_URL"]
    assert settings.publish_payload_bucket == "bank-published"  # not overridden: the file's
    assert settings.endpoint == "http://127.0.0.1:8000"  # not overridden: the file's
    assert settings.source_of("region") == "AWS_REGION"


@pytest.mark.parametrize(
    ("environ", "backend"),
    [
        ({}, "embedded"),
        ({"AWS_DEFAULT_REGION": "eu-west-1"}, "embedded"),  # a machine-wide default, no intent
        ({"AWS_REGION": "eu-west-1"}, "dynamo"),
        ({"DYNAMO_ENDPOINT": "http://localhost:8000"}, "dynamo"),
        ({"STORAGE_BACKEND": "memory"}, "memory"),
    ],
)
def test_the_backend_follows_what_is_configured(environ: dict[str, str], backend: str) -> None:
    assert Settings.load(environ=environ, default_backend="embedded").backend == backend


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"STORAGE_BACKEND": "dynamoo"}, "STORAGE_BACKEND='dynamoo': must be one of"),
        ({"DYNAMO_FEED_SHARDS": "four"}, "DYNAMO_FEED_SHARDS='four'"),
        ({"DYNAMO_FEED_SHARDS": "0"}, "DYNAMO_FEED_SHARDS=0"),
        ({"DYNAMO_TABLE_PREFIX": "my bank"}, "DYNAMO_TABLE_PREFIX='my bank'"),
        (
            {"DYNAMO_ENDPOINT": "localhost:8000"},
            "DYNAMO_ENDPOINT='localhost:8000': must be an http",
        ),
        ({"AWS_REGION": "moon"}, "AWS_REGION='moon': is not an AWS region"),
        ({"PAYLOAD_BUCKET": "Bad_Bucket"}, "PAYLOAD_BUCKET='Bad_Bucket'"),
        ({"EVENT_BUS_NAME": "a bus"}, "EVENT_BUS_NAME='a bus'"),
        ({"PUBLISH_DLQ_URL": "bank-dlq"}, "PUBLISH_DLQ_URL='bank-dlq': must be the URL"),
        ({"PUBLISH_PAYLOAD_BUCKET": "B"}, "PUBLISH_PAYLOAD_BUCKET='B'"),
        (
            {"STORAGE_BACKEND": "memory", "DYNAMO_ENDPOINT": "http://localhost:8000"},
            "STORAGE_BACKEND='memory': is not dynamo, but DYNAMO_ENDPOINT is set",
        ),
    ],
)
def test_a_wrong_setting_is_one_line_naming_it(environ: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Settings.load(environ=environ)
    assert named in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[storage.dynamo]\nregoin = 'eu-west-1'\n", "storage.dynamo.regoin: unknown setting"),
        ("[storage]\nbackend = 'mongo'\n", "storage.backend='mongo'"),
        ("[storage.dynamo]\nfeed_shards = 'four'\n", "storage.dynamo.feed_shards='four'"),
        ("[storage]\ndynamo = 3\n", "storage.dynamo: must be a table"),
        ("[storage\n", "not valid TOML"),
    ],
)
def test_a_wrong_file_names_the_file_and_the_key(tmp_path: Path, text: str, named: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigurationError, match=str(path)) as raised:
        Settings.load(path, environ={})
    assert named in str(raised.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read the settings file"):
        Settings.load(environ={"FRAMEWORK_CONFIG": str(tmp_path / "absent.toml")})


def test_a_dynamodb_store_is_built_from_the_settings_without_contacting_anything() -> None:
    settings = Settings.load(
        environ={
            "DYNAMO_ENDPOINT": "http://127.0.0.1:1",
            "DYNAMO_TABLE_PREFIX": "bank",
            "PAYLOAD_BUCKET": "bank-large-payloads",
            "DYNAMO_FEED_SHARDS": "6",
        }
    )
    store = DynamoDBEventStore.from_settings(settings)
    assert (store.tables.events, store.endpoint_url, store.feed_shards) == (
        "bank-events",
        "http://127.0.0.1:1",
        6,
    )
    assert store.large_payloads is not None and store.large_payloads.bucket == "bank-large-payloads"
    with pytest.raises(ConfigurationError, match="STORAGE_BACKEND='memory'"):
        DynamoDBEventStore.from_settings(Settings.load(environ={"STORAGE_BACKEND": "memory"}))


def test_from_env_reads_the_same_settings(tmp_path: Path) -> None:
    path = write(tmp_path, TOML)
    store = DynamoDBEventStore.from_env({"FRAMEWORK_CONFIG": str(path)})
    assert store.tables.prefix == "bank" and store.region_name == "eu-west-1"
    assert store.large_payloads is not None


def test_open_store_opens_each_backend() -> None:
    with open_store(Settings(backend="memory", table_prefix="m")) as memory:
        assert isinstance(memory, InMemoryEventStore) and memory.tables.prefix == "m"
    with open_store(Settings(backend="embedded", table_prefix="e")) as embedded:
        assert isinstance(embedded, DynamoDBEventStore)
        assert embedded.table_status() == dict.fromkeys(embedded.tables.all(), "ACTIVE")


def test_a_key_ring_comes_with_a_kms_key_only() -> None:
    store = InMemoryEventStore()
    assert key_ring_for(Settings(), store) is None
    ring = key_ring_for(Settings(kms_key_id="alias/pii", region="eu-west-1"), store)
    assert ring is not None
    wrapper = ring.wrapper
    assert getattr(wrapper, "key_id", None) == "alias/pii"
    assert getattr(wrapper, "region_name", None) == "eu-west-1"

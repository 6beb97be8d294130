"""One settings object for every process that opens the event store.

The CLI, the Lambda handler, an application's own entry points and the test fixtures all need the
same few facts: which store, where its tables are, where offloaded payloads live, which KMS key
wraps personal-data keys, which EventBridge bus receives published events. ``Settings.load()``
reads them once, from a TOML file's ``[storage]`` table and from the environment (which wins), and
checks them all before anything is contacted: a wrong setting is one ``ConfigurationError`` line
that names it and where it came from.

```toml
[storage]
backend = "dynamo"            # or "memory", or "embedded" (moto, in process)
payload_bucket = "bank-large-payloads"
kms_key_id = "alias/bank-personal-data"
event_bus = "bank-events"
publish_dlq_url = "https://sqs.eu-west-1.amazonaws.com/123456789012/bank-publish-failures"
publish_payload_bucket = "bank-published-payloads"

[storage.dynamo]
region = "eu-west-1"
table_prefix = "bank"
endpoint = "http://127.0.0.1:8000"   # DynamoDB Local; leave out on AWS
feed_shards = 4
```

The settings are data: ``framework.store.open_store(settings)`` opens the store they describe,
``DynamoDBEventStore.from_settings(settings)`` builds a DynamoDB one, and
``framework.store.key_ring_for(settings, store)`` the KMS-wrapped key ring. This module imports the
standard library and attrs only, so that every layer can read it.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import attrs

from framework.errors import ConfigurationError

__all__ = ["BACKENDS", "CONFIG_FILE_ENV", "ENVIRONMENT", "Backend", "Settings"]

Backend = Literal["dynamo", "memory", "embedded"]
BACKENDS: tuple[Backend, ...] = ("dynamo", "memory", "embedded")

CONFIG_FILE_ENV = "FRAMEWORK_CONFIG"
"""The environment variable naming the TOML file to read when no path is given."""

ENVIRONMENT: Mapping[str, tuple[str, ...]] = {
    "backend": ("STORAGE_BACKEND",),
    "region": ("AWS_REGION", "AWS_DEFAULT_REGION"),
    "table_prefix": ("DYNAMO_TABLE_PREFIX",),
    "endpoint": ("DYNAMO_ENDPOINT",),
    "feed_shards": ("DYNAMO_FEED_SHARDS",),
    "payload_bucket": ("PAYLOAD_BUCKET",),
    "kms_key_id": ("KMS_KEY_ID",),
    "event_bus": ("EVENT_BUS_NAME",),
    "publish_dlq_url": ("PUBLISH_DLQ_URL",),
    "publish_payload_bucket": ("PUBLISH_PAYLOAD_BUCKET",),
}
"""Each setting's environment variables, the first one set wins."""

_TOML_KEYS: Mapping[str, str] = {
    "backend": "storage.backend",
    "payload_bucket": "storage.payload_bucket",
    "kms_key_id": "storage.kms_key_id",
    "event_bus": "storage.event_bus",
    "publish_dlq_url": "storage.publish_dlq_url",
    "publish_payload_bucket": "storage.publish_payload_bucket",
    "region": "storage.dynamo.region",
    "table_prefix": "storage.dynamo.table_prefix",
    "endpoint": "storage.dynamo.endpoint",
    "feed_shards": "storage.dynamo.feed_shards",
}
"""Each setting's place in the TOML file."""

_TABLE_PREFIX = re.compile(r"[A-Za-z0-9_.-]{1,200}")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")
_EVENT_BUS = re.compile(r"[A-Za-z0-9._\-/:]{1,1600}")


@attrs.frozen
class Settings:
    """Where the event store and its companions are. Build with ``Settings.load()``, or directly.

    ``backend``: ``"dynamo"`` (AWS, or DynamoDB Local at ``endpoint``), ``"memory"`` (this process
    only) or ``"embedded"`` (DynamoDB on moto, in process, for a first run). ``sources`` says where
    each setting that was not a default came from, for error messages and ``describe()``.
    ``event_bus``, ``publish_dlq_url`` and ``publish_payload_bucket`` are the EventBridge
    publisher's: the bus, the SQS queue of entries given up, and where entries over 256 KB leave
    their payload.
    """

    backend: Backend = "dynamo"
    region: str = "us-east-1"
    table_prefix: str = "framework"
    endpoint: str | None = None
    feed_shards: int = 4
    payload_bucket: str | None = None
    kms_key_id: str | None = None
    event_bus: str | None = None
    publish_dlq_url: str | None = None
    publish_payload_bucket: str | None = None
    sources: Mapping[str, str] = attrs.field(factory=dict, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        _check(self)

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        default_backend: Backend = "dynamo",
    ) -> Settings:
        """The settings of this process: defaults, then the TOML file, then the environment.

        The file is ``path``, else the one ``FRAMEWORK_CONFIG`` names, else none. When neither
        names a backend, it is ``dynamo`` if an endpoint or a region is set (``AWS_DEFAULT_REGION``
        alone does not count), otherwise
        ``default_backend`` (an example app passes ``"embedded"`` so that it runs with no
        configuration at all).
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        file = path if path is not None else env.get(CONFIG_FILE_ENV) or None
        if file is not None:
            for name, (value, source) in _read_toml(Path(file)).items():
                values[name], sources[name] = value, source
        for name, variables in ENVIRONMENT.items():
            for variable in variables:
                raw = env.get(variable)
                if raw:
                    values[name], sources[name] = raw, variable
                    break
        if "feed_shards" in values and isinstance(values["feed_shards"], str):
            raw = values["feed_shards"]
            if not raw.isdigit():
                raise ConfigurationError(
                    f"{sources['feed_shards']}={raw!r}: must be a whole number of at least 1"
                )
            values["feed_shards"] = int(raw)
        if "backend" not in values:
            # AWS_DEFAULT_REGION is often set for every tool on a machine: it names a region,
            # not an intent to use DynamoDB.
            named_region = sources.get("region", "AWS_DEFAULT_REGION") != "AWS_DEFAULT_REGION"
            configured = "endpoint" in values or named_region
            values["backend"] = "dynamo" if configured else default_backend
        return cls(**values, sources=sources)

    def source_of(self, name: str) -> str:
        """Where setting ``name`` came from: an environment variable, a file key, or a default."""
        return self.sources.get(name, f"the default {name}")

    def describe(self) -> str:
        """One line saying which store these settings open, for a start-up log or banner."""
        if self.backend == "memory":
            return "in-memory event store (this process only)"
        if self.backend == "embedded":
            return f"embedded DynamoDB (moto, in process), tables {self.table_prefix}-*"
        where = self.endpoint or f"AWS region {self.region}"
        return f"DynamoDB at {where}, tables {self.table_prefix}-*"


def _read_toml(path: Path) -> dict[str, tuple[Any, str]]:
    """The settings in ``path``'s ``[storage]`` table, each with where it was found."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigurationError(f"{path}: cannot read the settings file: {error}") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(f"{path}: not valid TOML: {error}") from error
    storage = document.get("storage", {})
    if not isinstance(storage, dict):
        raise ConfigurationError(f"{path} storage: must be a table ([storage])")
    dynamo = storage.get("dynamo", {})
    if not isinstance(dynamo, dict):
        raise ConfigurationError(f"{path} storage.dynamo: must be a table ([storage.dynamo])")
    found = {f"storage.{key}": value for key, value in storage.items() if key != "dynamo"}
    found.update({f"storage.dynamo.{key}": value for key, value in dynamo.items()})
    by_place = {place: name for name, place in _TOML_KEYS.items()}
    settings: dict[str, tuple[Any, str]] = {}
    for place, value in found.items():
        if place not in by_place:
            known = ", ".join(sorted(by_place))
            raise ConfigurationError(f"{path} {place}: unknown setting (known: {known})")
        settings[by_place[place]] = (value, f"{path} {place}")
    return settings


def _check(settings: Settings) -> None:
    """Every setting checked, before anything is contacted; the first wrong one is reported."""

    def wrong(name: str, problem: str) -> ConfigurationError:
        value = getattr(settings, name)
        return ConfigurationError(f"{settings.source_of(name)}={value!r}: {problem}")

    if settings.backend not in BACKENDS:
        raise wrong("backend", f"must be one of {', '.join(BACKENDS)}")
    for name in ("region", "table_prefix"):
        if not isinstance(getattr(settings, name), str):
            raise wrong(name, "must be a string")
    if not _REGION.fullmatch(settings.region):
        raise wrong("region", "is not an AWS region name (like eu-west-1)")
    if not _TABLE_PREFIX.fullmatch(settings.table_prefix):
        raise wrong(
            "table_prefix", "must be 1 to 200 letters, digits, '_', '.' or '-' (it names tables)"
        )
    shards = settings.feed_shards
    if not isinstance(shards, int) or isinstance(shards, bool) or shards < 1:
        raise wrong("feed_shards", "must be a whole number of at least 1")
    endpoint = settings.endpoint
    if endpoint is not None and (
        not isinstance(endpoint, str) or not re.fullmatch(r"https?://[^\s/]+(/\S*)?", endpoint)
    ):
        raise wrong("endpoint", "must be an http:// or https:// URL")
    bucket = settings.payload_bucket
    if bucket is not None and (not isinstance(bucket, str) or not _BUCKET.fullmatch(bucket)):
        raise wrong("payload_bucket", "is not an S3 bucket name (3-63 lowercase letters, digits)")
    key = settings.kms_key_id
    if key is not None and (not isinstance(key, str) or not key.strip()):
        raise wrong("kms_key_id", "must be a KMS key id, ARN or alias")
    bus = settings.event_bus
    if bus is not None and (not isinstance(bus, str) or not _EVENT_BUS.fullmatch(bus)):
        raise wrong("event_bus", "is not an EventBridge bus name or ARN")
    queue = settings.publish_dlq_url
    if queue is not None and (
        not isinstance(queue, str) or not re.fullmatch(r"https?://[^\s/]+/\S+", queue)
    ):
        raise wrong("publish_dlq_url", "must be the URL of an SQS queue (https://sqs...)")
    published = settings.publish_payload_bucket
    if published is not None and (
        not isinstance(published, str) or not _BUCKET.fullmatch(published)
    ):
        raise wrong(
            "publish_payload_bucket", "is not an S3 bucket name (3-63 lowercase letters, digits)"
        )
    if settings.backend != "dynamo" and endpoint is not None:
        raise wrong("backend", f"is not dynamo, but {settings.source_of('endpoint')} is set")

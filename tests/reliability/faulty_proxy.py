"""A TCP proxy on loopback that misbehaves between a client and DynamoDB Local.

Per chunk of bytes, with seeded probabilities, it

- **drops** the connection before a request reaches the server (the client sees a reset: nothing
  happened, a retry is safe);
- **delays** the chunk (slow network: timeouts and retries elsewhere);
- **swallows** the server's response: the request *was* applied, the client never hears so. This
  is the ambiguous commit: only the request token and the command id make a retry safe.

Only loopback addresses are used; every loop is bounded by the proxy's lifetime.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from collections import Counter

import attrs


@attrs.define
class Faults:
    """Probabilities per chunk, and the delay range in seconds."""

    drop: float = 0.0
    swallow: float = 0.0
    delay: float = 0.0
    delay_seconds: tuple[float, float] = (0.005, 0.05)


class FaultyProxy:
    """Forwards 127.0.0.1:<port> to ``upstream``, injecting ``faults``."""

    def __init__(
        self, upstream_host: str, upstream_port: int, faults: Faults, seed: int = 0
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.faults = faults
        self.injected: Counter[str] = Counter()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultyProxy:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._listener.close()

    def _roll(self, kind: str, probability: float) -> bool:
        with self._lock:
            hit = self._random.random() < probability
            if hit:
                self.injected[kind] += 1
            return hit

    def _accept(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            for source, target, direction in ((client, server, "up"), (server, client, "down")):
                pump = threading.Thread(
                    target=self._pump, args=(source, target, direction, client, server), daemon=True
                )
                pump.start()

    def _pump(
        self,
        source: socket.socket,
        target: socket.socket,
        direction: str,
        client: socket.socket,
        server: socket.socket,
    ) -> None:
        try:
            while not self._stopped.is_set():
                chunk = source.recv(65536)
                if not chunk:
                    break
                if direction == "up" and self._roll("dropped requests", self.faults.drop):
                    break
                if direction == "down" and self._roll(
                    "swallowed responses (applied, unanswered)", self.faults.swallow
                ):
                    break
                if self._roll("delayed chunks", self.faults.delay):
                    time.sleep(self._random.uniform(*self.faults.delay_seconds))
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (client, server):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()

"""A StatsD server on loopback for the tests: a UDP socket whose packets a thread collects."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from typing import Self


class StatsdListener:
    """
    Receive StatsD packets on 127.0.0.1 and a free port until closed.

    :param prefix: only metrics whose name starts with it are kept (with the prefix removed).
    """

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.lines: list[str] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.port: int = self._sock.getsockname()[1]
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._receive, name="statsd-listener", daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._closed.is_set():
            try:
                data = self._sock.recv(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.lines += data.decode().splitlines()

    def _copy(self) -> list[str]:
        with self._lock:
            return list(self.lines)

    def metrics(self) -> list[tuple[str, float, str]]:
        """Return every (name without the prefix, value, type) received so far, in order."""
        found = []
        for line in self._copy():
            name, _, rest = line.partition(":")
            value, _, kind = rest.partition("|")
            if name.startswith(self.prefix):
                found.append((name[len(self.prefix) :], float(value), kind.split("|")[0]))
        return found

    def counters(self) -> dict[str, int]:
        """Return the sum of every counter received so far, by name."""
        totals: Counter[str] = Counter()
        for name, value, kind in self.metrics():
            if kind == "c":
                totals[name] += int(value)
        return dict(totals)

    def timers(self) -> dict[str, list[float]]:
        """Return every timer value received so far (milliseconds), by name."""
        found: dict[str, list[float]] = {}
        for name, value, kind in self.metrics():
            if kind == "ms":
                found.setdefault(name, []).append(value)
        return found

    def drain(self, timeout: float = 10.0) -> None:
        """
        Wait until a marker sent now has been read: on loopback every packet sent before it has been too.

        A datagram sent on loopback is queued on the receiving socket during the sending call, so the
        queue keeps the order in which packets were sent, whichever process sent them.
        """
        marker = f"statsd-listener.marker.{time.monotonic_ns()}"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(f"{marker}:1|c".encode(), ("127.0.0.1", self.port))
        deadline = time.monotonic() + timeout
        while not any(line.startswith(marker) for line in self._copy()):
            if time.monotonic() > deadline:
                raise TimeoutError("the StatsD listener received nothing")
            time.sleep(0.02)

    def close(self) -> None:
        """Stop receiving and free the port."""
        self._closed.set()
        self._thread.join(timeout=5)
        self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

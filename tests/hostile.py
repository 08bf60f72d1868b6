"""A token server written to misbehave, on loopback: bombs, endless streams, drips, echoes, deep JSON.

Every route is chosen by the path's first part; what follows it is free (a vendor appends its token
path). Each answer's loops are bounded in count and time and stop by themselves when the client
goes away.
"""

from __future__ import annotations

import gzip
import http.server
import io
import json
import socketserver
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

#: No answer of this server lasts longer, whatever the client does.
MAX_SECONDS = 60.0
BOMB_INFLATED = 400 * 1024 * 1024


def _gzip_bomb() -> bytes:
    """Return a gzip body of 400 MiB of zeros (about 400 KB compressed)."""
    out = io.BytesIO()
    zeros = bytes(1024 * 1024)
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as archive:
        for _ in range(BOMB_INFLATED // len(zeros)):
            archive.write(zeros)
    return out.getvalue()


class _Handler(http.server.BaseHTTPRequestHandler):
    server: HostileServer  # type: ignore[assignment]
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        route = self.path.strip("/").split("/")
        self.server.record(self, body)
        handler = getattr(self, f"route_{route[0].replace('-', '_')}", None)
        if handler is None:
            self._send(404, b'{"error": "no such route"}')
            return
        handler(route[1:], body)

    do_GET = do_POST

    # Plumbing.
    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _raw(self, data: bytes) -> bool:
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            return False
        return True

    def _status(self, route: list[str], default: int = 200) -> int:
        return int(route[0]) if route and route[0].isdigit() else default

    # Routes.
    def route_token(self, route: list[str], body: bytes) -> None:
        """Answer with the canned JSON the test set (``server.answer``)."""
        status, payload, headers = self.server.canned
        self._send(status, payload, headers)

    def route_bomb(self, route: list[str], body: bytes) -> None:
        """Answer 200 with a small gzip body that inflates to 400 MiB."""
        self._send(200, self.server.bomb(), {"Content-Encoding": "gzip"})

    def route_endless(self, route: list[str], body: bytes) -> None:
        """Answer 200 with a chunked body that never ends (until the client leaves or a minute passes)."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"[" * 65536
        started = time.monotonic()
        while time.monotonic() - started < MAX_SECONDS:
            if not self._raw(b"%x\r\n%s\r\n" % (len(chunk), chunk)):
                return
        self.close_connection = True

    def route_drip(self, route: list[str], body: bytes) -> None:
        """Answer a valid token, one byte every ``server.drip_every`` seconds."""
        payload = json.dumps({"access_token": "dripped-token", "expires_in": 3600}).encode()
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(
            payload
        )
        data = head + payload if route and route[0] == "headers" else payload
        if not (route and route[0] == "headers"):
            self._raw(head)
        started = time.monotonic()
        for byte in data:
            if time.monotonic() - started > MAX_SECONDS or not self._raw(bytes([byte])):
                return
            time.sleep(self.server.drip_every)

    def route_echo(self, route: list[str], body: bytes) -> None:
        """Answer ``status`` (401 by default) with everything the request carried, in the error text."""
        seen = "\n".join(f"{name}: {value}" for name, value in self.headers.items()) + "\n" + body.decode()
        pad = int(route[1]) if len(route) > 1 and route[1].isdigit() else 0
        message = {"error": "invalid_client", "error_description": "." * pad + seen}
        self._send(self._status(route, 401), json.dumps(message).encode())

    def route_deep(self, route: list[str], body: bytes) -> None:
        """Answer ``status`` with a JSON array nested 100,000 deep."""
        self._send(self._status(route), b"[" * 100_000 + b"]" * 100_000)


class HostileServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """
    Serve the hostile routes on a free loopback port, each connection in its own thread.

    :param drip_every: seconds between two bytes of the drip routes.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, drip_every: float = 0.5) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.drip_every = drip_every
        self.requests: list[dict[str, Any]] = []
        self.canned: tuple[int, bytes, dict[str, str]] = (200, b"{}", {})
        self._bomb: bytes | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, name="hostile-server", daemon=True)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet when a client hangs up mid-answer (what a size limit or a deadline does)."""
        exc = sys.exc_info()[1]
        if not isinstance(exc, ConnectionError | BrokenPipeError | TimeoutError):
            super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        """Return the base URL."""
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def bomb(self) -> bytes:
        """Return the gzip bomb, made once."""
        with self._lock:
            if self._bomb is None:
                self._bomb = _gzip_bomb()
            return self._bomb

    def answer(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        """Make the ``/token`` route answer ``payload`` (JSON, or bytes as they are)."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.canned = (status, body, headers or {})

    def record(self, handler: _Handler, body: bytes) -> None:
        """Keep what a request carried."""
        with self._lock:
            self.requests.append({"path": handler.path, "headers": dict(handler.headers), "body": body})

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


def peak_rss_growth(call: Callable[[], Any]) -> tuple[Any, float]:
    """Run ``call`` and return what it returned or raised, and how far the RSS rose above its start (MiB)."""
    page = 4096

    def rss() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * page

    start, peak, done = rss(), [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        outcome: Any = call()
    except Exception as exc:
        outcome = exc
    finally:
        done.set()
        sampler.join()
    return outcome, max(0, max(peak[0], rss()) - start) / 2**20

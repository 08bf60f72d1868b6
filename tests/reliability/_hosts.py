"""Code run in spawned processes that play separate hosts: each has its own temp dir (no shared file lock)."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from airflow_tokens.cache import TokenCache
from airflow_tokens.stores import Lease


class FileStore:
    """A shared store in a folder of JSON files, standing in for Variables outside a task (with a lease)."""

    name = "file"
    leases = True

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def available(self) -> bool:
        return True

    def _read(self, name: str) -> Any:
        try:
            return (self.folder / name).read_text()
        except FileNotFoundError:
            return None

    def _write(self, name: str, text: str) -> None:
        temporary = self.folder / f".{name}.{os.getpid()}"
        temporary.write_text(text)
        temporary.replace(self.folder / name)  # atomic, as a Variable write is

    def load(self, key: str) -> Any:
        return self._read(f"{key}.entry")

    def save(self, key: str, value: dict[str, Any]) -> None:
        self._write(f"{key}.entry", json.dumps(value))

    def load_lease(self, key: str) -> Lease | None:
        return Lease.from_json(self._read(f"{key}.lease"))

    def save_lease(self, key: str, lease: Lease) -> None:
        self._write(f"{key}.lease", lease.to_json())

    def clear_lease(self, key: str) -> None:
        (self.folder / f"{key}.lease").unlink(missing_ok=True)


def host(store: str, lease_seconds: float, seconds: float, ready: Any, go: Any, out: Any) -> None:
    """Play one host: once told to go, call ``get_token()`` for ``seconds``; report what was handed out."""
    from airflow_tokens.hooks.sirv import SirvTokenHook

    tempfile.tempdir = tempfile.mkdtemp(prefix="host-")  # this host's own lock folder
    cache = TokenCache(FileStore(store), lease_seconds=lease_seconds, settle=0.2, poll=0.1)
    SirvTokenHook(cache=cache).token_request  # noqa: B018 - resolve the connection before the start
    ready.put(os.getpid())
    go.wait()
    until = time.time() + seconds
    handed: dict[str, int] = {}
    slowest = 0.0
    while True:
        began = time.monotonic()
        token = SirvTokenHook(cache=cache).get_token()
        slowest = max(slowest, time.monotonic() - began)
        handed[token] = handed.get(token, 0) + 1
        if time.time() >= until:
            break
        time.sleep(0.02)
    out.put({"pid": os.getpid(), "handed": handed, "slowest": slowest})

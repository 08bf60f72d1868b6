"""The host's lock: processes of one host fetch a token one at a time (a file lock per cache key)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import filelock


def lock_path(key: str) -> Path:
    """Return the lock file of ``key`` in this user's private folder of the temp directory."""
    folder = Path(tempfile.gettempdir()) / f"airflow-tokens-locks-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.lock"


def file_lock(key: str) -> filelock.FileLock:
    """Return the (not yet taken) lock of ``key``."""
    import filelock

    # Not thread-local: the async driver may try and release it from different threads.
    return filelock.FileLock(lock_path(key), thread_local=False)


def try_lock(lock: filelock.FileLock) -> bool:
    """Take ``lock`` if it is free; never wait."""
    import filelock

    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        return False
    return True

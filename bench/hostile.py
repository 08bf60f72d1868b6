"""Measure what a hostile or broken token endpoint costs a caller, and the price of the memory-hard seal.

``make bench`` runs this file after ``bench/run.py``; ``python bench/hostile.py`` alone writes
``docs/hostile.md``. Each row of the hostile table runs on both paths against the tests' own hostile
server (loopback only, ``tests/hostile.py``) and reports the outcome, the seconds, the RSS growth and,
on the async path, the longest stall of the event loop. The sealing section compares 0.2.0's HKDF key
with the scrypt key: derivations per second (an offline guesser's rate) and the first ``get_token()``
of a fresh process with a shared store, for 0.2.0 (a worktree of its last commit) and this tree.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.hostile import HostileServer, peak_rss_growth

if TYPE_CHECKING:
    from collections.abc import Callable

REPO = Path(__file__).resolve().parent.parent
#: The last commit of 0.2.0, measured as "before".
BEFORE = "d23b535"
SECRET = 's3cr3t pa$$:wörd/+=&"é'

FIRST_TOKEN = """
import json, time
t0 = time.perf_counter()
from airflow_tokens.hooks.sirv import SirvTokenHook
try:
    from airflow_tokens.cache import TokenCache
except ImportError:
    raise
class DictStore:
    name, leases = "dict", False
    def __init__(self): self.values = {}
    def available(self): return True
    def load(self, key): return self.values.get(key)
    def save(self, key, value): self.values[key] = json.dumps(value)
hook = SirvTokenHook(cache=TokenCache(DictStore(), cross_process_lock=False))
t1 = time.perf_counter()
hook.get_token()
t2 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "first_get_token": t2 - t1}))
"""


def _connect(conn_type: str, host: str, extra: dict[str, Any] | None = None, **conn: str) -> None:
    from airflow_tokens.memory import clear_memory_cache, forget_connections

    fields = {"conn_type": conn_type, "host": host, "login": "client-id", "password": SECRET, **conn}
    os.environ["AIRFLOW_CONN_HOSTILE"] = json.dumps({**fields, "extra": json.dumps(extra or {})})
    forget_connections()
    clear_memory_cache()


def _hook(max_attempts: int = 2, max_seconds: float = 3) -> Any:
    from airflow_tokens.hooks import get_token_hook
    from airflow_tokens.retry import RetryPolicy

    retry = RetryPolicy(max_attempts=max_attempts, max_seconds=max_seconds, initial_wait=0.05, max_wait=0.1)
    return get_token_hook("hostile", cache="none", retry=retry)


async def _with_ticker(call: Callable[[], Any]) -> tuple[Any, float]:
    """Run ``call`` (a coroutine factory) on the loop beside a 5 ms ticker; return it and the worst gap."""
    worst, done = [0.0], asyncio.Event()

    async def tick() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            worst[0] = max(worst[0], now - last - 0.005)
            last = now

    ticker = asyncio.create_task(tick())
    try:
        outcome: Any = await call()
    except Exception as exc:
        outcome = exc
    finally:
        done.set()
        await ticker
    return outcome, worst[0]


def _describe(outcome: Any) -> str:
    if isinstance(outcome, Exception):
        text = str(outcome)
        return f"{type(outcome).__name__}: {text.split(': ', 2)[-1][:90]}"
    return f"token ({getattr(outcome, 'token', outcome)!s:.20})"


def _forms_shown(text: str) -> int:
    from tests.integration.test_hostile_endpoints import SECRET_FORMS

    return sum(form in text for form in SECRET_FORMS.values())


def hostile_rows(server: HostileServer, proxy: HostileServer) -> list[dict[str, Any]]:
    """Run each row of the hostile table on both paths; return one result per row and path."""
    import logging

    rows: list[tuple[str, Callable[[], None], dict[str, Any]]] = [
        (
            "gzip bomb (408 KB inflating to 400 MiB)",
            lambda: _connect("token_endpoint", f"{server.url}/bomb"),
            {},
        ),
        ("endless chunked stream", lambda: _connect("token_endpoint", f"{server.url}/endless"), {}),
        (
            "drip, 1 byte/s (read_timeout 2, max_retry_seconds 5)",
            lambda: _connect(
                "token_endpoint", f"{server.url}/drip", {"read_timeout": 2, "max_retry_seconds": 5}
            ),
            {"max_attempts": 5, "max_seconds": 5},
        ),
        (
            "echoes Authorization in a 503 (OAuth2 client_secret_basic)",
            lambda: _connect("oauth2_client_credentials", f"{server.url}/echo/503"),
            {},
        ),
        ("echoes Authorization in a 401 (Podero)", lambda: _connect("podero", f"{server.url}/echo/401"), {}),
        (
            "echoes the form body (client_secret_post)",
            lambda: _connect(
                "oauth2_client_credentials",
                f"{server.url}/echo/401",
                {"client_auth_method": "client_secret_post"},
            ),
            {},
        ),
        ("echoes the JSON body", lambda: _connect("token_endpoint", f"{server.url}/echo/401"), {}),
        (
            "echoes the secret near character 290",
            lambda: _connect("token_endpoint", f"{server.url}/echo/401/280"),
            {},
        ),
        (
            "secret in the token URL (?key=...)",
            lambda: _connect("oauth2_client_credentials", f"{server.url}/token?key={quote(SECRET, safe='')}"),
            {},
        ),
        ("100,000-deep JSON on 200", lambda: _connect("token_endpoint", f"{server.url}/deep/200"), {}),
        ("100,000-deep JSON on 503", lambda: _connect("token_endpoint", f"{server.url}/deep/503"), {}),
        (
            "70,000-character token URL",
            lambda: _connect("token_endpoint", f"{server.url}/token?{'a' * 70000}"),
            {},
        ),
        (
            "Latin-1 credentials in headers",
            lambda: (
                server.answer(200, {"access_token": "latin-1-token", "expires_in": 3600}),
                _connect(
                    "token_endpoint",
                    f"{server.url}/token",
                    {"credentials_in": "headers", "login_field": "X-Key", "password_field": "X-Secret"},
                    login="clé-ö",
                    password="sécret-ü",
                ),
            ),
            {},
        ),
    ]
    answers = {
        "token_type 'Bearer\\r\\nX-Injected: 1'": {
            "access_token": "abc.def",
            "token_type": "Bearer\r\nX-Injected: 1",
            "expires_in": 3600,
        },
        "JWT whose exp passed an hour ago, no expires_in": {
            "access_token": "eyJhbGciOiJub25lIn0."
            + __import__("base64")
            .urlsafe_b64encode(json.dumps({"exp": int(time.time()) - 3600}).encode())
            .rstrip(b"=")
            .decode()
            + ".c2ln"
        },
        "an 8 MiB token": {"access_token": "a" * 8 * 2**20, "expires_in": 3600},
    }
    for name, payload in answers.items():
        rows.append(
            (
                name,
                lambda payload=payload: (
                    server.answer(200, payload),
                    _connect("token_endpoint", f"{server.url}/token"),
                ),
                {},
            )
        )

    class Capture(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.DEBUG)
            self.lines: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.lines.append(record.getMessage())

    results = []
    for name, setup, retry in rows:
        for path in ("sync", "async"):
            setup()
            hook = _hook(**retry)
            capture = Capture()
            logging.getLogger().addHandler(capture)
            logging.getLogger().setLevel(logging.DEBUG)
            started = time.monotonic()
            try:
                if path == "sync":
                    outcome, growth = peak_rss_growth(hook.get_access_token)
                    stall = None
                else:
                    box: dict[str, Any] = {}

                    def run_async(hook: Any = hook, box: dict[str, Any] = box) -> Any:
                        outcome, box["stall"] = asyncio.run(_with_ticker(hook.aget_access_token))
                        if isinstance(outcome, Exception):
                            raise outcome
                        return outcome

                    outcome, growth = peak_rss_growth(run_async)
                    stall = box.get("stall")
            finally:
                logging.getLogger().removeHandler(capture)
            seconds = time.monotonic() - started
            text = "\n".join([str(outcome), repr(outcome), *capture.lines])
            results.append(
                {
                    "row": name,
                    "path": path,
                    "outcome": _describe(outcome),
                    "seconds": seconds,
                    "rss_mib": growth,
                    "loop_stall_ms": None if stall is None else stall * 1000,
                    "secret_forms_shown": _forms_shown(text),
                }
            )
            print(
                f"{name} [{path}]: {_describe(outcome)}; {seconds:.2f} s; +{growth:.1f} MiB"
                + ("" if stall is None else f"; loop stall {stall * 1000:.1f} ms")
                + f"; secret forms shown {results[-1]['secret_forms_shown']}",
                flush=True,
            )
    # Loopback with a proxy in the environment.
    for path in ("sync", "async"):
        server.answer(200, {"access_token": "direct-token", "expires_in": 3600})
        _connect("token_endpoint", f"{server.url}/token")
        os.environ["HTTP_PROXY"] = os.environ["ALL_PROXY"] = proxy.url
        try:
            hook = _hook()
            token = hook.get_token() if path == "sync" else asyncio.run(hook.aget_token())
        finally:
            del os.environ["HTTP_PROXY"], os.environ["ALL_PROXY"]
        results.append(
            {
                "row": "plain http to loopback with HTTP_PROXY set",
                "path": path,
                "outcome": f"token ({token}); requests that reached the proxy: {len(proxy.requests)}",
                "seconds": None,
                "rss_mib": None,
                "loop_stall_ms": None,
                "secret_forms_shown": 0,
            }
        )
    return results


def lease_rows() -> list[dict[str, Any]]:
    """Time a cold caller facing a lease from a clock 10 minutes ahead, and one with ``until`` = inf."""
    from airflow_tokens.cache import TokenCache
    from airflow_tokens.memory import clear_memory_cache
    from airflow_tokens.stores import Lease
    from tests.unit.test_cache import SEAL, RawStore, Vendor

    results = []
    for name, until in (("clock 10 minutes ahead", time.time() + 630), ("until = inf", float("inf"))):
        clear_memory_cache()
        store, vendor = RawStore(), Vendor()
        store.lease["k"] = Lease("other-host:1:abcd", until)
        started = time.monotonic()
        TokenCache(store, poll=0.05, settle=0.01, lease_seconds=2.0).get("k", "fp", 60, vendor, seal=SEAL)
        results.append(
            {
                "row": f"lease written by a host with {name} (lease_seconds 2)",
                "path": "sync",
                "outcome": f"took over after {time.monotonic() - started:.2f} s, {vendor.calls} request",
                "seconds": time.monotonic() - started,
                "rss_mib": None,
                "loop_stall_ms": None,
                "secret_forms_shown": 0,
            }
        )
    return results


def sealing_figures() -> dict[str, Any]:
    """Return offline guesses per second (HKDF, scrypt) and the first get_token() before and after."""
    from airflow_tokens.sealing import HKDF_FORMAT, EntrySeal

    def rate(fmt: str, count: int) -> float:
        started = time.perf_counter()
        for guess in range(count):
            EntrySeal(f"summer{guess}".encode(), "sirv.sirv_default")._derive(fmt)
        return count / (time.perf_counter() - started)

    figures: dict[str, Any] = {
        "hkdf_guesses_per_second": rate(HKDF_FORMAT, 2000),
        "scrypt_guesses_per_second": rate("airflow-tokens/3", 20),
    }
    from airflow_tokens.testing import EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET, EmulatorServer

    with EmulatorServer() as emulator, tempfile.TemporaryDirectory() as scratch:
        conn = {
            "conn_type": "sirv",
            "host": emulator.url,
            "login": EMULATOR_CLIENT_ID,
            "password": EMULATOR_CLIENT_SECRET,
        }
        env = {**os.environ, "AIRFLOW_CONN_SIRV_DEFAULT": json.dumps(conn)}
        before = Path(scratch) / "before"
        subprocess.run(["git", "worktree", "add", "-q", str(before), BEFORE], cwd=REPO, check=True)
        try:
            for label, root in (("before", before), ("after", REPO)):
                runs = []
                for _ in range(5):
                    out = subprocess.run(
                        [sys.executable, "-c", FIRST_TOKEN],
                        env={**env, "PYTHONPATH": str(root)},
                        cwd=scratch,
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    runs.append(json.loads(out.stdout.strip().splitlines()[-1])["first_get_token"])
                figures[f"first_get_token_{label}_ms"] = sorted(runs)[len(runs) // 2] * 1000
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=REPO, check=False)
    return figures


def write_report(path: Path, rows: list[dict[str, Any]], sealing: dict[str, Any]) -> None:
    lines = [
        "# A hostile token endpoint: what it costs a caller",
        "",
        "Made by `bench/hostile.py` (`make bench`): each row against the tests' own hostile server on",
        "loopback (`tests/hostile.py`), on both paths; RSS is the growth over the call, the loop stall the",
        "longest an asyncio ticker of 5 ms waited beyond its period. Forms of the secret are counted in the",
        "error's message, its repr and every log line of the call.",
        "",
        "| endpoint | path | outcome | seconds | RSS (MiB) | loop stall (ms) | secret forms shown |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [
            row["row"],
            row["path"],
            row["outcome"].replace("|", "\\|").replace("\n", " "),
            "" if row["seconds"] is None else f"{row['seconds']:.2f}",
            "" if row["rss_mib"] is None else f"{row['rss_mib']:.1f}",
            "" if row["loop_stall_ms"] is None else f"{row['loop_stall_ms']:.1f}",
            str(row["secret_forms_shown"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "## The sealing key",
        "",
        "| figure | 0.2.0 (HKDF-SHA256) | now (scrypt N=2**14, r=8, p=1) |",
        "|---|---|---|",
        f"| offline guesses per second, one core | {sealing['hkdf_guesses_per_second']:,.0f} | "
        f"{sealing['scrypt_guesses_per_second']:,.1f} |",
        f"| first `get_token()` of a process with a shared store (median of 5, one fetch) | "
        f"{sealing['first_get_token_before_ms']:.0f} ms | {sealing['first_get_token_after_ms']:.0f} ms |",
        "",
    ]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "hostile.md")
    args = parser.parse_args(argv)
    with HostileServer(drip_every=1.0) as server, HostileServer() as proxy:
        server.bomb()  # made once, before anything is timed
        rows = hostile_rows(server, proxy) + lease_rows()
    sealing = sealing_figures()
    print(json.dumps(sealing, indent=1))
    write_report(args.out, rows, sealing)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

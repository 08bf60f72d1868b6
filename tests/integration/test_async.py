"""The async path against the emulator: ``await hook.aget_token()`` on one event loop, real HTTP.

The fault matrix runs through this path too (``tests/reliability/test_fault_matrix.py``).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
import tenacity

from airflow_tokens.exceptions import TokenConfigError, TokenRequestError
from airflow_tokens.flow import prepare
from airflow_tokens.hooks.sirv import SirvTokenHook
from airflow_tokens.memory import clear_memory_cache
from airflow_tokens.retry import RetryPolicy
from airflow_tokens.stores import VariableStore
from airflow_tokens.testing import EmulatorServer, Fault
from tests.vendors import SIRV, delete_variable, variable_row

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

FAST = RetryPolicy(max_attempts=4, max_seconds=20).retrying(wait=tenacity.wait_none())
#: A loop blocked by the 0.5 s token request ticks at most once while it waits; a free one about 50
#: times (a 10 ms ticker). A count, not a time: a busy machine slows the ticker, it does not stop it.
MIN_TICKS_WHILE_WAITING = 3


@pytest.fixture
def sirv(token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> Callable[..., SirvTokenHook]:
    """Point ``sirv_default`` at the emulator and return a hook factory (fast retries)."""

    def make(**conn: Any) -> SirvTokenHook:
        SIRV.configure(monkeypatch, token_emulator.url, **conn)
        return SirvTokenHook(retry=FAST)

    make()
    return make


async def _with_ticker(work: Awaitable[Any]) -> tuple[Any, float, int]:
    """Await ``work`` beside a 10 ms ticker; return its result, the largest tick gap, the ticks meanwhile."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.05)
    before = len(gaps)
    try:
        result = await work
        during = len(gaps) - before
    finally:
        done.set()
        await ticker
    return result, max(gaps), during


def test_32_coroutines_on_one_loop_cause_one_request_and_the_loop_keeps_ticking(
    sirv: Callable[..., SirvTokenHook], token_emulator: EmulatorServer
) -> None:
    token_emulator.client.inject("sirv", Fault.delay(0.5))
    hooks = [sirv() for _ in range(32)]

    async def ask_all() -> tuple[list[str], float, int]:
        # The first async use in a process loads modules and CA certificates in a worker thread
        # (test_the_first_request_imports_nothing_in_the_loop_thread); the requests are measured here.
        await prepare()
        return await _with_ticker(asyncio.gather(*(hook.aget_token() for hook in hooks)))

    started = time.perf_counter()
    tokens, gap, ticks = asyncio.run(ask_all())
    elapsed = time.perf_counter() - started
    requests = token_emulator.client.token_requests("sirv")
    print(f"\n32 aget_token() on one loop: {requests} token request in {elapsed:.2f} s, {ticks} ticks ")
    print(f"meanwhile, largest loop gap {gap * 1000:.0f} ms (ticker period 10 ms)")
    assert len(tokens) == 32
    assert len(set(tokens)) == 1
    assert token_emulator.client.token_requests("sirv") == 1
    assert ticks >= MIN_TICKS_WHILE_WAITING


#: Run in a fresh interpreter: the first aget_token() and async session call, through a shared store (so
#: the file lock and the entry encryption run too), recording every module imported in the loop's thread.
FIRST_USE = """
import asyncio, json, sys

from airflow_tokens.stores import Lease
from airflow_tokens.cache import TokenCache
from airflow_tokens.hooks.sirv import SirvTokenHook


class DictStore:
    name, leases, entries = "dict", True, {}

    def available(self): return True
    def load(self, key): return self.entries.get(key)
    def save(self, key, value): self.entries[key] = json.dumps(value)
    def load_lease(self, key): return Lease.from_json(self.entries.get("lease:" + key))
    def save_lease(self, key, lease): self.entries["lease:" + key] = lease.to_json()
    def clear_lease(self, key): self.entries.pop("lease:" + key, None)


imported = []


def audit(event, args):
    if event == "import" and args[0] not in sys.modules:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        imported.append(args[0])


async def main():
    hook = SirvTokenHook(cache=TokenCache(DictStore(), settle=0.01))
    token = await hook.aget_token()
    async with await hook.aget_conn() as client:
        status = (await client.get("/v2/account")).status_code
    return token, status


sys.addaudithook(audit)
token, status = asyncio.run(main())
print(json.dumps({"stored": bool(DictStore.entries), "status": status, "imported": imported}))
"""


def test_the_first_request_imports_nothing_in_the_loop_thread(
    sirv: Callable[..., SirvTokenHook], token_emulator: EmulatorServer
) -> None:
    # An import in the loop's thread stalls every coroutine (hundreds of ms without bytecode).
    out = subprocess.run(
        [sys.executable, "-c", FIRST_USE], capture_output=True, text=True, timeout=120, env=os.environ.copy()
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["stored"]
    assert result["status"] == 200
    assert result["imported"] == []
    assert token_emulator.client.token_requests("sirv") == 1


def test_503_then_200_is_retried(sirv: Callable[..., SirvTokenHook], token_emulator: EmulatorServer) -> None:
    token_emulator.client.inject("sirv", Fault.status(503))
    assert asyncio.run(sirv().aget_token())
    assert token_emulator.client.token_requests("sirv") == 2


def test_401_is_a_typed_error_after_one_request(
    sirv: Callable[..., SirvTokenHook], token_emulator: EmulatorServer
) -> None:
    with pytest.raises(TokenRequestError) as info:
        asyncio.run(sirv(password="wrong-secret-value").aget_token())
    assert info.value.status == 401
    assert info.value.attempts == 1
    assert "Wrong credentials" in str(info.value)
    assert "wrong-secret-value" not in str(info.value)
    assert token_emulator.client.token_requests("sirv") == 1


def test_async_session_sends_the_token_and_renews_it_once_on_401(
    sirv: Callable[..., SirvTokenHook], token_emulator: EmulatorServer
) -> None:
    hook = sirv()

    async def calls() -> tuple[Any, Any, str]:
        async with await hook.aget_conn() as client:
            first = await client.get("/v2/account")
            await asyncio.to_thread(token_emulator.client.revoke)
            second = await client.get("/v2/account")
        return first, second, await hook.aget_token()

    first, second, current = asyncio.run(calls())
    assert first.status_code == 200
    assert second.status_code == 200
    assert [response.status_code for response in second.history] == [401]
    assert second.request.headers["Authorization"] == f"Bearer {current}"
    assert first.request.headers["Authorization"] != second.request.headers["Authorization"]
    assert token_emulator.client.token_requests("sirv") == 2
    assert token_emulator.client.resource_requests() == 3


def test_async_session_gives_up_after_one_renewal(
    sirv: Callable[..., SirvTokenHook], token_emulator: EmulatorServer
) -> None:
    hook = sirv()

    async def calls() -> Any:
        async with await hook.aget_conn() as client:
            assert (await client.get("/v2/account")).status_code == 200
            await asyncio.to_thread(token_emulator.client.revoke)
            await asyncio.to_thread(
                token_emulator.client.inject, "sirv", Fault.patch(token="unknown-to-the-emulator")
            )
            return await client.get("/v2/account")

    refused = asyncio.run(calls())
    assert refused.status_code == 401
    assert len(refused.history) == 1
    assert token_emulator.client.token_requests("sirv") == 2


def test_auth_header_and_direct_fetch(
    sirv: Callable[..., SirvTokenHook], token_emulator: EmulatorServer
) -> None:
    hook = sirv()

    async def both() -> tuple[dict[str, str], str]:
        return await hook.aget_auth_header(), (await hook.afetch_access_token()).token

    header, fetched = asyncio.run(both())
    assert header["Authorization"].startswith("Bearer ")
    assert header["Authorization"] != f"Bearer {fetched}"  # afetch_access_token bypasses the cache
    assert token_emulator.client.token_requests("sirv") == 2


def test_handed_out_tokens_are_masked(sirv: Callable[..., SirvTokenHook]) -> None:
    from airflow.sdk._shared.secrets_masker import redact

    hook = sirv()

    async def both() -> tuple[str, str]:
        return await hook.aget_token(), (await hook.afetch_access_token()).token

    for token in asyncio.run(both()):
        assert redact(f"token is {token}") == "token is ***"


def test_missing_connection_is_the_same_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_SIRV_NOWHERE", raising=False)
    with pytest.raises(TokenConfigError, match="'sirv_nowhere': conn_id: is not defined") as sync_error:
        SirvTokenHook(sirv_conn_id="sirv_nowhere").get_token()
    with pytest.raises(TokenConfigError) as async_error:
        asyncio.run(SirvTokenHook(sirv_conn_id="sirv_nowhere").aget_token())
    assert str(async_error.value) == str(sync_error.value)


def test_the_connection_is_read_with_aget_connection(
    sirv: Callable[..., SirvTokenHook], monkeypatch: pytest.MonkeyPatch, token_emulator: EmulatorServer
) -> None:
    from airflow.sdk import BaseHook

    def sync_lookup(conn_id: str) -> Any:
        raise AssertionError(f"the async path read {conn_id} with the blocking get_connection")

    hook = sirv()
    monkeypatch.setattr(BaseHook, "get_connection", sync_lookup)
    assert asyncio.run(hook.aget_token())
    assert token_emulator.client.token_requests("sirv") == 1


@pytest.fixture
def sirv_in_dag(token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bool]]:
    """Point ``sirv_default`` at the emulator; record, for each Variable access, whether a loop ran there."""
    SIRV.configure(monkeypatch, token_emulator.url)
    on_loop: list[bool] = []

    def spy(name: str) -> Callable[..., Any]:
        real = getattr(VariableStore, name)

        def call(self: VariableStore, *args: Any) -> Any:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                on_loop.append(False)
            else:
                on_loop.append(True)
            return real(self, *args)

        return call

    for name in ("load", "save", "load_lease", "save_lease", "clear_lease"):
        monkeypatch.setattr(VariableStore, name, spy(name))
    yield on_loop
    delete_variable(SIRV.variable_key)


@pytest.mark.airflow_db
def test_a_task_with_its_own_loop_shares_the_token_through_the_variable(
    dagbag: Any, sirv_in_dag: list[bool], token_emulator: EmulatorServer
) -> None:
    dag = dagbag.dags["async_token_in_task"]
    assert dag.test().state == "success"
    assert token_emulator.client.token_requests("sirv") == 1
    row = variable_row(SIRV.variable_key)
    assert row is not None
    assert SIRV.open_entry(row.val).token.token in token_emulator.client.issued_tokens()
    # A fresh process (empty memory) is served by the Variable, read off the event loop.
    clear_memory_cache()
    assert dag.test().state == "success"
    assert token_emulator.client.token_requests("sirv") == 1
    assert sirv_in_dag  # the Variable was used...
    assert not any(sirv_in_dag)  # ...and never from the thread running the event loop
    assert threading.active_count() >= 1

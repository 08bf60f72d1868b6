"""A refresh never hurts: it runs beside the caller, a failing vendor is ridden out on the token held.

Against the emulator, with short Sirv tokens: the outage-in-the-margin scenario (scaled from a 40 s
token to 16 s), a revoked secret that is reported at once, a slow refresh that no caller waits for,
and ``refresh_in`` (Microsoft Entra ID's server hint), on both paths.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from airflow_tokens.exceptions import TokenRequestError
from airflow_tokens.hooks.sirv import SirvTokenHook
from airflow_tokens.hooks.token_endpoint import TokenEndpointHook
from airflow_tokens.memory import MEMORY, clear_memory_cache
from airflow_tokens.retry import RetryPolicy
from airflow_tokens.testing import EmulatorServer, Fault
from tests.vendors import SIRV, TOKEN_ENDPOINT

FAST = RetryPolicy(max_attempts=2, max_seconds=1, initial_wait=0.05, max_wait=0.1)


def wait_for_background(key: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while key in MEMORY.refreshing and time.monotonic() < deadline:
        time.sleep(0.01)
    assert key not in MEMORY.refreshing


@pytest.fixture(autouse=True)
def _fresh_memory() -> Any:
    clear_memory_cache()
    yield
    clear_memory_cache()


def test_an_outage_in_the_margin_is_ridden_out_then_reported_then_recovered(
    token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # 16 s tokens, margin 6 s (capped at a quarter: 4 s): refreshed from 4 s before expiry, handed out
    # until 1 s before. The vendor answers 503 from 4.5 s before expiry until 4 s after it.
    SIRV.configure(monkeypatch, token_emulator.url, extra={"expires_in": 16, "refresh_margin": 6})
    hook = SirvTokenHook(cache="memory", retry=FAST)
    first = hook.get_access_token()
    expires = first.expires_at.timestamp()
    outage = (expires - 4.5, expires + 4)
    while time.time() < outage[0]:
        time.sleep(0.05)
    token_emulator.client.chaos("sirv", outages=[list(outage)])
    calls: list[tuple[float, str | None, int | None, int]] = []  # (at, token, error status, requests)
    while time.time() < outage[1]:
        at = time.time()
        try:
            token, status = hook.get_access_token(), None
            assert token.expires_at.timestamp() > time.time()  # never an expired token
            value: str | None = token.token
        except TokenRequestError as exc:
            value, status = None, exc.status
        calls.append((at, value, status, token_emulator.client.token_requests("sirv")))
        time.sleep(0.05)
    token_emulator.client.chaos("sirv")  # the vendor is back

    serving = [call for call in calls if call[0] < expires - 1.2]
    # (A call that starts in the outage's last moment may be answered after it: left out.)
    failing = [call for call in calls if expires - 0.8 < call[0] < outage[1] - 0.5]
    print(f"{len(serving)} calls while the held token was handed out, {len(failing)} after")
    assert len(serving) >= 40
    assert all(token == first.token and status is None for _, token, status, _ in serving)
    # Backed off: a handful of requests while it served the held token, not one per call.
    assert serving[-1][3] - 1 <= 8
    assert "handing out the token held" in caplog.text
    # Once the held token may no longer be handed out (and after it expired): the typed 503.
    assert failing
    assert all(token is None and status == 503 for _, token, status, _ in failing), [
        (round(at - expires, 2), token == first.token, status)
        for at, token, status, _ in failing
        if token is not None or status != 503
    ]
    # The first call after the outage fetches a new token.
    after = hook.get_access_token()
    assert after.token != first.token
    assert after.expires_at.timestamp() > time.time()


@pytest.mark.parametrize("status", [401, 400])
def test_wrong_credentials_are_reported_at_once_even_with_a_valid_token_in_hand(
    token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch, status: int
) -> None:
    SIRV.configure(monkeypatch, token_emulator.url, extra={"expires_in": 8, "refresh_margin": 60})
    hook = SirvTokenHook(cache="memory", retry=FAST)
    held = hook.get_access_token()  # refreshed from 2 s before expiry (a quarter of 8 s)
    token_emulator.client.inject("sirv", *[Fault.status(status)] * 5)
    while time.time() < held.expires_at.timestamp() - 1.9:
        time.sleep(0.05)
    assert hook.get_access_token().token == held.token  # this caller had it; the refresh runs beside
    wait_for_background(hook.cache_key)
    with pytest.raises(TokenRequestError) as info:  # the next caller hears of it, token valid or not
        hook.get_access_token()
    assert info.value.status == status


@pytest.mark.parametrize("path", ["sync", "async"])
def test_a_caller_holding_a_valid_token_never_waits_for_its_refresh(
    token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    SIRV.configure(monkeypatch, token_emulator.url, extra={"expires_in": 8, "refresh_margin": 60})
    hook = SirvTokenHook(cache="memory", retry=FAST)

    async def both_async() -> list[str]:
        held = await hook.aget_access_token()
        while time.time() < held.expires_at.timestamp() - 1.9:
            await asyncio.sleep(0.05)
        token_emulator.client.inject("sirv", Fault.delay(3))
        tokens = [(await hook.aget_access_token()).token]  # starts the refresh, a task on this loop
        while token_emulator.client.token_requests("sirv") < 2:
            await asyncio.sleep(0.01)
        tokens.append((await hook.aget_access_token()).token)  # the answer is 3 s away: still held
        assert hook.cache_key in MEMORY.refreshing
        while hook.cache_key in MEMORY.refreshing:
            await asyncio.sleep(0.01)
        tokens += [held.token, (await hook.aget_access_token()).token]
        return tokens

    if path == "async":
        during, still, held, after = asyncio.run(both_async())
    else:
        first = hook.get_access_token()
        while time.time() < first.expires_at.timestamp() - 1.9:
            time.sleep(0.05)
        token_emulator.client.inject("sirv", Fault.delay(3))
        during = hook.get_access_token().token
        while token_emulator.client.token_requests("sirv") < 2:
            time.sleep(0.01)
        still = hook.get_access_token().token
        assert hook.cache_key in MEMORY.refreshing
        wait_for_background(hook.cache_key)
        held, after = first.token, hook.get_access_token().token
    assert during == still == held
    assert after != held
    assert token_emulator.client.token_requests("sirv") == 2


def test_a_refresh_time_the_server_suggests_comes_before_the_margin(
    token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Microsoft Entra ID sends refresh_in (half the lifetime): refresh from then, not from the margin.
    TOKEN_ENDPOINT.configure(monkeypatch, token_emulator.url)
    token_emulator.client.inject("custom", Fault.patch({"refresh_in": 2}))
    hook = TokenEndpointHook(cache="memory", retry=FAST)
    first = hook.get_access_token()
    assert first.refresh_after is not None
    assert first.lifetime > 600  # the margin alone would keep it for many minutes
    time.sleep(2.1)
    assert hook.get_access_token().token == first.token  # handed out at once, refreshed beside
    wait_for_background(hook.cache_key)
    assert hook.get_access_token().token != first.token
    assert token_emulator.client.token_requests("custom") == 2

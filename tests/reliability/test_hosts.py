"""Many hosts sharing one store and no file lock: the lease makes one token request per refresh.

Each spawned process plays a host with its own temp dir (so the host's file lock does not
serialise it with the others, as on separate machines), runs the real ``SirvTokenHook`` against the
emulator, and shares only a store folder standing in for the Variable.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_tokens.testing import EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET, EmulatorServer, Fault
from tests.reliability._hosts import host

pytestmark = pytest.mark.timeout(600)

HOSTS = 6
LIFETIME = 6  # Sirv's expiresIn; the 60 s margin is capped at a quarter: 1.5 s
MARGIN = LIFETIME / 4
SECONDS = 14.0


@pytest.fixture
def sirv(token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> EmulatorServer:
    connection = {
        "conn_type": "sirv",
        "host": token_emulator.url,
        "login": EMULATOR_CLIENT_ID,
        "password": EMULATOR_CLIENT_SECRET,
        "extra": {"expires_in": LIFETIME},
    }
    monkeypatch.setenv("AIRFLOW_CONN_SIRV_DEFAULT", json.dumps(connection))  # inherited by spawned hosts
    return token_emulator


class Hosts:
    """Start spawned hosts, let each import and resolve its connection, then release them together."""

    def __init__(self, store: Path, lease_seconds: float, seconds: float, count: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.ready, self.go, self.out = context.Queue(), context.Event(), context.Queue()
        self.procs = [
            context.Process(
                target=host, args=(str(store), lease_seconds, seconds, self.ready, self.go, self.out)
            )
            for _ in range(count)
        ]
        for proc in self.procs:
            proc.start()
        for _ in self.procs:
            self.ready.get(timeout=300)  # spawning and importing Airflow; slow on a busy machine

    def release(self) -> None:
        self.go.set()

    def results(self, timeout: float) -> list[dict[str, Any]]:
        results = [self.out.get(timeout=timeout) for _ in self.procs]
        for proc in self.procs:
            proc.join(timeout=30)
        return results


def _run_hosts(store: Path, lease_seconds: float, seconds: float) -> list[dict[str, Any]]:
    hosts = Hosts(store, lease_seconds, seconds, HOSTS)
    hosts.release()  # on a cold cache, all at once
    return hosts.results(timeout=seconds + 120)


def test_one_request_per_refresh_for_all_hosts_with_the_lease_and_a_herd_without(
    sirv: EmulatorServer, tmp_path: Path
) -> None:
    with_lease = tmp_path / "with"
    with_lease.mkdir()
    results = _run_hosts(with_lease, 30.0, SECONDS)
    leased = sirv.client.token_requests("sirv")
    issued = set(sirv.client.issued_tokens())
    sirv.client.reset()
    without = tmp_path / "without"
    without.mkdir()
    _run_hosts(without, 0.0, SECONDS)
    unleased = sirv.client.token_requests("sirv")
    bound = math.ceil(SECONDS / (LIFETIME - MARGIN)) + 1
    print(
        f"\n{HOSTS} hosts, {SECONDS:.0f} s on {LIFETIME} s tokens: {leased} token requests with the lease "
        f"(bound {bound}), {unleased} without"
    )
    assert leased <= bound
    assert unleased >= HOSTS  # without the lease every host fetches on the cold start
    # every host was served, only with tokens the emulator issued
    assert all(result["handed"] for result in results)
    assert {token for result in results for token in result["handed"]} <= issued


def test_a_killed_lease_holder_is_replaced_within_the_lease_time(
    sirv: EmulatorServer, tmp_path: Path
) -> None:
    sirv.client.inject("sirv", Fault.delay(60))  # the first request hangs: its sender holds the lease
    holder = Hosts(tmp_path, 4.0, 1.0, 1)
    others = Hosts(tmp_path, 4.0, 0.5, 3)
    holder.release()
    deadline = time.time() + 30
    while sirv.client.token_requests("sirv") < 1 and time.time() < deadline:
        time.sleep(0.05)
    assert sirv.client.token_requests("sirv") == 1  # the holder is inside its hanging request
    os.kill(holder.procs[0].pid or 0, signal.SIGKILL)
    holder.procs[0].join(timeout=10)
    others.release()
    results = others.results(timeout=60)
    waited = max(result["slowest"] for result in results)
    print(f"\nafter the holder was killed, the slowest get_token() of the others took {waited:.1f} s")
    assert waited < 4.0 + 10  # the lease time, plus generous room on a busy machine
    assert sirv.client.token_requests("sirv") == 2  # the dead holder's, then exactly one takeover
    tokens = {token for result in results for token in result["handed"]}
    assert len(tokens) == 1

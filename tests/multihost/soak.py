"""The chaos soak: many hosts calling ``get_token()`` while the vendor fails at random, with an outage and
a killed lease holder, and the figures that say whether a refresh ever hurt.

``run_soak`` drives the ``multihost_chaos`` DAG (12 tasks over the Celery deployment's three worker
hosts, 8 s Sirv tokens) with the emulator answering 10 % of token requests 503 and 2 % 429 with
``Retry-After``, failing every request during one outage, and SIGKILLs the task process whose token
request is held at ``kill_at``. ``tests/multihost/test_celery.py`` runs it for 60 s and asserts the two
zeros; ``make soak`` runs it for 10 minutes (``scripts/soak.py``) and writes ``docs/soak.md``.
"""

from __future__ import annotations

import math
import os
import signal
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_tokens.testing import Fault
from tests.multihost.scenarios import SHORT_LIFETIME, USABLE_LIFETIME, sender_pid

if TYPE_CHECKING:
    from tests.multihost.scenarios import Deployment, Run

CONN_ID = "sirv_chaos"
#: How long the killed holder's token request is held before it is killed.
HOLD_SECONDS = 6.0


@dataclass
class Soak:
    """What a soak did, and its figures."""

    run: Run
    seconds: float
    calls: list[list[float]]
    requests: list[dict[str, Any]]
    outage: tuple[float, float]
    killed_pid: int | None
    drawn: dict[str, int]

    def _valid_windows(self) -> list[tuple[float, float]]:
        """Return when each token the vendor issued was valid: from its request to its expiry."""
        return [(r["time"], r["time"] + SHORT_LIFETIME) for r in self.requests if r.get("status") == 200]

    def failed_while_valid(self) -> list[list[float]]:
        """Return the calls that failed while some token the vendor had issued was still valid."""
        windows = self._valid_windows()
        return [
            call
            for call in self.calls
            if call[3] == 0.0
            and any(start < call[0] and call[0] + call[1] < end - 0.5 for start, end in windows)
        ]

    def expired_served(self) -> list[list[float]]:
        """Return the calls that got a token already expired when the call returned."""
        return [call for call in self.calls if call[3] and call[3] <= call[0] + call[1]]

    def failed(self) -> list[list[float]]:
        """Return every failed call."""
        return [call for call in self.calls if call[3] == 0.0]

    def figures(self) -> dict[str, Any]:
        """Return the soak's figures, as ``docs/soak.md`` shows them."""
        durations = sorted(call[1] for call in self.calls)
        span = max(c[0] + c[1] for c in self.calls) - min(c[0] for c in self.calls)
        outage = self.outage[1] - self.outage[0]
        lifetimes = max(1.0, (span - outage) / USABLE_LIFETIME)  # no token can be had in the outage

        def quantile(q: float) -> float:
            return durations[min(len(durations) - 1, math.ceil(q * len(durations)) - 1)] * 1000

        issued = sum(1 for r in self.requests if r.get("status") == 200)
        return {
            "seconds": round(span, 1),
            "calls": len(self.calls),
            "failed_calls": len(self.failed()),
            "failed_while_a_valid_token_existed": len(self.failed_while_valid()),
            "expired_tokens_served": len(self.expired_served()),
            "token_requests": len(self.requests),
            "tokens_issued": issued,
            "usable_lifetimes_outside_the_outage": round(lifetimes, 1),
            "requests_per_usable_lifetime": round(len(self.requests) / lifetimes, 2),
            "issued_per_usable_lifetime": round(issued / lifetimes, 2),
            "get_token_p50_ms": round(quantile(0.50), 3),
            "get_token_p99_ms": round(quantile(0.99), 3),
            "get_token_max_ms": round(durations[-1] * 1000, 1),
            "faults_drawn": self.drawn,
            "killed_holder": self.killed_pid is not None,
        }


def run_soak(
    deployment: Deployment, seconds: float, outage_at: float, outage_seconds: float, kill_at: float
) -> Soak:
    """Run the chaos DAG for ``seconds``; fail every request for ``outage_seconds`` from ``outage_at``."""
    emulator = deployment.emulator.client
    before = len(deployment.token_requests(CONN_ID))
    triggered = deployment.trigger("multihost_chaos", {"conn_id": CONN_ID, "seconds": seconds})
    # The clock starts when the first task asks (the tasks take a while to start on the workers).
    deadline = time.monotonic() + 240
    while len(deployment.token_requests(CONN_ID)) == before:
        assert time.monotonic() < deadline, "no token request arrived"
        time.sleep(0.1)
    started = time.time()
    outage = (started + outage_at, started + outage_at + outage_seconds)
    emulator.chaos("sirv", p503=0.10, p429=0.02, retry_after=1, outages=[list(outage)], seed=20261203)
    killed: int | None = None
    while time.time() < started + kill_at:
        time.sleep(0.2)
    held = len(deployment.token_requests(CONN_ID))
    emulator.inject("sirv", Fault.delay(HOLD_SECONDS))  # the next token request is held...
    while time.time() < started + seconds - HOLD_SECONDS:
        records = deployment.token_requests(CONN_ID)
        if len(records) > held and time.time() - records[held]["time"] > 1.0:
            killed = sender_pid(records[held]["client"], deployment.emulator.port)
            if killed is not None:
                os.kill(killed, signal.SIGKILL)  # ... and its sender, holding the lease, is killed
                print(f"[soak] killed the lease holder, pid {killed}", flush=True)
            break
        time.sleep(0.1)
    run = deployment.finish(triggered, timeout=seconds + 300)
    drawn = dict(emulator.chaos("sirv").get("drawn") or {})  # stopped: what it drew in all
    records = deployment.token_requests(CONN_ID)[before:]
    return Soak(run, seconds, run.calls, records, outage, killed, drawn)

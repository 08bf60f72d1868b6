"""Every vendor against every fault the emulator can inject: recovery, typed errors, bounded time.

Every row runs through both drivers of the one token core: ``get_access_token()`` (requests) and
``await aget_access_token()`` (httpx on an event loop); the outcome and the request count must agree.
Set ``RELIABILITY_REPORT=docs/reliability.md`` to write the matrix of outcomes (``make reliability``).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from airflow_tokens.exceptions import TokenError, TokenRequestError, TokenResponseError
from airflow_tokens.retry import RetryPolicy
from airflow_tokens.testing import EmulatorServer, Fault
from tests.vendors import VENDORS, VendorCase

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

POLICY = RetryPolicy(max_attempts=4, max_seconds=10, initial_wait=0.05, max_wait=0.2)
# Generous: the retry budget is 10 s and the stalled answer of the read timeout case takes 600 s.
TIME_BOUND = 60.0
# Ample for a normal answer on a loaded machine, so the request counts hold however slow it is.
READ_TIMEOUT = 30.0
STALLED = 600.0
RECOVERED = "recovered"


@dataclass(frozen=True)
class Case:
    """
    One fault: what to inject, and what must come of it.

    :param name: the fault as the matrix shows it.
    :param inject: the faults for the next requests, given the vendor.
    :param outcome: ``recovered`` or the typed error's class name.
    :param requests: how many token requests the hook must send (and the emulator see, if reachable).
    :param read_timeout: the hook's read timeout in seconds.
    """

    name: str
    inject: Callable[[VendorCase], list[dict[str, Any]]]
    outcome: str
    requests: int
    read_timeout: float = READ_TIMEOUT


def _once(*faults: dict[str, Any]) -> Callable[[VendorCase], list[dict[str, Any]]]:
    return lambda vendor: list(faults)


def _patch(field: str, value: Any) -> Callable[[VendorCase], list[dict[str, Any]]]:
    def inject(vendor: VendorCase) -> list[dict[str, Any]]:
        name = vendor.token_field if field == "token" else vendor.expiry_field
        return [Fault.patch({name: value})]

    return inject


def _retry_after_date(vendor: VendorCase) -> list[dict[str, Any]]:
    return [Fault.status(429, retry_after=datetime.now(UTC) + timedelta(seconds=1))]


REQUEST_ERROR = TokenRequestError.__name__
RESPONSE_ERROR = TokenResponseError.__name__
CASES = [
    Case("connection refused", _once(), REQUEST_ERROR, 4),
    Case("read timeout", _once(Fault.delay(STALLED)), RECOVERED, 2, read_timeout=3.0),
    Case("connection reset mid-body", _once(Fault.reset()), RECOVERED, 2),
    Case("408", _once(Fault.status(408)), RECOVERED, 2),
    Case("429, no Retry-After", _once(Fault.status(429)), RECOVERED, 2),
    Case("429, Retry-After: 1", _once(Fault.status(429, retry_after="1")), RECOVERED, 2),
    Case("429, Retry-After: HTTP date", _retry_after_date, RECOVERED, 2),
    Case("500", _once(Fault.status(500)), RECOVERED, 2),
    Case("502", _once(Fault.status(502)), RECOVERED, 2),
    Case("503", _once(Fault.status(503)), RECOVERED, 2),
    Case("504", _once(Fault.status(504)), RECOVERED, 2),
    Case("503 on every attempt", _once(*[Fault.status(503)] * 4), REQUEST_ERROR, 4),
    Case("200, HTML body", _once(Fault.html()), RESPONSE_ERROR, 1),
    Case("200, truncated JSON", _once(Fault.truncated()), RESPONSE_ERROR, 1),
    Case("200, JSON array", _once(Fault.json(200, [1, 2])), RESPONSE_ERROR, 1),
    Case("token missing", _patch("token", None), RESPONSE_ERROR, 1),
    Case("token empty", _patch("token", ""), RESPONSE_ERROR, 1),
    Case("expiry missing", _patch("expiry", None), RECOVERED, 1),
    Case("expiry zero", _patch("expiry", 0), RESPONSE_ERROR, 1),
    Case("expiry negative", _patch("expiry", -60), RESPONSE_ERROR, 1),
    Case("expiry absurdly large", _patch("expiry", 10**20), RESPONSE_ERROR, 1),
    Case("expiry not a number", _patch("expiry", "soon"), RESPONSE_ERROR, 1),
    Case("400, vendor error body", _once(Fault.status(400)), REQUEST_ERROR, 1),
    Case("401, vendor error body", _once(Fault.status(401)), REQUEST_ERROR, 1),
    Case("403, vendor error body", _once(Fault.status(403)), REQUEST_ERROR, 1),
    Case("400, empty body", _once(Fault.body(400, "", "application/json")), REQUEST_ERROR, 1),
    Case("401, empty body", _once(Fault.body(401, "", "application/json")), REQUEST_ERROR, 1),
    Case("403, empty body", _once(Fault.body(403, "", "application/json")), REQUEST_ERROR, 1),
]
RESULTS: dict[tuple[str, str], tuple[str, int, float]] = {}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class CountingAdapter(requests.adapters.HTTPAdapter):
    """Count the requests the hook sends, reachable or not (requests' own adapter does the sending)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    def send(self, *args: Any, **kwargs: Any) -> requests.Response:
        self.sent += 1
        return super().send(*args, **kwargs)


def counting_session() -> tuple[requests.Session, CountingAdapter]:
    session = requests.Session()
    adapter = CountingAdapter()
    session.mount("http://", adapter)
    return session, adapter


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@pytest.mark.parametrize("vendor", VENDORS, ids=[v.emulator for v in VENDORS])
@pytest.mark.parametrize("driver", ["sync", "async"])
def test_fault(
    driver: str,
    vendor: VendorCase,
    case: Case,
    token_emulator: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"http://127.0.0.1:{_closed_port()}" if case.name == "connection refused" else token_emulator.url
    vendor.configure(monkeypatch, url)
    faults = case.inject(vendor)
    if faults:
        token_emulator.client.inject(vendor.emulator, *faults)
    session, adapter = counting_session()
    hook = vendor.hook(cache="none", retry=POLICY, timeout=(5.0, case.read_timeout), session=session)

    started = time.monotonic()
    error: TokenError | None = None
    try:
        token = hook.get_access_token() if driver == "sync" else asyncio.run(hook.aget_access_token())
    except TokenError as exc:
        error = exc
    elapsed = time.monotonic() - started
    received = token_emulator.client.token_requests(vendor.emulator)
    outcome = RECOVERED if error is None else type(error).__name__
    if driver == "sync":
        sent = adapter.sent
        RESULTS[(vendor.emulator, case.name)] = (outcome, sent, elapsed)
    elif isinstance(error, TokenRequestError) and case.name == "connection refused":
        sent = error.attempts  # httpx sends: the attempts the error counts...
    else:
        sent = received  # ...or what the emulator received

    if error is None:
        assert [token.token] == token_emulator.client.issued_tokens()[-1:]
        expected = vendor.lifetime_without_expiry if case.name == "expiry missing" else vendor.issued_lifetime
        assert token.lifetime == pytest.approx(expected, abs=2)
    else:
        assert "emulator-client-secret" not in str(error)
    if case.name == "connection refused":
        assert isinstance(error, TokenRequestError)
        assert error.attempts == POLICY.max_attempts
        assert received == 0  # the emulator was not the host asked
    else:
        assert received == sent
    assert token_emulator.client.invalid_requests(vendor.emulator) == 0  # well-formed under every fault

    assert outcome == case.outcome
    assert sent == case.requests
    assert elapsed < TIME_BOUND


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    target = os.environ.get("RELIABILITY_REPORT")
    if target and len(RESULTS) == len(CASES) * len(VENDORS):
        Path(target).write_text(render(RESULTS))


def render(results: dict[tuple[str, str], tuple[str, int, float]]) -> str:
    """Return the matrix as Markdown: one row per fault, one column per vendor."""
    vendors = [v.emulator for v in VENDORS]
    expected = {case.name: case.outcome for case in CASES}
    lines = [
        "# Reliability: every vendor against every fault",
        "",
        "Generated by `make reliability` from `tests/reliability/test_fault_matrix.py`, which runs in",
        "`make test` too. Each cell: the outcome, then the token requests the hook sent, which the",
        "emulator received unless the connection was refused (retry policy: 4 attempts, 10 s budget;",
        f"read timeout {READ_TIMEOUT:.0f} s; 3 s where the answer is stalled for {STALLED:.0f} s). The",
        "async path (`await aget_access_token()`, httpx) runs every row too and must give the same cells.",
        "",
        "| fault | " + " | ".join(vendors) + " |",
        "|---|" + "---|" * len(vendors),
    ]
    for case in CASES:
        cells = []
        for vendor in vendors:
            outcome, requests, _ = results[(vendor, case.name)]
            cells.append(f"{outcome}, {requests} req")
        lines.append(f"| {case.name} | " + " | ".join(cells) + " |")
    outcomes = [outcome for outcome, _, _ in results.values()]
    recovered = outcomes.count(RECOVERED)
    typed = sum(outcome in (REQUEST_ERROR, RESPONSE_ERROR) for outcome in outcomes)
    other = len(outcomes) - recovered - typed
    slowest = max(elapsed for _, _, elapsed in results.values())
    unexpected = sum(results[key][0] != expected[key[1]] for key in results)
    lines += [
        "",
        f"Totals: {len(outcomes)} cases tried, {recovered} recovered, {typed} typed errors, "
        f"{other} anything else, {unexpected} unexpected. Slowest case: {slowest:.1f} s "
        f"(bound {TIME_BOUND:.0f} s).",
        "",
    ]
    return "\n".join(lines)

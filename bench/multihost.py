"""Section on many hosts: token requests per token lifetime, get_token() while another host refreshes.

One ``CeleryAirflow`` (PostgreSQL, Redis, API server, scheduler, DAG processor and three Celery
workers, each playing a host of its own: own ``TMPDIR``, so no lock file is shared) runs the
``multihost_refresh`` DAG of ``tests/dags/multihost_tokens.py`` twice at once: 12 tasks call
``get_access_token()`` every 20 ms on 8 s Sirv tokens, once on a connection with the lease and once on
one with the lease turned off (``lease_seconds`` 0). Each task records every call (start, duration,
token requests its process sent during the call, expiry of the token returned); the emulator in this
process counts each connection's token requests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.common import Figure, Section, Stopwatch, fmt_ns, load_average, percentile

if TYPE_CHECKING:
    from pathlib import Path

    from tests.multihost.scenarios import Run

TASKS = 12
PAUSE = 0.02
VARIANTS = {"sirv_lease": "with the lease", "sirv_nolease": "lease turned off (`lease_seconds` 0)"}


def run_multihost(work: Path, *, quick: bool) -> list[Section]:
    """Start the Celery deployment and the emulator, run both variants at once, stop everything."""
    from airflow_tokens.testing import EmulatorServer
    from tests.harness.celery_deployment import CeleryAirflow
    from tests.multihost.scenarios import CELERY_CONNECTIONS, DAG_FILE, Deployment, sirv_connections

    seconds = 15 if quick else 30
    with EmulatorServer() as emulator:
        clients, env = sirv_connections(emulator, {name: CELERY_CONNECTIONS[name] for name in VARIANTS})
        airflow = CeleryAirflow(work / "airflow-home", [DAG_FILE], env=env, workers=3, concurrency=8)
        deployment = Deployment(airflow, emulator, clients, "bench multihost")
        try:
            watch = Stopwatch()
            airflow.start(timeout=300)
            startup = watch.seconds
            airflow.wait_for_dag("multihost_refresh", timeout=180)
            watch = Stopwatch()
            triggered = {
                conn_id: deployment.trigger(
                    "multihost_refresh", {"conn_id": conn_id, "seconds": seconds, "pause": PAUSE}
                )
                for conn_id in VARIANTS
            }
            runs = {conn_id: deployment.finish(run, timeout=300) for conn_id, run in triggered.items()}
            requests = {conn_id: len(deployment.token_requests(conn_id)) for conn_id in VARIANTS}
            section = _section(runs, requests, seconds)
            section.seconds = watch.seconds
            section.load = load_average()
            section.data["startup_seconds"] = startup
        finally:
            deployment.stop()
    return [section]


def _latencies(run: Run) -> dict[str, list[float]]:
    """
    Sort the durations of the run's refresh-time calls: those that sent a token request, the others.

    Each task's first call is left out: it looks up the connection and, on the empty cache, waits for
    the first token; this is about refreshes. A later call that sent no request is "during" a refresh
    when it overlaps, in time, a later call of another task that did send one: it was made while
    another process (on its host or another) replaced the token.
    """
    later = [call for result in run.results.values() for call in result["calls"][1:]]
    fetches = [(start, start + seconds) for start, seconds, sent, _ in later if sent]
    found: dict[str, list[float]] = {"fetching": [], "during": [], "outside": []}
    for start, seconds, sent, _ in later:
        if sent:
            found["fetching"].append(seconds)
        elif any(begin < start + seconds and start < end for begin, end in fetches):
            found["during"].append(seconds)
        else:
            found["outside"].append(seconds)
    return found


def _pct(values: list[float], q: float) -> float:
    """Return the ``q``-th percentile of ``values`` in seconds, NaN if there are none."""
    return percentile(values, q) if values else float("nan")


def _ms(seconds: float) -> str:
    return fmt_ns(seconds * 1e9)


def _section(runs: dict[str, Run], requests: dict[str, int], seconds: int) -> Section:
    from tests.multihost.scenarios import SHORT_LIFETIME, USABLE_LIFETIME

    section = Section(
        "multihost",
        f"Many hosts: {TASKS} tasks on 3 Celery worker hosts call `get_token()` for {seconds} s on "
        f"{SHORT_LIFETIME} s tokens",
    )
    rows = [
        "| variant | state | hosts | span of calls | token requests (allowed) | requests per usable "
        "lifetime | tasks that fetched, by host | calls | `get_token()` while another task fetched: n, p50, "
        "p99, max | other calls: p50, p99 | the fetching calls: p50 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    data: dict[str, dict[str, Any]] = {}
    for conn_id, label in VARIANTS.items():
        run = runs[conn_id]
        window, target = run.request_target()
        lifetimes = window / USABLE_LIFETIME
        latency = _latencies(run)
        during, outside, fetching = latency["during"], latency["outside"], latency["fetching"]
        hosts = sorted(set(run.hosts.values()))
        fetched_by: dict[str, int] = {}
        for task_id, result in run.results.items():
            if any(sent for _, _, sent, _ in result["calls"]):
                fetched_by[run.hosts[task_id]] = fetched_by.get(run.hosts[task_id], 0) + 1
        data[conn_id] = {
            "state": run.state,
            "requests": requests[conn_id],
            "target": target,
            "window": window,
            "per_lifetime": requests[conn_id] / lifetimes,
            "during_n": len(during),
            "during_p50": _pct(during, 50),
            "during_p99": _pct(during, 99),
            "during_max": max(during, default=float("nan")),
            "outside_p50": _pct(outside, 50),
            "outside_p99": _pct(outside, 99),
            "fetch_p50": _pct(fetching, 50),
        }
        item = data[conn_id]
        rows.append(
            f"| {label} | {run.state} | {len(hosts)} | {window:.1f} s | {requests[conn_id]} ({target}) | "
            f"{requests[conn_id] / lifetimes:.2f} | "
            f"{', '.join(f'{host}: {count}' for host, count in sorted(fetched_by.items())) or '-'} | "
            f"{len(run.calls)} | {len(during)}, {_ms(item['during_p50'])}, {_ms(item['during_p99'])}, "
            f"{_ms(item['during_max'])} | {_ms(item['outside_p50'])}, {_ms(item['outside_p99'])} | "
            f"{_ms(item['fetch_p50'])} |"
        )
    lease, off = data["sirv_lease"], data["sirv_nolease"]
    section.figures = [
        Figure(
            "multihost_lease",
            f"Many hosts, with the lease: token requests in {lease['window']:.0f} s of calls "
            f"({TASKS} tasks, 3 hosts, {SHORT_LIFETIME} s tokens)",
            f"{lease['requests']} ({lease['per_lifetime']:.2f} per usable lifetime)",
            f"≤ {lease['target']} (one per usable lifetime + 1)",
            Figure.check(lease["state"] == "success" and lease["requests"] <= lease["target"]),
            f"usable lifetime {USABLE_LIFETIME:.0f} s: the lifetime less the refresh margin",
        ),
        Figure(
            "multihost_no_lease",
            "Many hosts, lease turned off: token requests, same run beside it",
            f"{off['requests']} ({off['per_lifetime']:.2f} per usable lifetime)",
            "",
            "info" if off["state"] == "success" else "MISS",
            "each host fetches on its own",
        ),
        Figure(
            "multihost_refresh_latency",
            "Many hosts, with the lease: `get_token()` in the tasks that did not fetch, while another "
            "fetched (p50 / p99)",
            f"{_ms(lease['during_p50'])} / {_ms(lease['during_p99'])}",
            "p99 < the fetching call's p50",
            Figure.check(lease["during_p99"] < lease["fetch_p50"]),
            f"{lease['during_n']} calls; a fetching call took {_ms(lease['fetch_p50'])} (p50)",
        ),
    ]
    section.details = "\n".join(rows)
    section.data = {"variants": data, "seconds": seconds, "tasks": TASKS}
    return section

"""Operating airflow-tokens: metrics of real ``dag.test()`` runs over StatsD, then ``status`` and ``clear``.

The DAG runs in a subprocess, because Airflow picks its metrics backend from the configuration when the
process starts; it writes the cache Variable into the session's metadata database, where the
``airflow-tokens`` command, run as the installed script, finds it.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_tokens.stores import Lease
from airflow_tokens.testing import Fault
from tests.statsd import StatsdListener
from tests.test_cli import _bytecode_cache, assert_one_line_error, run  # noqa: F401 (an autouse fixture)
from tests.vendors import SIRV, delete_variable, set_variable, variable_row

if TYPE_CHECKING:
    from airflow_tokens.testing import EmulatorServer

pytestmark = [pytest.mark.airflow_db, pytest.mark.timeout(600)]  # two DAG runs in a subprocess

EXAMPLE = Path(__file__).resolve().parents[2] / "dags_example" / "sirv_example.py"
#: Two runs of the Sirv example; the second starts with an empty process memory, as a new worker does.
RUN_TWICE = """
import sys
from airflow.dag_processing.dagbag import DagBag
from airflow_tokens.memory import clear_memory_cache

dag = DagBag(dag_folder=sys.argv[1]).dags["sirv_token_example"]
for _ in range(2):
    assert dag.test().state == "success"
    clear_memory_cache()
"""
LEASE_KEY = "airflow_tokens.lease.sirv.sirv_default"
LAPSED_KEY = "airflow_tokens.lease.manis.manis_gone"
DECOY = "airflow-tokens.access-token.sirv.decoy"


@pytest.fixture(scope="module")
def dag_runs(airflow_db: Path, token_emulator_server: EmulatorServer) -> dict[str, Any]:
    """Run the Sirv example twice with StatsD on (the first token request answered 503); return what came."""
    emulator = token_emulator_server
    emulator.state.reset()
    delete_variable(SIRV.variable_key)
    emulator.client.inject("sirv", Fault.status(503))
    with StatsdListener(prefix="airflow.") as statsd:
        env = {
            f"AIRFLOW_CONN_{SIRV.conn_id.upper()}": json.dumps(SIRV.conn(emulator.url)),
            "AIRFLOW__METRICS__STATSD_ON": "True",
            "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
            "AIRFLOW__METRICS__STATSD_PORT": str(statsd.port),
            "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
        }
        result = subprocess.run(
            [sys.executable, "-c", RUN_TWICE, str(EXAMPLE)],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-5000:]
        statsd.drain()
    row = variable_row(SIRV.variable_key)
    assert row is not None
    return {
        "counters": statsd.counters(),
        "timers": statsd.timers(),
        "lines": statsd.lines,
        "entry": row.val,
        "token_requests": emulator.client.token_requests("sirv"),
        "issued": emulator.client.issued_tokens(),
    }


@pytest.fixture
def cached(dag_runs: dict[str, Any]) -> Any:
    """Put back the cache entry the DAG runs left (a test may have cleared it); drop planted leases after."""
    set_variable(SIRV.variable_key, dag_runs["entry"])
    yield dag_runs
    for key in (SIRV.variable_key, LEASE_KEY, LAPSED_KEY):
        delete_variable(key)


def test_metrics_of_two_dag_runs_arrive_by_statsd(dag_runs: dict[str, Any]) -> None:
    ours = {name: count for name, count in dag_runs["counters"].items() if name.startswith("airflow_tokens.")}
    assert ours == {
        # run 1: the first task misses, takes the lease and fetches (503, retried, then a token) ...
        "airflow_tokens.cache_miss.sirv": 1,
        "airflow_tokens.lease.sirv.taken": 1,
        "airflow_tokens.token_request.sirv.http_503": 1,
        "airflow_tokens.token_retry.sirv": 1,
        "airflow_tokens.token_request.sirv.success": 1,
        # ... the other three tasks of each run find it in memory; run 2's first task in the Variable
        "airflow_tokens.cache_hit.sirv.memory": 6,
        "airflow_tokens.cache_hit.sirv.variable": 1,
    }
    assert dag_runs["token_requests"] == 2
    [fetch_ms] = dag_runs["timers"]["airflow_tokens.fetch_time.sirv"]
    assert fetch_ms > 0
    # Airflow's own metrics came the same way, and no packet carries a token.
    assert any(line.startswith("airflow.ti.finish.sirv_token_example.") for line in dag_runs["lines"])
    for token in dag_runs["issued"]:
        assert not any(token in line for line in dag_runs["lines"])


def _status_rows(stdout: str) -> list[dict[str, str]]:
    """Parse the status table: columns are separated by two spaces or more."""
    header, *lines = stdout.strip().splitlines()
    names = re.split(r"\s{2,}", header)
    split = [re.split(r"\s{2,}", line, maxsplit=len(names) - 1) for line in lines]
    return [dict(zip(names, cells, strict=True)) for cells in split]


def test_status_describes_the_cached_token_without_it(cached: dict[str, Any]) -> None:
    result = run("status")
    assert result.returncode == 0, result.stderr
    [row] = [row for row in _status_rows(result.stdout) if row["CONNECTION"] == "sirv_default"]
    assert row["TYPE"] == "sirv"
    assert row["VENDOR"] == "Sirv"
    expires_in = int(row["EXPIRES IN"].removesuffix(" s"))
    assert 0 < expires_in <= 1500  # the emulator's Sirv tokens live 1500 s
    assert row["BY"] == socket.gethostname()
    assert row["LEASE"] == "none"
    assert "files:read" in row["SCOPE"].split()
    sealed = json.loads(cached["entry"])["sealed"]
    for secret in [*cached["issued"], sealed]:
        assert secret not in result.stdout
        assert secret not in result.stderr


def test_status_json_shows_leases_held_and_lapsed(cached: dict[str, Any]) -> None:
    now = time.time()
    set_variable(LEASE_KEY, Lease("worker-7:4242:0f0f0f0f", now + 600).to_json())
    set_variable(LAPSED_KEY, Lease("worker-9:99:abababab", now - 300).to_json())
    started = time.time()
    result = run("status", "--json")
    assert result.returncode == 0, result.stderr
    report = {item["conn_id"]: item for item in json.loads(result.stdout)}
    sirv = report["sirv_default"]
    entry = json.loads(cached["entry"])
    assert sirv["conn_type"] == "sirv"
    assert sirv["vendor"] == "Sirv"
    assert sirv["token_type"] == "Bearer"
    assert sirv["expired"] is False
    assert sirv["problem"] is None
    assert sirv["obtained_by"] == socket.gethostname()
    assert sirv["scope"] == entry["scope"]
    assert abs(datetime.fromisoformat(sirv["expires_at"]).timestamp() - entry["expires_at"]) < 1
    assert sirv["lease"]["state"] == "held"
    assert sirv["lease"]["holder"] == "worker-7:4242:0f0f0f0f"
    assert 600 - (time.time() - started) - 1 <= sirv["lease"]["seconds"] <= 600
    assert sorted(sirv["variables"]) == [SIRV.variable_key, LEASE_KEY]
    gone = report["manis_gone"]
    assert gone["problem"] == "no token cached"
    assert gone["vendor"] == "Manis"
    assert gone["lease"]["state"] == "lapsed"
    assert gone["lease"]["seconds"] >= 300
    assert "sealed" not in result.stdout


def test_clear_removes_a_connections_entry_and_lease(cached: dict[str, Any]) -> None:
    set_variable(LEASE_KEY, Lease("worker-7:4242:0f0f0f0f", time.time() + 600).to_json())
    result = run("clear", "sirv_default")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"Removed the cached token of connection sirv_default (Variable {SIRV.variable_key})",
        f"Removed the refresh lease of connection sirv_default (Variable {LEASE_KEY})",
    ]
    assert variable_row(SIRV.variable_key) is None
    assert variable_row(LEASE_KEY) is None
    again = run("clear", "sirv_default")
    assert_one_line_error(again, 5, "nothing is cached for connection 'sirv_default'")
    status = run("status", "--json")
    assert "sirv_default" not in {item["conn_id"] for item in json.loads(status.stdout)}


def test_clear_all_removes_every_entry_and_lease(cached: dict[str, Any]) -> None:
    set_variable(LAPSED_KEY, Lease("worker-9:99:abababab", time.time() - 300).to_json())
    set_variable(DECOY, "kept")
    try:
        result = run("clear", "--all", "--json")
        assert result.returncode == 0, result.stderr
        assert set(json.loads(result.stdout)["removed"]) >= {SIRV.variable_key, LAPSED_KEY}
        assert json.loads(run("status", "--json").stdout) == []
        assert variable_row(DECOY).val == "kept"  # not a cache key, though SQL LIKE's _ would match it
        empty = run("clear", "--all")
        assert empty.returncode == 0
        assert empty.stdout.strip() == "No token is cached in Airflow Variables: nothing removed."
    finally:
        delete_variable(DECOY)


def test_status_without_a_metadata_database_exits_1(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / "airflow.db"
    result = run("status", env={"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{missing}"})
    assert_one_line_error(result, 1, "cannot use Airflow's metadata database", "OperationalError")

"""What the many-host tests share: Sirv connections with random credentials, runs and their results.

The DAGs are in ``tests/dags/multihost_tokens.py``: each task records every ``get_access_token()``
call as ``[start, seconds, token requests sent, expiry of the token returned]``.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_tokens.token import MAX_MARGIN_FRACTION

if TYPE_CHECKING:
    from airflow_tokens.testing import EmulatorServer
    from tests.harness.deployment import AirflowDeployment

DAG_FILE = Path(__file__).resolve().parents[1] / "dags" / "multihost_tokens.py"
#: Seconds a token lives in the refresh scenarios (Sirv's ``expiresIn``).
SHORT_LIFETIME = 8
#: How long a token is handed out before it is replaced: its lifetime less the refresh margin.
USABLE_LIFETIME = SHORT_LIFETIME * (1 - MAX_MARGIN_FRACTION)
#: The lease of the killed-holder scenario, in seconds.
KILL_LEASE = 10
#: The Celery scenarios' connections: their extras by connection id.
CELERY_CONNECTIONS: dict[str, dict[str, Any]] = {
    "sirv_cold": {},
    "sirv_lease": {"expires_in": SHORT_LIFETIME},
    "sirv_nolease": {"expires_in": SHORT_LIFETIME, "lease_seconds": 0},
    "sirv_kill": {"lease_seconds": KILL_LEASE},
    "sirv_chaos": {"expires_in": SHORT_LIFETIME, "lease_seconds": KILL_LEASE},
}


@dataclass(frozen=True)
class Client:
    """The credentials of one Sirv connection."""

    conn_id: str
    client_id: str
    client_secret: str


def sirv_connections(
    emulator: EmulatorServer, extras: dict[str, dict[str, Any]]
) -> tuple[dict[str, Client], dict[str, str]]:
    """
    Make a Sirv connection per id in ``extras``, each with a random client id and secret for the emulator.

    A random pair per connection: the emulator's request log tells the connections apart, and finding
    a secret anywhere is a real leak, not a constant someone wrote down.

    :returns: the clients by connection id, and the ``AIRFLOW_CONN_*`` variables that define them.
    """
    clients, env = {}, {}
    for conn_id, extra in extras.items():
        client = Client(conn_id, f"{conn_id}-{secrets.token_hex(4)}", secrets.token_urlsafe(24))
        emulator.client.add_credentials("sirv", client.client_id, client.client_secret)
        connection = {
            "conn_type": "sirv",
            "host": emulator.url,
            "login": client.client_id,
            "password": client.client_secret,
            "extra": extra,
        }
        clients[conn_id] = client
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(connection)
    return clients, env


@dataclass
class Run:
    """One finished DAG run: its state, its task instances and what each task returned."""

    dag_id: str
    run_id: str
    state: str
    instances: dict[str, dict[str, Any]]
    results: dict[str, Any]
    seconds: float

    @property
    def states(self) -> dict[str, str | None]:
        """Return each task's state."""
        return {task_id: ti["state"] for task_id, ti in self.instances.items()}

    @property
    def hosts(self) -> dict[str, str]:
        """Return the host each task ran on, as Airflow recorded it."""
        return {task_id: str(ti["hostname"]) for task_id, ti in self.instances.items() if ti["hostname"]}

    @property
    def calls(self) -> list[list[float]]:
        """Return every ``get_access_token()`` call of every task: start, seconds, requests sent, expiry."""
        return [call for result in self.results.values() for call in result["calls"]]

    def stale_calls(self) -> list[list[float]]:
        """Return the calls that got a token already expired when the call returned."""
        return [call for call in self.calls if call[3] <= call[0] + call[1]]

    def request_target(self) -> tuple[float, int]:
        """
        Return the seconds the run's calls spanned, and the token requests allowed for them.

        One request per usable token lifetime (the lifetime less the refresh margin) over the span,
        plus one.
        """
        calls = self.calls
        window = max(start + seconds for start, seconds, *_ in calls) - min(start for start, *_ in calls)
        return window, math.ceil(window / USABLE_LIFETIME) + 1

    def describe_failures(self) -> str:
        """Describe the run if it did not succeed."""
        return "" if self.state == "success" else f"{self.dag_id} {self.run_id} {self.state}: {self.states}"


@dataclass
class Deployment:
    """A running deployment, the emulator, the connections and the runs made on them."""

    airflow: AirflowDeployment
    emulator: EmulatorServer
    clients: dict[str, Client]
    label: str
    runs: list[Run] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    leftover: list[int] | None = None

    def lap(self, name: str, since: float) -> float:
        """Record and print the seconds since ``since``; return now."""
        now = time.monotonic()
        self.timings[name] = now - since
        print(f"[{self.label}] {name}: {self.timings[name]:.1f} s", flush=True)
        return now

    def token_requests(self, conn_id: str) -> list[dict[str, Any]]:
        """Return the emulator's records of the token requests sent with ``conn_id``'s credentials."""
        client_id = self.clients[conn_id].client_id
        return [
            record
            for record in self.emulator.client.requests("sirv")
            if record["json"]["clientId"] == client_id
        ]

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> tuple[str, str, float]:
        """Trigger a run; return the DAG id, the run id and when it was triggered (monotonic)."""
        return dag_id, self.airflow.trigger(dag_id, conf), time.monotonic()

    def finish(self, triggered: tuple[str, str, float], timeout: float = 240) -> Run:
        """Wait for a triggered run and gather its task instances and the results of its successful tasks."""
        dag_id, run_id, began = triggered
        state = self.airflow.wait_for_run(dag_id, run_id, timeout=timeout)
        seconds = time.monotonic() - began
        instances = {ti["task_id"]: ti for ti in self.airflow.task_instances(dag_id, run_id)}
        results = {
            task_id: self.airflow.xcom_value(dag_id, run_id, task_id)
            for task_id, ti in instances.items()
            if ti["state"] == "success"
        }
        run = Run(dag_id, run_id, state, instances, results, seconds)
        self.runs.append(run)
        print(f"[{self.label}] {dag_id} {run_id}: {state} in {seconds:.1f} s", flush=True)
        return run

    def stop(self) -> list[int]:
        """Stop every process of the deployment (once) and return the PIDs of any still alive."""
        if self.leftover is None:
            began = time.monotonic()
            try:
                self.airflow.stop()
            finally:
                self.leftover = [proc.pid for proc in self.airflow.processes()]
                self.lap("stop", began)
        return self.leftover


def sender_pid(client: list[Any], server_port: int) -> int | None:
    """Return the PID of the process whose socket ``client`` (host, port) is connected to ``server_port``."""
    import psutil

    host, port = client
    for connection in psutil.net_connections(kind="tcp"):
        if (
            connection.laddr
            and connection.raddr
            and (connection.laddr.ip, connection.laddr.port) == (host, port)
            and connection.raddr.port == server_port
            and connection.pid
        ):
            return int(connection.pid)
    return None

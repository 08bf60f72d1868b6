"""One real ``airflow standalone`` shared by this folder's scenarios: starting one takes a minute or more.

The deployment runs two DAGs, each against its own emulator so that their token counts stay apart:
``token_fanout`` (tests/dags) with ``sirv_default``, and the deferrable example ``deferrable_job_example``
(dags_example) with ``sirv_jobs``. Each connection has a random client ID and secret, so finding one
anywhere is a real leak. ``[core] fernet_key`` is empty: nothing relies on Airflow's encryption. A
scenario that needs the deployment stopped (to audit what it left behind) stops it; a scenario that
comes after that gets a new one.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_tokens.testing import EmulatorServer
from tests.harness.deployment import LocalAirflow
from tests.vendors import SIRV

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO = Path(__file__).resolve().parents[2]
DAG_FILES = [
    REPO / "tests" / "dags" / "standalone_fanout.py",
    REPO / "dags_example" / "deferrable_job_example.py",
]
#: The triggerer warns when its loop misses a 0.1 s beat by more than this; 0.2 s is Airflow's default.
BLOCKED_THRESHOLD = 0.2


@dataclass(frozen=True)
class Credentials:
    """A random client ID and secret, accepted by one emulator."""

    client_id: str
    client_secret: str

    @classmethod
    def new(cls, prefix: str) -> Credentials:
        return cls(f"{prefix}-{secrets.token_hex(4)}", secrets.token_urlsafe(24))

    def connection(self, url: str) -> dict[str, Any]:
        """Return a Sirv connection to the emulator at ``url`` (as ``AIRFLOW_CONN_*`` JSON holds it)."""
        return SIRV.conn(url, login=self.client_id, password=self.client_secret)


@dataclass(frozen=True)
class Deployment:
    """A running deployment and the emulators behind its two connections."""

    airflow: LocalAirflow
    #: Behind ``sirv_default`` (the fan-out scenario).
    emulator: EmulatorServer
    credentials: Credentials
    connection: dict[str, Any]
    #: Behind ``sirv_jobs`` (the deferrable job scenario).
    jobs_emulator: EmulatorServer
    jobs_credentials: Credentials
    #: Seconds ``start`` took (migration, scheduler, DAG processor, triggerer, API server).
    start_seconds: float


class Deployments:
    """
    Hand out the shared deployment, started on first use, and a new one once a scenario stopped it.

    :param factory: pytest's temporary folders (each deployment gets its own home).
    :param stack: what to stop at the end of the session.
    """

    def __init__(self, factory: pytest.TempPathFactory, stack: contextlib.ExitStack) -> None:
        self._factory = factory
        self._stack = stack
        self._current: Deployment | None = None

    def running(self) -> Deployment:
        """Return the running deployment, starting one if there is none."""
        if self._current is not None and self._current.airflow.running:
            return self._current
        emulator = self._stack.enter_context(EmulatorServer())
        jobs_emulator = self._stack.enter_context(EmulatorServer())
        credentials, jobs_credentials = Credentials.new("fanout"), Credentials.new("jobs")
        emulator.client.add_credentials("sirv", credentials.client_id, credentials.client_secret)
        jobs_emulator.client.add_credentials(
            "sirv", jobs_credentials.client_id, jobs_credentials.client_secret
        )
        connection = credentials.connection(emulator.url)
        env = {
            "AIRFLOW_CONN_SIRV_DEFAULT": json.dumps(connection),
            "AIRFLOW_CONN_SIRV_JOBS": json.dumps(jobs_credentials.connection(jobs_emulator.url)),
            # As Airflow's docker-compose quick start sets it: Variables are stored in clear, so only the
            # package's own sealing keeps tokens out of the database.
            "AIRFLOW__CORE__FERNET_KEY": "",
            "AIRFLOW__TRIGGERER__BLOCKED_MAIN_THREAD_WARNING_THRESHOLD": str(BLOCKED_THRESHOLD),
        }
        airflow = LocalAirflow(self._factory.mktemp("standalone"), DAG_FILES, env=env)
        began = time.monotonic()
        airflow.start(timeout=240)
        self._stack.callback(airflow.stop)
        seconds = time.monotonic() - began
        print(f"[standalone] start (db migrate, scheduler, dag processor, triggerer, API): {seconds:.1f} s")
        self._current = Deployment(
            airflow, emulator, credentials, connection, jobs_emulator, jobs_credentials, seconds
        )
        return self._current


@pytest.fixture(scope="session")
def deployments(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployments]:
    """Return the session's deployments; every one still running is stopped at the end."""
    with contextlib.ExitStack() as stack:
        yield Deployments(tmp_path_factory, stack)

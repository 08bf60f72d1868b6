"""One real many-host deployment for the whole session: ``CeleryAirflow`` and the vendor emulator.

PostgreSQL, Redis, the API server, the scheduler, the DAG processor and three Celery workers, each
worker a host of its own (own ``TMPDIR``, so no shared lock file; own host name). The emulator runs
in this process and the task processes reach it over loopback. Every scenario has its own Sirv
connection (``AIRFLOW_CONN_*`` in every component's environment) with its own random client id and
secret.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from airflow_tokens.testing import EmulatorServer
from tests.harness.celery_deployment import CeleryAirflow
from tests.multihost.scenarios import CELERY_CONNECTIONS, DAG_FILE, Deployment, sirv_connections

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(scope="session")
def multihost(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Start the emulator and the Celery deployment with the many-host DAGs; stop both at the end."""
    began = time.monotonic()
    home = tmp_path_factory.mktemp("celery")
    with EmulatorServer() as emulator:
        clients, env = sirv_connections(emulator, CELERY_CONNECTIONS)
        airflow = CeleryAirflow(home, [DAG_FILE], env=env, workers=3, concurrency=8)
        deployment = Deployment(airflow, emulator, clients, "celery")
        try:
            airflow.start(timeout=300)
            mark = deployment.lap("start (PostgreSQL, Redis, migration, components, 3 workers)", began)
            for dag_id in ("multihost_cold", "multihost_refresh", "multihost_kill", "multihost_chaos"):
                airflow.wait_for_dag(dag_id)
            deployment.lap("DAGs parsed", mark)
            yield deployment
        finally:
            deployment.stop()
            print(f"[celery] session total: {time.monotonic() - began:.1f} s", flush=True)

"""XCom caching with real dag.test() runs: the token crosses XCom only sealed with the connection's key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from airflow_tokens.hooks.sirv import SirvTokenHook
from airflow_tokens.testing import EMULATOR_CLIENT_SECRET, EmulatorServer
from tests.vendors import SIRV

pytestmark = pytest.mark.airflow_db
DAG_ID = "xcom_token_cache"


@pytest.fixture
def sirv_conn(token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    return SIRV.configure(monkeypatch, token_emulator.url)


def _xcom_rows(run_id: str) -> dict[str, Any]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(XComModel).filter(XComModel.dag_id == DAG_ID, XComModel.run_id == run_id).all()
        return {row.task_id: row.value for row in rows}


def _api_xcom(run_id: str, task_id: str) -> str:
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    with TestClient(create_app()) as client:
        url = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
        response = client.get(url)
    assert response.status_code == 200, response.text
    return response.text


def test_consumers_get_a_working_token_without_a_request_and_no_plain_token_is_stored(
    dagbag: Any, sirv_conn: dict[str, Any], token_emulator: EmulatorServer
) -> None:
    run = dagbag.dags[DAG_ID].test()
    assert run.state == "success"
    assert token_emulator.client.token_requests("sirv") == 1
    assert token_emulator.client.resource_requests() == 2

    rows = _xcom_rows(run.run_id)
    assert rows["consumer_1"] == rows["consumer_2"] == 200  # the protected API accepted the token
    raw_envelope = json.dumps(rows["sirv_token"])
    envelope = json.loads(rows["sirv_token"]) if isinstance(rows["sirv_token"], str) else rows["sirv_token"]
    token = SirvTokenHook().seal.open(envelope).token.token
    assert [token] == token_emulator.client.issued_tokens()
    assert token not in raw_envelope  # the database row
    api_text = _api_xcom(run.run_id, "sirv_token")
    assert token not in api_text  # the REST API
    assert "sealed" in api_text
    assert EMULATOR_CLIENT_SECRET not in raw_envelope + api_text


def test_expired_envelope_leads_to_exactly_one_fresh_request(
    dagbag: Any, sirv_conn: dict[str, Any], token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    SIRV.configure(monkeypatch, token_emulator.url, extra={"expires_in": 5})
    # A 5 s token is refreshed from 3.75 s on (a quarter of its life), up to 4.375 s as the process's
    # jitter draws: waiting 4.5 s makes the held token stale whatever was drawn.
    run = dagbag.dags[DAG_ID].test(run_conf={"wait": {"consumer_1": 4.5}, "fresh_process": False})
    assert run.state == "success"
    assert token_emulator.client.token_requests("sirv") == 2  # the producer's, then one fresh
    assert _xcom_rows(run.run_id)["consumer_2"] == 200


def test_xcom_caching_works_without_a_fernet_key(token_emulator: EmulatorServer) -> None:
    """With ``[core] fernet_key`` empty (Airflow's docker-compose default) the envelope is still sealed."""
    env = {
        **os.environ,
        "AIRFLOW__CORE__FERNET_KEY": "",
        "AIRFLOW_CONN_SIRV_DEFAULT": json.dumps(SIRV.conn(token_emulator.url)),
    }
    script = (
        "import json\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "from airflow.models.xcom import XComModel\n"
        "from airflow.utils.session import create_session\n"
        "from airflow_tokens.memory import clear_memory_cache\n"
        f"bag = DagBag(dag_folder={os.environ['AIRFLOW__CORE__DAGS_FOLDER']!r})\n"
        f"run = bag.dags[{DAG_ID!r}].test()\n"
        "with create_session() as session:\n"
        "    rows = session.query(XComModel).filter(XComModel.run_id == run.run_id).all()\n"
        "    values = {row.task_id: row.value for row in rows}\n"
        "print('RESULT', json.dumps({'state': run.state, 'xcom': values}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=240)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, out.stdout[-2000:] + out.stderr[-4000:]
    result = json.loads(lines[-1].removeprefix("RESULT "))
    assert result["state"] == "success"
    assert result["xcom"]["consumer_1"] == result["xcom"]["consumer_2"] == 200
    assert token_emulator.client.token_requests("sirv") == 1
    envelope = result["xcom"]["sirv_token"]
    text = envelope if isinstance(envelope, str) else json.dumps(envelope)
    for token in token_emulator.client.issued_tokens():
        assert token not in text
    assert EMULATOR_CLIENT_SECRET not in text


def test_xcom_cache_needs_the_producer_task_id(sirv_conn: dict[str, Any]) -> None:
    from airflow_tokens.exceptions import TokenConfigError
    from airflow_tokens.hooks.sirv import SirvTokenHook

    with pytest.raises(TokenConfigError, match="xcom_task_id"):
        SirvTokenHook(cache="xcom").get_token()

"""XCom caching with real dag.test() runs: the token crosses XCom only Fernet-encrypted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from airflow_tokens.cache import CacheEntry, decode_envelope, encode_envelope
from airflow_tokens.testing import EMULATOR_CLIENT_SECRET, EmulatorServer
from airflow_tokens.token import AccessToken
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
    token = decode_envelope("sirv_default", envelope).token.token
    assert [token] == token_emulator.client.issued_tokens()
    assert token not in raw_envelope  # the database row
    api_text = _api_xcom(run.run_id, "sirv_token")
    assert token not in api_text  # the REST API
    assert "encrypted" in api_text
    assert EMULATOR_CLIENT_SECRET not in raw_envelope + api_text


def test_expired_envelope_leads_to_exactly_one_fresh_request(
    dagbag: Any, sirv_conn: dict[str, Any], token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    SIRV.configure(monkeypatch, token_emulator.url, extra={"expires_in": 5})
    run = dagbag.dags[DAG_ID].test(run_conf={"wait": {"consumer_1": 4.0}, "fresh_process": False})
    assert run.state == "success"
    assert token_emulator.client.token_requests("sirv") == 2  # the producer's, then one fresh
    assert _xcom_rows(run.run_id)["consumer_2"] == 200


def _entry() -> CacheEntry:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    return CacheEntry(AccessToken("tok-123456789", "Bearer", now + timedelta(hours=1), now, ("a",)), "fp")


def test_envelope_round_trip_hides_token_and_fingerprint() -> None:
    entry = _entry()
    envelope = encode_envelope("c", entry)
    assert "tok-123456789" not in json.dumps(envelope)
    assert "fingerprint" not in envelope
    assert decode_envelope("c", envelope) == entry


@pytest.mark.parametrize(
    "value",
    [
        None,
        "plain-token",
        {"format": "something-else"},
        {"format": "airflow-tokens/xcom/1", "encrypted": "not-fernet", "expires_at": "x", "obtained_at": "y"},
    ],
)
def test_foreign_or_undecryptable_envelope_is_rejected(value: object) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies by case
        decode_envelope("c", value)


def test_envelope_from_another_fernet_key_is_rejected() -> None:
    env = {**os.environ, "AIRFLOW__CORE__FERNET_KEY": "p8VZ5-7sX2uKjz1Q0R6mUEtHn9bYwC3dLaFgTiJoVxk="}
    script = (
        "import json, sys; from datetime import UTC, datetime, timedelta;"
        "from airflow_tokens.cache import CacheEntry, encode_envelope;"
        "from airflow_tokens.token import AccessToken;"
        "now = datetime.now(UTC);"
        "entry = CacheEntry(AccessToken('tok-abc', 'Bearer', now + timedelta(hours=1), now), 'fp');"
        "print(json.dumps(encode_envelope('c', entry)))"
    )
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    foreign = json.loads(out.stdout.strip().splitlines()[-1])
    with pytest.raises(ValueError, match="undecryptable"):
        decode_envelope("c", foreign)


def test_without_a_fernet_key_xcom_caching_refuses() -> None:
    env = {**os.environ, "AIRFLOW__CORE__FERNET_KEY": ""}
    script = (
        "from airflow_tokens.cache import require_fernet\n"
        "from airflow_tokens.exceptions import TokenCacheError\n"
        "try:\n    require_fernet('sirv_default')\n"
        "except TokenCacheError as exc:\n    print('REFUSED', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert "REFUSED Connection 'sirv_default': XCom token caching needs a Fernet key" in out.stdout
    assert "AIRFLOW__CORE__FERNET_KEY" in out.stdout


def test_xcom_cache_needs_the_producer_task_id(sirv_conn: dict[str, Any]) -> None:
    from airflow_tokens.exceptions import TokenConfigError
    from airflow_tokens.hooks.sirv import SirvTokenHook

    with pytest.raises(TokenConfigError, match="xcom_task_id"):
        SirvTokenHook(cache="xcom").get_token()

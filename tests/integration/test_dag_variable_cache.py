"""Real dag.test() runs: tasks share one token through the Variable cache."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import pytest

from airflow_tokens.memory import clear_memory_cache
from airflow_tokens.testing import EMULATOR_CLIENT_ID, EmulatorServer
from tests.vendors import SIRV, delete_variable, set_variable, variable_row

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.airflow_db
KEY = SIRV.variable_key


@pytest.fixture
def sirv_conn(token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    SIRV.configure(monkeypatch, token_emulator.url)
    yield
    delete_variable(KEY)


def _variable_row() -> Any:
    return variable_row(KEY)


def test_example_dag_imports_cleanly(dagbag: Any) -> None:
    assert "sirv_token_example" in dagbag.dags
    assert len(dagbag.dags["sirv_token_example"].tasks) == 4


def test_three_tasks_share_one_token_through_the_variable(
    dagbag: Any, sirv_conn: None, token_emulator: EmulatorServer
) -> None:
    from airflow.sdk._shared.secrets_masker import should_hide_value_for_key

    run = dagbag.dags["sirv_token_example"].test()
    assert run.state == "success"
    assert token_emulator.client.token_requests("sirv") == 1
    assert token_emulator.client.stats()["resource_requests"] == 1

    row = _variable_row()
    entry = SIRV.open_entry(row.val)
    assert [entry.token.token] == token_emulator.client.issued_tokens()
    assert row.is_encrypted
    assert entry.token.token not in row._val  # Fernet-encrypted at rest
    assert should_hide_value_for_key(KEY)  # the UI and API show ***

    # A fresh process (empty memory cache) is served by the Variable: no new request.
    clear_memory_cache()
    assert dagbag.dags["sirv_token_example"].test().state == "success"
    assert token_emulator.client.token_requests("sirv") == 1
    assert SIRV.open_entry(_variable_row().val).token == entry.token


@pytest.mark.parametrize(
    "stored",
    ["not json at all", '{"format": "airflow-tokens/0", "token": "from-an-older-version"}', "[]"],
)
def test_garbage_variable_is_replaced(
    dagbag: Any, sirv_conn: None, token_emulator: EmulatorServer, stored: str
) -> None:
    set_variable(KEY, stored)
    assert dagbag.dags["sirv_token_example"].test().state == "success"
    assert token_emulator.client.token_requests("sirv") == 1
    assert [SIRV.open_entry(_variable_row().val).token.token] == token_emulator.client.issued_tokens()


def test_rotated_secret_is_never_answered_with_the_old_token(
    dagbag: Any, sirv_conn: None, token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert dagbag.dags["sirv_token_example"].test().state == "success"
    old = SIRV.open_entry(_variable_row().val)
    token_emulator.client.add_credentials("sirv", EMULATOR_CLIENT_ID, "rotated-secret-value")
    conn = json.loads(os.environ["AIRFLOW_CONN_SIRV_DEFAULT"])
    conn["password"] = "rotated-secret-value"
    monkeypatch.setenv("AIRFLOW_CONN_SIRV_DEFAULT", json.dumps(conn))
    clear_memory_cache()
    assert dagbag.dags["sirv_token_example"].test().state == "success"
    new = SIRV.open_entry(_variable_row().val)
    assert [old.token.token, new.token.token] == token_emulator.client.issued_tokens()
    assert new.fingerprint != old.fingerprint
    assert token_emulator.client.token_requests("sirv") == 2

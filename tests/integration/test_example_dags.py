"""Every example DAG parses cleanly; each vendor's example runs under dag.test() with one token request."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_tokens.cache import CacheEntry, VariableStore
from airflow_tokens.testing import EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET, EmulatorServer

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.airflow_db
EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "dags_example"


@dataclass(frozen=True)
class Example:
    """
    One example DAG and the connection it needs.

    :param dag_id: the example's DAG id.
    :param conn_type: the connection type (first part of the cache key).
    :param conn_id: the hook's default connection id.
    :param emulator: the emulator's name for the vendor.
    :param token_path: appended to the emulator URL to form the host (oauth2: the token URL).
    """

    dag_id: str
    conn_type: str
    conn_id: str
    emulator: str
    token_path: str = ""

    @property
    def variable_key(self) -> str:
        return VariableStore.variable_key(f"{self.conn_type}.{self.conn_id}")


SIRV = Example("sirv_token_example", "sirv", "sirv_default", "sirv")
NEW_EXAMPLES = [
    Example("learning360_token_example", "360learning", "360learning_default", "360learning"),
    Example("manis_token_example", "manis", "manis_default", "manis"),
    Example("podero_token_example", "podero", "podero_default", "podero"),
    Example(
        "oauth2_token_example",
        "oauth2_client_credentials",
        "oauth2_client_credentials_default",
        "oauth2",
        token_path="/oauth2/token",
    ),
]


def _variable_value(key: str) -> str | None:
    from airflow.models.variable import Variable as VariableRow
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(VariableRow).filter(VariableRow.key == key).one_or_none()
        return None if row is None else row.val


def _delete_variable(key: str) -> None:
    from airflow.models.variable import Variable as VariableRow

    VariableRow.delete(key)


@pytest.mark.parametrize("example", [SIRV, *NEW_EXAMPLES], ids=lambda example: example.dag_id)
def test_example_dag_imports_cleanly(dagbag: Any, example: Example) -> None:
    dag = dagbag.dags[example.dag_id]
    assert "airflow-tokens" in dag.tags
    assert len(dag.tasks) == 4  # three tasks get the token, one calls the API


def test_every_example_file_defines_a_dag_without_importing_a_hook(dagbag: Any) -> None:
    files = sorted(EXAMPLES_DIR.glob("*.py"))
    assert {Path(dag.fileloc).name for dag in dagbag.dags.values()} >= {file.name for file in files}
    # Parsing must stay cheap: hooks are imported inside the tasks, never at module level.
    script = (
        "import runpy, sys\n"
        f"for path in {[str(file) for file in files]!r}:\n"
        "    runpy.run_path(path)\n"
        "print(sorted(name for name in sys.modules if name.startswith('airflow_tokens.hooks')))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.fixture(params=NEW_EXAMPLES, ids=lambda example: example.dag_id)
def example(
    request: pytest.FixtureRequest, token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Example]:
    """Point the example's connection at the emulator; delete its cache Variable afterwards."""
    example: Example = request.param
    conn = {
        "conn_type": example.conn_type,
        "host": token_emulator.url + example.token_path,
        "login": EMULATOR_CLIENT_ID,
        "password": EMULATOR_CLIENT_SECRET,
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{example.conn_id.upper()}", json.dumps(conn))
    yield example
    _delete_variable(example.variable_key)


def test_example_dag_runs_with_one_token_request(
    dagbag: Any, example: Example, token_emulator: EmulatorServer
) -> None:
    run = dagbag.dags[example.dag_id].test()
    assert run.state == "success"
    assert token_emulator.client.token_requests(example.emulator) == 1
    assert token_emulator.client.resource_requests() == 1
    stats = token_emulator.client.stats()["token_requests"]
    assert sum(stats.values()) == 1  # no other vendor was asked
    stored = _variable_value(example.variable_key)
    assert stored is not None
    assert CacheEntry.from_json(stored).token.token  # the tasks shared the token through the Variable

"""Every example DAG parses cleanly; each vendor's example runs under dag.test() with one token request."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_tokens.testing import EmulatorServer
from tests.vendors import SIRV, VENDORS, VendorCase, delete_variable, variable_row

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.airflow_db
EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "dags_example"


NEW_EXAMPLES = [vendor for vendor in VENDORS if vendor is not SIRV]


@pytest.mark.parametrize("example", VENDORS, ids=lambda example: example.example_dag)
def test_example_dag_imports_cleanly(dagbag: Any, example: VendorCase) -> None:
    dag = dagbag.dags[example.example_dag]
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


@pytest.fixture(params=NEW_EXAMPLES, ids=lambda example: example.example_dag)
def example(
    request: pytest.FixtureRequest, token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[VendorCase]:
    """Point the example's connection at the emulator; delete its cache Variable afterwards."""
    example: VendorCase = request.param
    example.configure(monkeypatch, token_emulator.url)
    yield example
    delete_variable(example.variable_key)


def test_example_dag_runs_with_one_token_request(
    dagbag: Any, example: VendorCase, token_emulator: EmulatorServer
) -> None:
    run = dagbag.dags[example.example_dag].test()
    assert run.state == "success"
    assert token_emulator.client.token_requests(example.emulator) == 1
    assert token_emulator.client.resource_requests() == 1
    stats = token_emulator.client.stats()["token_requests"]
    assert sum(stats.values()) == 1  # no other vendor was asked
    stored = variable_row(example.variable_key)
    assert stored is not None
    # The tasks shared the one token the emulator issued through the Variable.
    assert [example.open_entry(stored.val).token.token] == token_emulator.client.issued_tokens()

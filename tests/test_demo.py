"""`make demo`'s core: every example DAG run by dag.test() in this process, one token request per vendor."""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest

from airflow_tokens.stores import VariableStore
from airflow_tokens.testing import EmulatorServer
from tests.vendors import SIRV, VENDORS, delete_variable, variable_row

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.airflow_db
SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "demo.py"
JOBS_KEY = VariableStore.variable_key("sirv.sirv_jobs")  # the deferrable example's own connection


@pytest.fixture(scope="module")
def demo() -> Iterator[ModuleType]:
    """Load scripts/demo.py as a module (importing it runs nothing)."""
    spec = importlib.util.spec_from_file_location("demo_script", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve their annotations through sys.modules
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


@pytest.fixture
def no_cached_tokens(airflow_db: Path) -> Iterator[None]:
    """Start and end without any vendor's cache Variable."""
    keys = [vendor.variable_key for vendor in VENDORS] + [JOBS_KEY]
    for key in keys:
        delete_variable(key)
    yield
    for key in keys:
        delete_variable(key)


def test_demo_runs_every_example_dag_on_one_token_request_each(
    demo: ModuleType, token_emulator: EmulatorServer, no_cached_tokens: None
) -> None:
    out = io.StringIO()
    code = demo.demo(token_emulator.url, token_emulator.client, out=out)
    text = out.getvalue()

    assert code == 0, text
    assert re.search(r"Summary: every DAG succeeded; example DAGs run: 7; wall time \d+ s", text)
    for vendor in VENDORS:
        assert f"{vendor.example_dag}: success" in text
        row = variable_row(vendor.variable_key)
        assert row is not None  # the tasks shared the token through the Variable
        assert json.loads(row.val)["format"] == "airflow-tokens/3"  # sealed
    # One token request per example DAG: Sirv's two DAGs use two connections (two cache keys).
    counts = {vendor.emulator: token_emulator.client.token_requests(vendor.emulator) for vendor in VENDORS}
    assert counts == {vendor.emulator: 2 if vendor is SIRV else 1 for vendor in VENDORS}
    assert text.count("token requests seen    : 1") == len(VENDORS) + 1
    issued = token_emulator.client.issued_tokens()
    assert len(issued) == len(VENDORS) + 1
    assert not [token for token in issued if token in text]
    assert text.count("as task logs show it   : Bearer ***") == len(VENDORS) + 1
    assert text.count("tasks that succeeded   : 4 of 4") == len(VENDORS)
    assert token_emulator.client.resource_requests() == len(VENDORS)  # each DAG's API task ran once
    # The deferrable example: eight mapped tasks started their jobs, deferred, and the triggers polled.
    assert "deferrable_job_example: success" in text
    assert "tasks that succeeded   : 8 of 8" in text
    assert token_emulator.client.job_requests() == {"start": 8, "status": 8}
    jobs_row = variable_row(JOBS_KEY)
    assert jobs_row is not None
    assert json.loads(jobs_row.val)["format"] == "airflow-tokens/3"


def test_a_failing_dag_prints_its_error_and_fails_the_demo(
    demo: ModuleType, token_emulator: EmulatorServer, no_cached_tokens: None
) -> None:
    sirv = next(example for example in demo.examples(token_emulator.url) if example.vendor == "sirv")
    broken = dataclasses.replace(sirv, conn={**sirv.conn, "password": "not-the-secret"})
    out = io.StringIO()

    code = demo.demo(token_emulator.url, token_emulator.client, [broken], out=out)
    text = out.getvalue()

    assert code == 1
    assert "sirv_token_example: FAILED" in text
    assert "Summary: FAILED; example DAGs run: 1" in text
    for task in ("get_token_1", "get_token_2", "get_token_3"):  # each task's own error, the vendor's words
        assert re.search(rf"error +: {task}: TokenRequestError: .*{SIRV.unauthorized}", text), text
    assert "error                  : task call_sirv_api ended upstream_failed" in text
    assert "not-the-secret" not in text
    assert variable_row(SIRV.variable_key) is None

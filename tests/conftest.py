"""Test session setup: a private Airflow home with a SQLite metadata database, shared by all tests."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO = Path(__file__).resolve().parent.parent
# Airflow reads its configuration at import time: point it at a private home before anything imports it.
_HOME = Path(tempfile.mkdtemp(prefix="airflow-tokens-tests-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_HOME),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(_HOME / "dags"),
        "AIRFLOW__CORE__FERNET_KEY": "hQbr6Bci8H2bA3lNFnGRvTAxqD1tbE3p8K8bRrVJvq8=",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME / 'airflow.db'}",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__API_AUTH__JWT_SECRET": "0123456789abcdef" * 5,
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    }
)
# The DAGs folder holds the example DAGs and the tests' own DAGs.
(_HOME / "dags").mkdir()
for dag_file in [*(REPO / "dags_example").glob("*.py"), *(REPO / "tests" / "dags").glob("*.py")]:
    (_HOME / "dags" / dag_file.name).symlink_to(dag_file)
for name in list(os.environ):
    if name.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_")):
        del os.environ[name]


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Create the session's SQLite metadata database once (about 10 s) and return the Airflow home."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
    )
    return _HOME


@pytest.fixture(scope="session")
def dagbag(airflow_db: Path) -> Any:
    """Return the DagBag of the example and test DAGs (parsed once)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(_HOME / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag


@pytest.fixture(autouse=True)
def _fresh_process_cache() -> Iterator[None]:
    """Start every test with an empty in-process token cache and an empty secrets masker."""
    from airflow_tokens.memory import clear_memory_cache

    clear_memory_cache()
    _empty_secrets_masker()
    yield
    clear_memory_cache()


def _empty_secrets_masker() -> None:
    """Forget every secret registered with Airflow's masker in this process, and our note of them.

    Airflow's masker compiles one alternation of every secret it was given, anew for each new one: in one
    process running 1,600 tests it grows to thousands of tokens, and the tests slowed down five times as
    the session went on (the regex compiles were over half the time). Each test registers what it needs.
    """
    from airflow.sdk._shared.secrets_masker import _secrets_masker

    from airflow_tokens import memory

    _secrets_masker().reset_masker()
    memory._masked.clear()

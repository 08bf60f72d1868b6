"""Run the example DAGs with `airflow dags test` against the vendor emulator and print what happened."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
from airflow.sdk._shared.secrets_masker import redact
from airflow.sdk.log import mask_secret
from cryptography.fernet import Fernet

from airflow_tokens.cache import CacheEntry, VariableStore
from airflow_tokens.get_provider_info import get_provider_info
from airflow_tokens.testing import (
    CUSTOM_ENDPOINT_EXTRA,
    CUSTOM_ENDPOINT_PATH,
    EMULATOR_CLIENT_ID,
    EMULATOR_CLIENT_SECRET,
    EmulatorClient,
)

if TYPE_CHECKING:
    from airflow_tokens.token import AccessToken

REPO = Path(__file__).resolve().parent.parent
HOME = REPO / ".demo" / "airflow_home"
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Example:
    """One example DAG, the connection it uses and the emulator vendor behind it."""

    dag_id: str
    conn_id: str
    vendor: str
    conn: dict[str, Any]

    @property
    def vendor_conn_type(self) -> str:
        """Return the connection type (the first part of the cache key)."""
        return str(self.conn["conn_type"])


def examples(url: str) -> list[Example]:
    """Return the example DAGs with connections that point at the emulator."""
    creds = {"login": EMULATOR_CLIENT_ID, "password": EMULATOR_CLIENT_SECRET}
    oauth2 = {"conn_type": "oauth2_client_credentials", "host": f"{url}/oauth2/token", **creds}
    custom = {
        "conn_type": "token_endpoint",
        "host": url + CUSTOM_ENDPOINT_PATH,
        **creds,
        "extra": CUSTOM_ENDPOINT_EXTRA,
    }
    return [
        Example("sirv_token_example", "sirv_default", "sirv", {"conn_type": "sirv", "host": url, **creds}),
        Example(
            "learning360_token_example",
            "360learning_default",
            "360learning",
            {"conn_type": "360learning", "host": url, **creds},
        ),
        Example(
            "manis_token_example", "manis_default", "manis", {"conn_type": "manis", "host": url, **creds}
        ),
        Example(
            "podero_token_example", "podero_default", "podero", {"conn_type": "podero", "host": url, **creds}
        ),
        Example("oauth2_token_example", "oauth2_client_credentials_default", "oauth2", oauth2),
        Example("token_endpoint_example", "token_endpoint_default", "custom", custom),
    ]


def airflow_env() -> dict[str, str]:
    """Return the environment of a private SQLite Airflow home inside the repository."""
    HOME.mkdir(parents=True, exist_ok=True)
    (HOME / "airflow.db").unlink(missing_ok=True)  # every demo starts from an empty metadata database
    key_file = HOME / "fernet.key"
    if not key_file.exists():
        key_file.write_bytes(Fernet.generate_key())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(HOME),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags_example"),
            "AIRFLOW__CORE__FERNET_KEY": key_file.read_text().strip(),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{HOME / 'airflow.db'}",
        }
    )
    return env


def start_emulator(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """Start the emulator on a free port and return the process and its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_tokens.testing", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"http://[\d.]+:\d+", line)
    if not match:
        proc.kill()
        raise SystemExit(f"the emulator did not start: {line!r}")
    url = match.group(0)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            requests.get(f"{url}/_emulator/stats", timeout=1).raise_for_status()
            return proc, url
        except requests.RequestException:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the emulator did not answer")


def cli_json(env: dict[str, str], *args: str) -> Any:
    """Run an airflow CLI command with JSON output and return the parsed result."""
    out = subprocess.run(
        [BIN / "airflow", *args, "-o", "json"], env=env, capture_output=True, text=True, check=True
    ).stdout
    return json.loads(next(line for line in out.splitlines() if line.startswith(("[", "{"))))


def task_states(env: dict[str, str], dag_id: str) -> dict[str, str]:
    """Return the task states of the DAG's latest run."""
    run_id = cli_json(env, "dags", "list-runs", dag_id)[0]["run_id"]
    rows = cli_json(env, "tasks", "states-for-dag-run", dag_id, run_id)
    return {row["task_id"]: row["state"] for row in rows}


def cached_token(env: dict[str, str], conn_type: str, conn_id: str) -> AccessToken | None:
    """Return the token the tasks cached in the Variable, read back through the airflow CLI."""
    key = VariableStore.variable_key(f"{conn_type}.{conn_id}")
    out = subprocess.run(
        [BIN / "airflow", "variables", "get", key], env=env, capture_output=True, text=True, check=False
    ).stdout
    line = next((line for line in out.splitlines() if line.startswith("{")), None)
    return CacheEntry.from_json(line).token if line else None


def main() -> int:
    """Run the demo and print its summary; return the exit code."""
    env = airflow_env()
    print(f"Airflow home: {HOME.relative_to(REPO)} (SQLite)")
    subprocess.run([BIN / "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
    emulator, url = start_emulator(env)
    print(f"Vendor emulator: {url}")
    client = EmulatorClient(url)
    failed = False
    summary: list[tuple[str, str, int, bool]] = []
    try:
        for example in examples(url):
            env[f"AIRFLOW_CONN_{example.conn_id.upper()}"] = json.dumps(example.conn)
            log_file = HOME.parent / f"{example.dag_id}.log"
            with log_file.open("w") as out:
                result = subprocess.run(
                    [BIN / "airflow", "dags", "test", example.dag_id],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            states = task_states(env, example.dag_id)
            got = sorted(task for task, state in states.items() if state == "success")
            requests_seen = client.token_requests(example.vendor)
            token = cached_token(env, example.vendor_conn_type, example.conn_id)
            if token is not None:
                mask_secret(token.token)
            ok = result.returncode == 0 and len(got) == len(states) and requests_seen == 1
            failed |= not ok
            summary.append((example.vendor_conn_type, example.dag_id, requests_seen, ok))
            print(f"\n{example.dag_id}: {'success' if ok else 'FAILED'} (log: {log_file.relative_to(REPO)})")
            print(f"  tasks that got a token : {len(got)} of {len(states)} ({', '.join(got)})")
            print(f"  token requests seen    : {requests_seen}")
            if token is not None:
                print(f"  cached in Variable     : {token.token_type} token, {token.lifetime:.0f} s lifetime")
            print(f"  as task logs show it   : {redact(f'Bearer {token.token}') if token else 'no token'}")
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
    names = {
        entry["connection-type"]: entry["hook-name"] for entry in get_provider_info()["connection-types"]
    }
    print("\nSummary (token requests the emulator counted, per vendor):")
    width = max((len(names[conn_type]) for conn_type, *_ in summary), default=0)
    for conn_type, dag_id, requests_seen, ok in summary:
        outcome = "success" if ok else "FAILED"
        print(f"  {names[conn_type]:<{width}}  token requests: {requests_seen}  ({dag_id}: {outcome})")
    print("\nEvery task above reused one token per vendor; the emulator counted the requests.")
    return 1 if failed else 0


if __name__ == "__main__":
    if shutil.which("airflow", path=str(BIN)) is None:
        raise SystemExit("run through `make demo`, which installs the package first")
    sys.exit(main())

"""The ``airflow-tokens`` command, run as the installed script in real subprocesses against the emulator."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_tokens import __version__
from airflow_tokens.testing import EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET, Fault

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_tokens.testing import EmulatorServer

SCRIPT = Path(sys.executable).parent / "airflow-tokens"
CHECK_FIELDS = {
    "conn_id",
    "vendor",
    "conn_type",
    "token_type",
    "lifetime_seconds",
    "expires_at",
    "scope",
    "token_length",
    "cache",
    "elapsed_ms",
}


@pytest.fixture(scope="module", autouse=True)
def _bytecode_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Let the subprocesses share compiled bytecode in a private directory.

    Under PYTHONDONTWRITEBYTECODE every run of the script would compile Airflow from source again
    (about 2 s each).
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
        patch.setenv("PYTHONPYCACHEPREFIX", str(tmp_path_factory.mktemp("pycache")))
        yield


def run(
    *args: str, conns: dict[str, dict[str, Any]] | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed script with the test session's Airflow home, these connections and ``env``."""
    env = {
        **os.environ,
        **{f"AIRFLOW_CONN_{k.upper()}": json.dumps(v) for k, v in (conns or {}).items()},
        **(env or {}),
    }
    return subprocess.run(
        [str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def sirv(emulator: EmulatorServer, **fields: Any) -> dict[str, Any]:
    """Return a Sirv connection to the emulator, with ``fields`` changed."""
    return {
        "conn_type": "sirv",
        "host": emulator.url,
        "login": EMULATOR_CLIENT_ID,
        "password": EMULATOR_CLIENT_SECRET,
        **fields,
    }


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    """Check the exit code, an empty stdout and a one-line stderr containing ``needles``; return it."""
    assert result.returncode == code, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


def assert_json_error(
    result: subprocess.CompletedProcess[str], code: int, kind: str, conn_id: str | None, *needles: str
) -> dict[str, Any]:
    """Check the exit code and one JSON error object on stdout, nothing of it on stderr; return it."""
    assert result.returncode == code, result.stderr
    assert "airflow-tokens: error" not in result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    report: dict[str, Any] = json.loads(lines[0])
    assert set(report) >= {"ok", "command", "conn_id", "error"}
    assert report["ok"] is False
    assert report["conn_id"] == conn_id
    assert set(report["error"]) == {"kind", "message", "exit_code"}
    assert report["error"]["kind"] == kind
    assert report["error"]["exit_code"] == code
    message = report["error"]["message"]
    assert isinstance(message, str)
    assert "\n" not in message
    for needle in needles:
        assert needle in message
    return report


def assert_secret_free(result: subprocess.CompletedProcess[str], *secrets: str) -> None:
    """Check that no secret appears on stdout or stderr."""
    for secret in secrets:
        assert secret not in result.stdout
        assert secret not in result.stderr


def test_check_describes_the_token_without_showing_it(token_emulator: EmulatorServer) -> None:
    result = run("check", "sirv_cli", conns={"sirv_cli": sirv(token_emulator)})
    assert result.returncode == 0, result.stderr
    [token] = token_emulator.state.issued_tokens()
    assert_secret_free(result, token, token[:12], EMULATOR_CLIENT_SECRET)
    rows = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in result.stdout.strip().splitlines())
    assert rows["Connection"] == "sirv_cli"
    assert rows["Vendor"] == "Sirv"
    assert rows["Connection type"] == "sirv"
    assert rows["Token type"] == "Bearer"
    assert rows["Lifetime"] == "1500 s"
    assert rows["Token"] == f"*** ({len(token)} characters)"
    assert "files:read" in rows["Scope"].split()
    assert rows["Cache"] == "none"
    assert re.fullmatch(r"\d+ ms", rows["Time taken"])
    assert token_emulator.client.token_requests("sirv") == 1


def test_check_json_is_one_document_on_stdout(token_emulator: EmulatorServer) -> None:
    started = datetime.now(UTC)
    result = run(
        "check",
        "sirv_cli",
        "--json",
        "--cache",
        "memory",
        conns={"sirv_cli": sirv(token_emulator)},
        env={"AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG"},  # Airflow's log goes to stderr, not into the JSON
    )
    assert result.returncode == 0, result.stderr
    assert "Fetched a Bearer token for connection sirv_cli" in result.stderr
    report = json.loads(result.stdout)
    assert set(report) == CHECK_FIELDS | {"ok"}
    assert report["ok"] is True
    [token] = token_emulator.state.issued_tokens()
    assert_secret_free(result, token, token[:12], EMULATOR_CLIENT_SECRET)
    assert report["vendor"] == "Sirv"
    assert report["conn_type"] == "sirv"
    assert report["token_type"] == "Bearer"
    assert report["lifetime_seconds"] == 1500
    assert report["token_length"] == len(token)
    assert report["cache"] == "memory"
    assert "files:read" in report["scope"]
    expires_at = datetime.fromisoformat(report["expires_at"])
    assert expires_at.utcoffset() == timedelta(0)
    assert started + timedelta(seconds=1490) < expires_at < datetime.now(UTC) + timedelta(seconds=1510)
    assert report["elapsed_ms"] >= 0
    assert token_emulator.client.token_requests("sirv") == 1


def test_check_a_token_endpoint_connection(token_emulator: EmulatorServer) -> None:
    from tests.vendors import TOKEN_ENDPOINT

    conn = TOKEN_ENDPOINT.conn(token_emulator.url)
    result = run("check", "custom_cli", "--json", conns={"custom_cli": conn})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    [token] = token_emulator.state.issued_tokens()
    assert_secret_free(result, token, token[:12], EMULATOR_CLIENT_SECRET)
    assert (report["vendor"], report["conn_type"]) == ("Token endpoint (custom)", "token_endpoint")
    assert report["scope"] == ["images:read", "images:write"]
    assert 898 <= report["lifetime_seconds"] <= 900  # an ISO 8601 expiry read from a nested answer
    failed = run("check", "custom_cli", conns={"custom_cli": {**conn, "password": "wrong-secret-value"}})
    assert_one_line_error(failed, 3, "HTTP 401", TOKEN_ENDPOINT.unauthorized)
    assert "wrong-secret-value" not in failed.stdout + failed.stderr


def test_missing_connection_is_a_configuration_error() -> None:
    line = assert_one_line_error(
        run("check", "no_such_conn"), 2, "'no_such_conn'", "AIRFLOW_CONN_NO_SUCH_CONN"
    )
    assert "not defined" in line
    assert "metadata database" in line


def test_unreadable_connection_variable_is_named_without_its_value() -> None:
    value = '{"conn_type": "sirv", "password": "hunter2-secret", '
    result = run("check", "sirv_cli", conns={}, env={"AIRFLOW_CONN_SIRV_CLI": value})
    assert_one_line_error(result, 2, "'sirv_cli'", "AIRFLOW_CONN_SIRV_CLI is set but Airflow cannot read it")
    assert_secret_free(result, "hunter2-secret")


def test_debug_shows_the_traceback_then_the_one_line_error() -> None:
    result = run("check", "no_such_conn", "--debug")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" in result.stderr
    assert "AirflowNotFoundException" in result.stderr
    assert "\nairflow-tokens: error: Connection 'no_such_conn': conn_id: is not defined" in result.stderr


@pytest.mark.parametrize(
    ("fields", "needles"),
    [
        ({"password": None}, ("'sirv_cli'", "password", "Client Secret is missing")),
        ({"conn_type": "http"}, ("'sirv_cli'", "conn_type", "'http' is not one of")),
        (
            {"extra": {"refresh_margn": 30}},
            ("'sirv_cli': extra: 'refresh_margn' is not an extra", "did you mean 'refresh_margin'?"),
        ),
        ({"extra": "{not json"}, ("'sirv_cli': extra: is not valid JSON",)),
    ],
    ids=["missing-password", "foreign-conn-type", "unknown-extra", "extra-not-json"],
)
def test_configuration_errors_exit_2_before_any_request(
    token_emulator: EmulatorServer, fields: dict[str, Any], needles: tuple[str, ...]
) -> None:
    result = run("check", "sirv_cli", conns={"sirv_cli": sirv(token_emulator, **fields)})
    assert_one_line_error(result, 2, *needles)
    assert_secret_free(result, EMULATOR_CLIENT_SECRET)
    assert token_emulator.client.token_requests("sirv") == 0


def test_allow_unknown_extras_warns_and_fetches(token_emulator: EmulatorServer) -> None:
    conn = sirv(token_emulator, extra={"refresh_margn": 30, "expires_in": 600})
    result = run("check", "sirv_cli", "--json", "--allow-unknown-extras", conns={"sirv_cli": conn})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["lifetime_seconds"] == 600
    [warning] = [line for line in result.stderr.splitlines() if "refresh_margn" in line]
    assert "is not an extra of sirv connections (did you mean 'refresh_margin'?), and is ignored" in warning
    assert token_emulator.client.token_requests("sirv") == 1


def test_wrong_secret_is_a_request_error_with_the_vendor_message(token_emulator: EmulatorServer) -> None:
    wrong = "not-the-right-secret-5f1c"
    result = run("check", "sirv_cli", conns={"sirv_cli": sirv(token_emulator, password=wrong)})
    assert_one_line_error(result, 3, "'sirv_cli'", "HTTP 401", "Wrong credentials")
    assert_secret_free(result, wrong)
    assert token_emulator.client.token_requests("sirv") == 1


def test_html_body_is_a_response_error(token_emulator: EmulatorServer) -> None:
    token_emulator.client.inject("sirv", Fault.html())
    result = run("check", "sirv_cli", conns={"sirv_cli": sirv(token_emulator)})
    assert_one_line_error(result, 4, "'sirv_cli'", "not JSON", "text/html")
    assert_secret_free(result, EMULATOR_CLIENT_SECRET)


# ------------------------------------------------------------------------- --json: errors as JSON


def test_json_config_error_for_a_missing_connection() -> None:
    result = run("check", "no_such_conn", "--json")
    report = assert_json_error(result, 2, "config", "no_such_conn", "'no_such_conn'", "not defined")
    assert report["command"] == "check"
    assert result.stderr.strip() == ""


def test_json_config_error_sends_no_request(token_emulator: EmulatorServer) -> None:
    conn = sirv(token_emulator, password=None)
    result = run("check", "sirv_cli", "--json", conns={"sirv_cli": conn})
    assert_json_error(result, 2, "config", "sirv_cli", "'sirv_cli'", "Client Secret is missing")
    assert token_emulator.client.token_requests("sirv") == 0


def test_json_request_error_for_a_refused_port() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    conn = {"conn_type": "sirv", "host": url, "login": EMULATOR_CLIENT_ID, "password": EMULATOR_CLIENT_SECRET}
    args = ("check", "sirv_cli", "--json", "--max-attempts", "1", "--timeout", "1")
    result = run(*args, conns={"sirv_cli": conn})
    report = assert_json_error(result, 3, "request", "sirv_cli", "ConnectionError", "after 1 attempt")
    assert url in report["error"]["message"]
    assert_secret_free(result, EMULATOR_CLIENT_SECRET)


def test_json_response_error_for_an_html_body(token_emulator: EmulatorServer) -> None:
    token_emulator.client.inject("sirv", Fault.html())
    result = run("check", "sirv_cli", "--json", conns={"sirv_cli": sirv(token_emulator)})
    assert_json_error(result, 4, "response", "sirv_cli", "'sirv_cli'", "not JSON", "text/html")
    assert_secret_free(result, EMULATOR_CLIENT_SECRET)
    assert token_emulator.client.token_requests("sirv") == 1


def test_json_failure_without_a_metadata_database(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / "airflow.db"
    env = {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{missing}"}
    result = run("status", "--json", env=env)
    report = assert_json_error(result, 1, "failure", None, "cannot use Airflow's metadata database")
    assert report["command"] == "status"


@pytest.mark.parametrize(
    ("args", "command", "needle"),
    [
        (("check", "--json"), "check", "CONN_ID"),
        (("check", "sirv_cli", "--json", "--max-attempts", "0"), "check", "--max-attempts"),
        (("check", "sirv_cli", "--json", "--timeout", "-1"), "check", "--timeout"),
        (("check", "sirv_cli", "--json", "--cache", "xcom"), "check", "--cache"),
        (("clear", "--json"), "clear", "CONN_ID"),
        (("chek", "sirv_cli", "--json"), None, "invalid choice"),
    ],
    ids=["missing-conn-id", "zero-attempts", "negative-timeout", "bad-choice", "clear-no-target", "typo"],
)
def test_json_usage_error_exits_2(args: tuple[str, ...], command: str | None, needle: str) -> None:
    result = run(*args)
    report = assert_json_error(result, 2, "usage", None, needle)
    assert report["command"] == command
    assert result.stderr == ""


def test_json_debug_prints_the_traceback_on_stderr_only() -> None:
    result = run("check", "no_such_conn", "--json", "--debug")
    assert result.returncode == 2
    assert "Traceback" in result.stderr
    assert "AirflowNotFoundException" in result.stderr
    assert "airflow-tokens: error" not in result.stderr
    report = json.loads(result.stdout)
    assert report["error"] == {
        "kind": "config",
        "message": "Connection 'no_such_conn': conn_id: is not defined (looked in AIRFLOW_CONN_NO_SUCH_CONN, "
        "the secrets backends and the metadata database)",
        "exit_code": 2,
    }


@pytest.mark.airflow_db
def test_json_clear_of_nothing_cached_is_an_error(airflow_db: Path) -> None:
    result = run("clear", "sirv_never_cached", "--json")
    report = assert_json_error(result, 5, "not_cached", "sirv_never_cached", "'sirv_never_cached'")
    assert report["command"] == "clear"
    assert report["removed"] == []


@pytest.mark.airflow_db
def test_json_clear_all_says_ok(airflow_db: Path) -> None:
    result = run("clear", "--all", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"ok": True, "removed": []}


# ---------------------------------------------------------------------- --max-attempts, --timeout


@pytest.mark.parametrize("attempts", [1, 2])
def test_max_attempts_bounds_the_requests(token_emulator: EmulatorServer, attempts: int) -> None:
    """Without the option the connection's 5 attempts would get past both 503s and succeed."""
    token_emulator.client.inject("sirv", Fault.status(503), Fault.status(503))
    args = ("check", "sirv_cli", "--json", "--max-attempts", str(attempts))
    result = run(*args, conns={"sirv_cli": sirv(token_emulator)})
    plural = "attempt" if attempts == 1 else "attempts"
    assert_json_error(result, 3, "request", "sirv_cli", "HTTP 503", f"after {attempts} {plural}")
    assert token_emulator.client.token_requests("sirv") == attempts


def test_timeout_fails_an_answer_slower_than_it(token_emulator: EmulatorServer) -> None:
    """The connection's read timeout (30 s) would wait the 3 s delay out and succeed."""
    token_emulator.client.inject("sirv", Fault.delay(3))
    args = ("check", "sirv_cli", "--json", "--max-attempts", "1", "--timeout", "0.5")
    result = run(*args, conns={"sirv_cli": sirv(token_emulator)})
    assert_json_error(result, 3, "request", "sirv_cli", "Timeout", "after 1 attempt")
    assert token_emulator.client.token_requests("sirv") == 1


@pytest.mark.airflow_db
def test_connection_in_the_metadata_database_is_found(
    airflow_db: Path, token_emulator: EmulatorServer
) -> None:
    """Outside a task the task SDK alone does not read the database; the command must (as Airflow's CLI)."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    conn_id = "sirv_cli_in_db"
    with create_session() as session:
        session.add(Connection(conn_id=conn_id, **sirv(token_emulator)))
    try:
        result = run("check", conn_id, "--json")
    finally:
        with create_session() as session:
            session.query(Connection).filter(Connection.conn_id == conn_id).delete()
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["conn_id"] == conn_id
    assert token_emulator.client.token_requests("sirv") == 1


def free_port() -> int:
    """Return a TCP port that is free on the loopback interface right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_emulator_serves_until_sigterm() -> None:
    port = free_port()
    process = subprocess.Popen(
        [str(SCRIPT), "emulator", "--port", str(port)],
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip().endswith(f"listening on http://127.0.0.1:{port}")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_emulator/health", timeout=10) as response:
            assert response.status == 200
            assert isinstance(json.load(response), dict)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"airflow-tokens {__version__}"

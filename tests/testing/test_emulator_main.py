"""``python -m airflow_tokens.testing``: what it prints on start works as printed (real subprocesses)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_tokens.testing import (
    CUSTOM_ENDPOINT_EXTRA,
    EMULATOR_CLIENT_ID,
    EMULATOR_CLIENT_SECRET,
    EmulatorClient,
)
from airflow_tokens.testing.__main__ import EMULATED, LAST_LINE, client_url, connections
from airflow_tokens.vendors import VENDORS

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).parent / "airflow-tokens"
LISTENING = re.compile(r"airflow-tokens emulator listening on (http://\S+)")
BANNER_END = re.compile(re.escape(LAST_LINE))
ROUTE = re.compile(r"    ([A-Z]+(?:,[A-Z]+)*) (/\S*)(?:\s.*)?")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Return the subprocesses' environment: the repository importable, bytecode shared, no connection."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AIRFLOW_CONN_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # else each check compiles Airflow again (about 2 s)
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path_factory.mktemp("pycache"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return env


@contextlib.contextmanager
def serve(*args: str, env: dict[str, str], until: re.Pattern[str] = BANNER_END) -> Iterator[list[str]]:
    """Run the emulator with ``args``; yield its lines up to one matching ``until``; stop it (SIGTERM)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_tokens.testing", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO_ROOT,
    )
    printed: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in process.stdout or ():
            printed.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        lines: list[str] = []
        while not lines or not until.fullmatch(lines[-1]):
            lines.append(printed.get(timeout=20).rstrip("\n"))
        yield lines
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        reader.join(timeout=5)
        rest = []
        while not printed.empty():
            rest.append(printed.get())
        assert rest == [], "printed after the banner"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.stderr is not None
    assert "Traceback" not in process.stderr.read()


def check(line: str, env: dict[str, str]) -> tuple[str, subprocess.CompletedProcess[str]]:
    """Paste the ``export`` line into a shell, then run ``airflow-tokens check --json`` on its connection."""
    conn_id = shlex.split(line)[1].partition("=")[0].removeprefix("AIRFLOW_CONN_").lower()
    script = f'{line}\nexec "$0" check {conn_id} --json'
    result = subprocess.run(
        ["sh", "-c", script, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    return conn_id, result


def test_every_printed_connection_works_and_every_printed_route_exists(env: dict[str, str]) -> None:
    with serve(env=env) as lines:
        match = LISTENING.fullmatch(lines[0])
        assert match is not None, lines[0]
        url = match.group(1)
        assert f"URL:           {url}" in lines
        assert f"Client ID:     {EMULATOR_CLIENT_ID}" in lines
        assert f"Client secret: {EMULATOR_CLIENT_SECRET}" in lines

        exports = [line for line in lines if line.startswith("export AIRFLOW_CONN_")]
        printed: dict[str, dict[str, Any]] = {}
        for line in exports:
            keyword, assignment = shlex.split(line)
            assert keyword == "export"
            name, _, value = assignment.partition("=")
            printed[name] = json.loads(value)
        assert len(printed) == len(exports) == len(VENDORS)
        assert {conn["conn_type"] for conn in printed.values()} == set(VENDORS)
        for name, conn in printed.items():
            assert name == f"AIRFLOW_CONN_{VENDORS[conn['conn_type']].default_conn_name.upper()}"
            assert conn["host"].startswith(url)
            assert (conn["login"], conn["password"]) == (EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET)
            assert "allow_http" not in conn.get("extra", {})  # loopback needs no allow_http

        # Each line on its own, in its own shell; the first alone fills the bytecode cache for the rest.
        results = [check(exports[0], env)]
        with concurrent.futures.ThreadPoolExecutor(len(exports)) as pool:
            results += pool.map(lambda line: check(line, env), exports[1:])
        for (conn_id, result), conn in zip(results, printed.values(), strict=True):
            assert result.returncode == 0, (conn_id, result.stdout, result.stderr)
            report = json.loads(result.stdout)
            assert report["ok"] is True
            assert (report["conn_id"], report["conn_type"]) == (conn_id, conn["conn_type"])
            assert report["token_length"] > 0
        client = EmulatorClient(url)
        for conn_type, name in EMULATED.items():
            assert client.token_requests(name) == 1, conn_type

        start = lines.index(next(line for line in lines if line.startswith("Routes")))
        routes = {
            (method, match.group(2))
            for line in lines[start:]
            if (match := ROUTE.fullmatch(line))
            for method in match.group(1).split(",")
        }
        # The served app's own description of its routes (not a fresh create_app(): the one running).
        with urllib.request.urlopen(f"{url}/openapi.json", timeout=10) as response:
            served = json.load(response)["paths"]

    app_routes = {(method.upper(), path) for path, operations in served.items() for method in operations}
    assert routes == app_routes
    paths = {path for _, path in routes}
    assert {"/v2/account", "/protected", "/jobs", "/jobs/{job_id}", "/_emulator/health"} <= paths
    for conn in printed.values():  # each connection's token request goes to a printed route
        vendor = VENDORS[conn["conn_type"]]
        path = conn["host"].removeprefix(url) if vendor.host_is_token_url else vendor.token_path
        assert ("POST", path) in routes


def test_quiet_prints_only_the_listening_line(env: dict[str, str]) -> None:
    with serve("--quiet", env=env, until=LISTENING) as lines:
        assert len(lines) == 1


def test_connections_to_a_host_other_than_loopback_allow_http() -> None:
    printed = connections("http://192.0.2.7:8765")
    assert all(conn["extra"]["allow_http"] is True for conn in printed.values())
    assert printed["token_endpoint_default"]["extra"] == {**CUSTOM_ENDPOINT_EXTRA, "allow_http": True}
    assert printed["oauth2_client_credentials_default"]["host"] == "http://192.0.2.7:8765/oauth2/token"
    assert printed["sirv_default"]["host"] == "http://192.0.2.7:8765"


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("0.0.0.0", "http://127.0.0.1:8765"),
        ("::", "http://[::1]:8765"),
        ("localhost", "http://localhost:8765"),
        ("192.0.2.7", "http://192.0.2.7:8765"),
    ],
)
def test_a_wildcard_address_is_reached_over_loopback(host: str, url: str) -> None:
    assert client_url(host, 8765) == url

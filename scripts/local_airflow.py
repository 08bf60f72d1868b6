"""`make airflow`: a local Airflow with airflow-tokens, the example DAGs, the vendor emulator and connections.

Runs ``airflow standalone`` (LocalExecutor, SQLite) through ``LocalAirflow`` in ``.demo/local_airflow/``
(ignored by git) and serves the vendor emulator in this process. Every start writes one example
connection per vendor into the metadata database, pointing at the emulator, so they are listed under
Admin > Connections and can be edited and tested there. They are not given as ``AIRFLOW_CONN_*``
variables: such connections are not listed in the UI, and they would win over the database, so an edit
made in the UI would silently not reach the tasks.

The metadata database and the Fernet key stay in the home, so connections you add in the UI are kept
across restarts; the example connections are written again on every start (the emulator's port may
change). Ctrl-C (SIGINT) or SIGTERM stops Airflow and the emulator.

    python scripts/local_airflow.py [--port 8080] [--emulator-port 8765]
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from cryptography.fernet import Fernet

from airflow_tokens.testing import (
    CUSTOM_ENDPOINT_EXTRA,
    CUSTOM_ENDPOINT_PATH,
    EMULATOR_CLIENT_ID,
    EMULATOR_CLIENT_SECRET,
    EmulatorServer,
)
from tests.harness.deployment import DeploymentError, LocalAirflow, free_port

if TYPE_CHECKING:
    from types import FrameType

REPO = Path(__file__).resolve().parent.parent
HOME = REPO / ".demo" / "local_airflow"
DAG_FILES = sorted((REPO / "dags_example").glob("*.py"))
# Airflow's answer when the UI's Test button sends port 0 for a connection stored without a port.
PORT_BUG = "The host or port to test differs from the stored connection"


@dataclass(frozen=True)
class Example:
    """One example connection, the UI name of its type and the example DAG that uses it."""

    conn_id: str
    conn_type: str
    type_name: str
    dag_id: str
    path: str = ""  # appended to the emulator URL for the connection's host
    extra: dict[str, Any] | None = None

    def connection(self, emulator_url: str, port: int | None) -> dict[str, Any]:
        """Return the connection as the REST API takes it, pointing at the emulator."""
        return {
            "connection_id": self.conn_id,
            "conn_type": self.conn_type,
            "description": f"Example for {self.dag_id}: the local vendor emulator",
            "host": emulator_url + self.path,
            "port": port,
            "login": EMULATOR_CLIENT_ID,
            "password": EMULATOR_CLIENT_SECRET,
            "extra": json.dumps(self.extra) if self.extra else None,
        }


EXAMPLES = [
    Example("sirv_default", "sirv", "Sirv", "sirv_token_example"),
    Example("learning360_default", "learning360", "360Learning", "learning360_token_example"),
    Example("manis_default", "manis", "Manis", "manis_token_example"),
    Example("podero_default", "podero", "Podero", "podero_token_example"),
    Example(
        "oauth2_client_credentials_default",
        "oauth2_client_credentials",
        "OAuth2 Client Credentials",
        "oauth2_token_example",
        "/oauth2/token",
    ),
    Example(
        "token_endpoint_default",
        "token_endpoint",
        "Token endpoint (custom)",
        "token_endpoint_example",
        CUSTOM_ENDPOINT_PATH,
        CUSTOM_ENDPOINT_EXTRA,
    ),
]


class Stop(Exception):
    """Raised by the SIGINT and SIGTERM handlers: stop everything and leave."""


def _on_signal(signum: int, frame: FrameType | None) -> NoReturn:
    raise Stop(signal.Signals(signum).name)


def _port_or_free(port: int) -> int:
    """Return ``port`` if it can be bound on 127.0.0.1, else a free port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return free_port()
    return port


def _fernet_key() -> str:
    """Return the home's Fernet key, created on first use (the database's secrets need the same key)."""
    key_file = HOME / "fernet.key"
    if not key_file.exists():
        key_file.touch(mode=0o600)
        key_file.write_bytes(Fernet.generate_key())
    return key_file.read_text().strip()


def _remove_stale_dag_links() -> None:
    """Remove links in the DAGs folder whose example file was renamed or deleted."""
    folder = HOME / "dags"
    if folder.is_dir():
        for link in folder.iterdir():
            if link.is_symlink() and not link.exists():
                link.unlink()


def _write_connections(airflow: LocalAirflow, emulator_url: str, port: int | None) -> None:
    """Create (or overwrite) the example connections in the metadata database through the REST API."""
    body = {
        "actions": [
            {
                "action": "create",
                "action_on_existence": "overwrite",
                "entities": [example.connection(emulator_url, port) for example in EXAMPLES],
            }
        ]
    }
    response = airflow.api.patch("/api/v2/connections", json=body, timeout=60)
    errors = response.json().get("create", {}).get("errors") if response.ok else None
    if not response.ok or errors:
        raise DeploymentError(
            f"could not create the example connections: {response.status_code} {response.text}"
        )


def _test_button_rejects_portless(airflow: LocalAirflow, emulator_url: str) -> bool:
    """
    Tell whether this Airflow's Test button fails on a connection stored without a port.

    The UI posts ``port: Number(connection.port)``, which is 0 for a stored NULL, and Airflow 3.3.2
    answers 400 because 0 is not "no port" to it (fixed upstream by apache/airflow#73298). This sends
    exactly what the UI sends for the Manis example and looks at the answer.
    """
    manis = next(example for example in EXAMPLES if example.conn_type == "manis")
    body = {**manis.connection(emulator_url, 0), "password": "***", "schema": "", "extra": "{}"}
    response = airflow.api.post("/api/v2/connections/test", json=body, timeout=60)
    return response.status_code == 400 and PORT_BUG in response.text


def _banner(airflow: LocalAirflow, emulator: EmulatorServer, port_zero: bool) -> str:
    """Return what the user needs to know, once everything runs."""
    width = max(len(example.conn_id) for example in EXAMPLES)
    lines = [
        "",
        f"Airflow {version('apache-airflow')} with airflow-tokens {version('airflow-tokens')} is ready:",
        "",
        f"  {airflow.url}",
        "",
        "  Login: none. Every visitor is an admin ([core] simple_auth_manager_all_admins);",
        "  the server listens on 127.0.0.1 only.",
        "",
        "  Admin > Connections: one example per vendor, pointing at the emulator (edit them freely):",
    ]
    lines += [
        f"    {example.conn_id:<{width}}  {example.type_name}, used by DAG {example.dag_id}"
        for example in EXAMPLES
    ]
    lines += [
        "",
        "  Test button: enabled ([core] test_connection = Enabled) for every connection type.",
    ]
    if port_zero:
        lines += [
            "  This Airflow's Test button fails with 'Bad Request' on connections stored without a port",
            "  (apache/airflow#73298), so the examples are stored with port 0, which the hooks ignore.",
        ]
    lines += [
        "",
        '  DAGs: paused until you press Trigger ("Unpause on trigger" is ticked in its dialog).',
        f"  Emulator: {emulator.url}, client ID {EMULATOR_CLIENT_ID!r}, secret {EMULATOR_CLIENT_SECRET!r}",
        f"  Home: {HOME.relative_to(REPO)} (SQLite), output of Airflow in {airflow.output_path.name} there",
        "",
        "Press Ctrl-C to stop Airflow and the emulator.",
    ]
    return "\n".join(lines)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--port",
        type=int,
        default=8080,
        help="API server and UI port; a free one if taken (default: %(default)s)",
    )
    parser.add_argument(
        "--emulator-port",
        type=int,
        default=8765,
        help="emulator port; a free one if taken (default: %(default)s)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run Airflow and the emulator until SIGINT or SIGTERM; return the exit code."""
    args = _parse_args(argv)
    # Set both explicitly: a shell that starts this in the background makes SIGINT ignored.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _on_signal)
    HOME.mkdir(parents=True, exist_ok=True)
    _remove_stale_dag_links()
    emulator = EmulatorServer(port=_port_or_free(args.emulator_port))
    env = {
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__CORE__FERNET_KEY": _fernet_key(),
    }
    airflow = LocalAirflow(HOME, DAG_FILES, env=env, port=_port_or_free(args.port))
    code = 0
    try:
        emulator.start()
        print(f"Starting Airflow in {HOME.relative_to(REPO)} (about half a minute) ...", flush=True)
        began = time.monotonic()
        airflow.start(timeout=300)
        _write_connections(airflow, emulator.url, None)
        port_zero = _test_button_rejects_portless(airflow, emulator.url)
        if port_zero:
            _write_connections(airflow, emulator.url, 0)
        for example in EXAMPLES:
            airflow.wait_for_dag(example.dag_id, timeout=120)
        print(f"Started in {time.monotonic() - began:.0f} s.")
        print(_banner(airflow, emulator, port_zero), flush=True)
        while airflow.running:
            time.sleep(1)
        print(f"airflow standalone exited on its own:\n{airflow.output_tail()}", file=sys.stderr)
        code = 1
    except Stop as stop:
        print(f"\n{stop}: stopping Airflow and the emulator (a few seconds) ...", flush=True)
    except DeploymentError as exc:
        print(f"Airflow did not start: {exc}", file=sys.stderr)
        code = 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not leave processes behind
        try:
            airflow.stop()
        except DeploymentError as exc:
            print(exc, file=sys.stderr)
            code = 1
        finally:
            emulator.stop()
    print("Stopped.")
    return code


if __name__ == "__main__":
    sys.exit(main())

"""Run a real, private Airflow deployment (``airflow standalone``) for end-to-end tests and benchmarks.

:class:`LocalAirflow` writes everything it needs under one directory: the configuration (by
environment variables), a SQLite metadata database, the DAGs folder (symlinks to the given DAG
files), the logs, the temporary files of every Airflow process, and the output of ``airflow
standalone``. It runs the scheduler (LocalExecutor), the DAG processor, the triggerer and the API
server on a free loopback port, and drives them through the REST API::

    from airflow_tokens.testing.deployment import LocalAirflow

    with LocalAirflow(home, [Path("dags/my_dag.py")], env={"AIRFLOW_CONN_X": "..."}) as airflow:
        airflow.wait_for_dag("my_dag")
        run_id = airflow.trigger("my_dag")
        assert airflow.wait_for_run("my_dag", run_id, timeout=120) == "success"
        print(airflow.task_logs("my_dag", run_id))

Importing this module is cheap: it imports neither Airflow nor ``requests`` nor ``psutil``; the
deployment runs in other processes, with the interpreter running this module.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from types import TracebackType

    import psutil  # type: ignore[import-untyped, unused-ignore]  # an Airflow dependency
    import requests

__all__ = ["DeploymentError", "LocalAirflow"]

log = logging.getLogger(__name__)

#: Components whose health ``start`` waits for (all run by ``airflow standalone``).
COMPONENTS: tuple[str, ...] = ("scheduler", "dag_processor", "triggerer")
#: Dag run states after which nothing more happens.
FINISHED_STATES = frozenset({"success", "failed"})
_TAIL_LINES = 60


class DeploymentError(RuntimeError):
    """Signal that the deployment did not start, or did not do what it was asked in time."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _segment(value: str) -> str:
    """Quote one URL path segment (run ids contain ``:`` and ``+``)."""
    return quote(value, safe="")


class LocalAirflow:
    """
    Run ``airflow standalone`` in a private home: SQLite, LocalExecutor, all admins, a free port.

    Nothing is written outside ``home``: the configuration is passed by environment variables
    (``AIRFLOW_HOME``, a generated Fernet key and JWT secret, ...), and every Airflow process gets
    ``TMPDIR=<home>/tmp``. Variables of the calling process that configure Airflow
    (``AIRFLOW_HOME``, ``AIRFLOW__*``, ``AIRFLOW_CONN_*``, ``AIRFLOW_VAR_*``, ``AIRFLOW_CONFIG``) are
    not inherited; pass what the deployment needs in ``env``.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`.

    :param home: the Airflow home; created if missing. Holds ``airflow.db``, ``dags/``, ``logs/``,
        ``tmp/`` and ``standalone.log``.
    :param dags: DAG files to deploy; each is symlinked into ``<home>/dags``.
    :param env: environment variables for every Airflow process (connections, variables, options);
        they win over the settings made here.
    :param port: the API server port (default: a free port on 127.0.0.1).
    """

    def __init__(
        self,
        home: Path,
        dags: list[Path],
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.home = Path(home).absolute()
        self.dags = [Path(dag).absolute() for dag in dags]
        names = [dag.name for dag in self.dags]
        if len(set(names)) != len(names):
            raise ValueError(f"DAG file names must be distinct in one DAGs folder: {names}")
        self._port = port
        #: The Fernet key that encrypts Variables and connection fields at rest (for audits).
        self.fernet_key = base64.urlsafe_b64encode(os.urandom(32)).decode()
        self._jwt_secret = secrets.token_urlsafe(48)
        self._extra_env = dict(env or {})
        self._process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None
        self._api: requests.Session | None = None
        self._stopped = False

    # ------------------------------------------------------------------------------ layout

    @property
    def port(self) -> int:
        """Return the API server port, picking a free one on first use."""
        if self._port is None:
            self._port = free_port()
        return self._port

    @property
    def url(self) -> str:
        """Return the API server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def dags_folder(self) -> Path:
        """Return the DAGs folder (symlinks to the deployed files)."""
        return self.home / "dags"

    @property
    def db_path(self) -> Path:
        """Return the SQLite metadata database file."""
        return self.home / "airflow.db"

    @property
    def logs_folder(self) -> Path:
        """Return the base log folder (task logs under ``dag_id=.../run_id=.../task_id=...``)."""
        return self.home / "logs"

    @property
    def output_path(self) -> Path:
        """Return the file receiving the stdout and stderr of ``airflow standalone``."""
        return self.home / "standalone.log"

    @property
    def env(self) -> dict[str, str]:
        """Return the complete environment of the deployment's processes."""
        inherited = {
            name: value
            for name, value in os.environ.items()
            if not (name.startswith("AIRFLOW_") or name == "TMPDIR")
        }
        bin_dir = str(Path(sys.executable).parent)
        settings = {
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW_CONFIG": str(self.home / "airflow.cfg"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            # SQLite under many task processes, the scheduler and the DAG processor: the database is in
            # WAL mode (see _prepare), writers wait for a lock rather than fail with "database is
            # locked", and the API server has enough pooled connections for every task's calls.
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.db_path}?timeout=30",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE": "20",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_MAX_OVERFLOW": "20",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__FERNET_KEY": self.fernet_key,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API_AUTH__JWT_SECRET": self._jwt_secret,
            "AIRFLOW__CORE__PARALLELISM": "32",
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "32",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.logs_folder),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "TMPDIR": str(self.home / "tmp"),
            # `airflow standalone` starts its components as `airflow ...` from PATH: use this interpreter's.
            "PATH": os.pathsep.join([bin_dir, inherited.get("PATH", os.defpath)]),
            "PYTHONUNBUFFERED": "1",
        }
        return {**inherited, **settings, **self._extra_env}

    def _prepare(self) -> None:
        """Create the home, the DAGs folder of symlinks, the log and temporary folders, the database."""
        for folder in (self.home, self.dags_folder, self.logs_folder, self.home / "tmp"):
            folder.mkdir(parents=True, exist_ok=True)
        self._create_database()
        for dag in self.dags:
            if not dag.is_file():
                raise FileNotFoundError(f"DAG file {dag} does not exist")
            link = self.dags_folder / dag.name
            if link.is_symlink() or link.exists():
                if link.resolve() == dag.resolve():
                    continue
                link.unlink()
            link.symlink_to(dag)

    def _create_database(self) -> None:
        """
        Create the SQLite metadata database in WAL mode (``airflow standalone`` migrates it).

        In SQLite's default rollback-journal mode a reader blocks writers: with many task processes
        reporting through the API server, writes queue behind reads until a component dies with
        "database is locked". WAL lets reads and one writer proceed together; the mode is stored in
        the database file.
        """
        import sqlite3

        connection = sqlite3.connect(self.db_path)
        try:
            mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        finally:
            connection.close()
        if mode != "wal":
            raise DeploymentError(f"SQLite refused WAL mode ({mode})")

    # ------------------------------------------------------------------------- lifecycle

    @property
    def running(self) -> bool:
        """Tell whether ``airflow standalone`` is running."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """Return the PID of ``airflow standalone`` (also its process group id), if started."""
        return None if self._process is None else self._process.pid

    def start(self, timeout: float = 180.0, components: Sequence[str] = COMPONENTS) -> LocalAirflow:
        """
        Start ``airflow standalone`` and wait until the API reports ``components`` healthy.

        :param timeout: seconds to wait for the database migration, the components and the API.
        :param components: the health entries of ``GET /api/v2/monitor/health`` to wait for.
        """
        if self._process is not None:
            raise DeploymentError("this deployment was already started")
        import requests

        self._prepare()
        began = time.monotonic()
        self._output = self.output_path.open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "airflow", "standalone"],
            cwd=self.home,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own session and process group: stop() signals the whole group
        )
        log.info("Started airflow standalone (pid %s) in %s, API %s", self._process.pid, self.home, self.url)
        deadline = began + timeout
        try:
            health: dict[str, Any] = {}
            while True:
                if self._process.poll() is not None:
                    raise DeploymentError(
                        f"airflow standalone exited with {self._process.returncode}:\n{self.output_tail()}"
                    )
                try:
                    response = requests.get(f"{self.url}/api/v2/monitor/health", timeout=5)
                    health = response.json() if response.ok else {}
                except (requests.RequestException, ValueError):
                    health = {}
                if health and self._healthy(health, components):
                    break
                if time.monotonic() > deadline:
                    raise DeploymentError(
                        f"Airflow was not healthy after {timeout:.0f} s (health: {health}):\n"
                        f"{self.output_tail()}"
                    )
                time.sleep(0.5)
            self._api = self._api_session()
        except BaseException:
            self.stop()
            raise
        log.info("Airflow healthy after %.1f s", time.monotonic() - began)
        return self

    @staticmethod
    def _healthy(health: dict[str, Any], components: Iterable[str]) -> bool:
        """Tell whether the metadatabase and every component in ``health`` report healthy."""
        wanted = ("metadatabase", *components)
        return all((health.get(name) or {}).get("status") == "healthy" for name in wanted)

    def _api_session(self) -> requests.Session:
        """Return a session that sends the JWT the all-admins simple auth manager hands out."""
        import requests

        # Documented way (core-concepts/auth-manager/simple/token.html): with
        # [core] simple_auth_manager_all_admins, GET /auth/token returns a JWT without credentials.
        response = requests.get(f"{self.url}/auth/token", timeout=30)
        if not response.ok:
            raise DeploymentError(f"GET /auth/token answered {response.status_code}: {response.text}")
        session = _prefixed_session(self.url)
        session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        session.headers["Accept"] = "application/json"
        return session

    @property
    def api(self) -> requests.Session:
        """Return a session authenticated to the API server; paths starting with ``/`` go to it."""
        if self._api is None:
            raise DeploymentError("the deployment is not started")
        return self._api

    def stop(self, grace: float = 30.0) -> None:
        """
        Stop every process of the deployment: SIGTERM, then SIGKILL after ``grace`` seconds.

        Signals the process group of ``airflow standalone`` and every other process of the
        deployment (descendants that made their own process group, as task runners do, and any
        process running with this ``AIRFLOW_HOME``). Raises :class:`DeploymentError` if a process
        survives SIGKILL.

        Calling it again does nothing.

        :param grace: seconds between SIGTERM and SIGKILL.
        """
        process = self._process
        if self._api is not None:
            self._api.close()
            self._api = None
        if process is None or self._stopped:
            return
        began = time.monotonic()
        targets = self.processes()
        self._signal(process.pid, targets, signal.SIGTERM)
        survivors = self._wait_gone(process, targets, grace)
        if survivors:
            log.warning(
                "Airflow processes %s ignored SIGTERM for %.0f s; killing them",
                sorted(p.pid for p in survivors),
                grace,
            )
            self._signal(process.pid, survivors, signal.SIGKILL)
            survivors = self._wait_gone(process, survivors + self.processes(), 10.0)
        if self._output is not None:
            self._output.close()
            self._output = None
        self._stopped = True
        log.info("Airflow stopped in %.1f s", time.monotonic() - began)
        if survivors:
            raise DeploymentError(f"Airflow processes survived SIGKILL: {sorted(p.pid for p in survivors)}")

    def processes(self) -> list[psutil.Process]:
        """
        Return the live processes of this deployment.

        They are the members of the process group of ``airflow standalone``, its descendants (task
        runners make their own process groups) and any process whose ``AIRFLOW_HOME`` is this home;
        once :meth:`stop` returned, the list is empty.
        """
        import psutil  # type: ignore[import-untyped, unused-ignore]  # an Airflow dependency

        found: dict[int, psutil.Process] = {}
        leader = self._process.pid if self._process is not None else None
        if leader is not None and self._process is not None and self._process.poll() is None:
            try:
                root = psutil.Process(leader)
                found[root.pid] = root
                found.update((child.pid, child) for child in root.children(recursive=True))
            except psutil.NoSuchProcess:
                pass
        home = str(self.home)
        me = os.getpid()
        for proc in psutil.process_iter():
            if proc.pid == me or proc.pid in found:
                continue
            try:
                if (leader is not None and os.getpgid(proc.pid) == leader) or proc.environ().get(
                    "AIRFLOW_HOME"
                ) == home:
                    found[proc.pid] = proc
            except (psutil.Error, OSError):
                continue
        return [proc for proc in found.values() if _alive(proc)]

    @staticmethod
    def _signal(leader: int, targets: Iterable[psutil.Process], sig: signal.Signals) -> None:
        """Send ``sig`` to the process group ``leader`` and to each target outside it."""
        import psutil  # type: ignore[import-untyped, unused-ignore]  # an Airflow dependency

        with contextlib.suppress(ProcessLookupError):
            os.killpg(leader, sig)
        for proc in targets:
            try:
                if os.getpgid(proc.pid) != leader:
                    proc.send_signal(sig)
            except (psutil.Error, OSError):
                continue

    def _wait_gone(
        self, process: subprocess.Popen[bytes], targets: list[psutil.Process], timeout: float
    ) -> list[psutil.Process]:
        """Reap ``airflow standalone`` and wait until every target and group member is gone."""
        deadline = time.monotonic() + timeout
        while True:
            process.poll()  # reap the leader (our child) so it does not linger as a zombie
            left = [proc for proc in targets if _alive(proc)]
            if not left and process.returncode is not None and not _group_exists(process.pid):
                return []
            if time.monotonic() > deadline:
                seen = {proc.pid for proc in left}
                return left + [proc for proc in self.processes() if proc.pid not in seen]
            time.sleep(0.2)

    def output_tail(self, lines: int = _TAIL_LINES) -> str:
        """Return the last ``lines`` lines of the output of ``airflow standalone``."""
        try:
            text = self.output_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no output)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> LocalAirflow:
        """Start the deployment."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the deployment."""
        self.stop()

    def __repr__(self) -> str:
        """Show where the deployment lives and whether it runs."""
        state = f"running, pid {self.pid}" if self.running else "stopped"
        return f"{type(self).__name__}({str(self.home)!r}, {self.url}, {state})"

    # ------------------------------------------------------------------------------ DAGs

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the REST API and return the JSON answer; raise :class:`DeploymentError` on an error."""
        kwargs.setdefault("timeout", 30)
        response = self.api.request(method, path, **kwargs)
        if not response.ok:
            raise DeploymentError(f"{method} {path} answered {response.status_code}: {response.text}")
        return response.json()

    def import_errors(self) -> dict[str, str]:
        """Return the DAG import errors: file name -> stack trace."""
        body = self._json("GET", "/api/v2/importErrors", params={"limit": 100})
        return {item["filename"]: item["stack_trace"] for item in body.get("import_errors", [])}

    def wait_for_dag(self, dag_id: str, timeout: float = 120.0) -> None:
        """
        Wait until the DAG processor has parsed ``dag_id``; fail early on an import error.

        :param dag_id: the DAG id.
        :param timeout: seconds to wait.
        """
        deadline = time.monotonic() + timeout
        while True:
            response = self.api.get(f"/api/v2/dags/{_segment(dag_id)}", timeout=30)
            if response.ok:
                return
            # Airflow 3 names the file relative to its bundle (the DAGs folder); older ones absolutely.
            ours = {dag.name for dag in self.dags}
            errors = {name: trace for name, trace in self.import_errors().items() if Path(name).name in ours}
            if errors:
                raise DeploymentError(f"DAG {dag_id} is not loaded; import errors: {errors}")
            if time.monotonic() > deadline:
                raise DeploymentError(f"DAG {dag_id} was not parsed within {timeout:.0f} s")
            time.sleep(0.5)

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """
        Unpause ``dag_id``, trigger a manual run and return its run id.

        :param dag_id: the DAG id.
        :param conf: the run's ``conf``.
        """
        path = f"/api/v2/dags/{_segment(dag_id)}"
        self._json("PATCH", path, json={"is_paused": False})
        run = self._json("POST", f"{path}/dagRuns", json={"logical_date": None, "conf": conf or {}})
        run_id: str = run["dag_run_id"]
        log.info("Triggered %s run %s", dag_id, run_id)
        return run_id

    def run_state(self, dag_id: str, run_id: str) -> str:
        """Return the state of a DAG run (``queued``, ``running``, ``success``, ``failed``)."""
        run = self._json("GET", f"/api/v2/dags/{_segment(dag_id)}/dagRuns/{_segment(run_id)}")
        return str(run["state"])

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """Return the state of each task instance of a run (mapped instances as ``task_id[i]``)."""
        return {_ti_name(ti): ti["state"] for ti in self.task_instances(dag_id, run_id)}

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Return the task instances of a run as the REST API shows them (state, start and end, ...)."""
        path = f"/api/v2/dags/{_segment(dag_id)}/dagRuns/{_segment(run_id)}/taskInstances"
        body = self._json("GET", path, params={"limit": 1000})
        instances: list[dict[str, Any]] = body["task_instances"]
        return instances

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300.0) -> str:
        """
        Wait until a DAG run finishes and return its state (``success`` or ``failed``).

        :param dag_id: the DAG id.
        :param run_id: the run id :meth:`trigger` returned.
        :param timeout: seconds to wait; then :class:`DeploymentError`, with the task states.
        """
        deadline = time.monotonic() + timeout
        while True:
            state = self.run_state(dag_id, run_id)
            if state in FINISHED_STATES:
                return state
            if time.monotonic() > deadline:
                raise DeploymentError(
                    f"run {run_id} of {dag_id} still {state} after {timeout:.0f} s; "
                    f"tasks: {self.task_states(dag_id, run_id)}"
                )
            time.sleep(0.5)

    # ------------------------------------------------------------------------- artefacts

    def task_log_files(self, dag_id: str, run_id: str) -> dict[str, list[Path]]:
        """Return the log files of each task of a run (every attempt and map index), by task id."""
        run_folder = self.logs_folder / f"dag_id={dag_id}" / f"run_id={run_id}"
        files: dict[str, list[Path]] = {}
        if run_folder.is_dir():
            for task_folder in sorted(run_folder.glob("task_id=*")):
                found = sorted(path for path in task_folder.rglob("*.log") if path.is_file())
                if found:
                    files[task_folder.name.removeprefix("task_id=")] = found
        return files

    def task_logs(self, dag_id: str, run_id: str) -> dict[str, str]:
        """
        Return the log of each task of a run, by task id (attempts and map indexes concatenated).

        Reads the log files under ``<home>/logs``; a task without a file there is read through the
        REST API instead.

        :param dag_id: the DAG id.
        :param run_id: the run id.
        """
        logs = {
            task_id: "".join(path.read_text(errors="replace") for path in paths)
            for task_id, paths in self.task_log_files(dag_id, run_id).items()
        }
        if not self.running:
            return logs
        base = f"/api/v2/dags/{_segment(dag_id)}/dagRuns/{_segment(run_id)}/taskInstances"
        for ti in self.task_instances(dag_id, run_id):
            task_id = ti["task_id"]
            if task_id in logs or not ti.get("try_number"):
                continue
            parts: list[str] = []
            for attempt in range(1, int(ti["try_number"]) + 1):
                body = self._json(
                    "GET",
                    f"{base}/{_segment(task_id)}/logs/{attempt}",
                    params={"full_content": "true", "map_index": ti.get("map_index", -1)},
                )
                content = body.get("content", [])
                parts.extend(line if isinstance(line, str) else json.dumps(line) for line in content)
            logs[task_id] = "\n".join(parts)
        return logs

    def dump_database(self) -> str:
        """Return every table and row of the SQLite metadata database as SQL (``iterdump``)."""
        connection = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30)
        try:
            return "\n".join(connection.iterdump())
        finally:
            connection.close()


def _ti_name(ti: dict[str, Any]) -> str:
    map_index = ti.get("map_index", -1)
    return str(ti["task_id"]) if map_index in (-1, None) else f"{ti['task_id']}[{map_index}]"


def _group_exists(pgid: int) -> bool:
    """Tell whether any process (a zombie included) is still in process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _alive(proc: psutil.Process) -> bool:
    """Tell whether ``proc`` still runs (a zombie counts as gone)."""
    import psutil  # type: ignore[import-untyped, unused-ignore]  # an Airflow dependency

    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _prefixed_session(base_url: str) -> requests.Session:
    """Return a ``requests.Session`` that sends paths beginning with ``/`` to ``base_url``."""
    import requests

    class PrefixedSession(requests.Session):
        def request(
            self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
        ) -> requests.Response:
            if isinstance(url, str) and url.startswith("/"):
                url = base_url + url
            return super().request(method, url, *args, **kwargs)

    return PrefixedSession()

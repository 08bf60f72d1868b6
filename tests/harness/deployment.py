"""Run a real, private Airflow deployment (``airflow standalone``) for end-to-end tests and benchmarks.

:class:`AirflowDeployment` holds what every kind of private deployment shares (the configuration,
the DAGs folder, starting and stopping every process, the REST API helpers); :class:`LocalAirflow`
is the one-host kind, and ``tests.harness.celery_deployment.CeleryAirflow`` the many-host
kind (CeleryExecutor, PostgreSQL, Redis).

:class:`LocalAirflow` writes everything it needs under one directory: the configuration (by
environment variables), a SQLite metadata database, the DAGs folder (symlinks to the given DAG
files), the logs, the temporary files of every Airflow process, and the output of ``airflow
standalone``. It runs the scheduler (LocalExecutor), the DAG processor, the triggerer and the API
server on a free loopback port, and drives them through the REST API::

    from tests.harness.deployment import LocalAirflow

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
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Self
from urllib.parse import quote

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from types import TracebackType

    import psutil  # type: ignore[import-untyped, unused-ignore]  # an Airflow dependency
    import requests

__all__ = ["AirflowDeployment", "DeploymentError", "Launched", "LocalAirflow", "free_port"]

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


@dataclass
class Launched:
    """One process the deployment started: a component, its output file and how to stop it."""

    name: str
    process: subprocess.Popen[bytes]
    output: IO[bytes]
    output_path: Path
    #: Services (a database, a broker) are stopped after every Airflow process is gone.
    service: bool = False
    stop_signal: signal.Signals = signal.SIGTERM


class AirflowDeployment:
    """
    Run a private Airflow deployment in one directory and drive it through its REST API.

    The base of :class:`LocalAirflow` (``airflow standalone``) and
    :class:`~tests.harness.celery_deployment.CeleryAirflow` (CeleryExecutor on PostgreSQL and
    Redis). It writes the configuration as environment variables (``AIRFLOW_HOME``, a generated Fernet
    key and JWT secret, all admins, the API server on a free loopback port), a DAGs folder of symlinks,
    the logs and every process's output under ``home``; it starts the processes a subclass names in
    :meth:`_launch`, waits until the API reports them healthy, and stops every one of them (task
    processes included). Variables of the calling process that configure Airflow (``AIRFLOW_HOME``,
    ``AIRFLOW__*``, ``AIRFLOW_CONN_*``, ``AIRFLOW_VAR_*``, ``AIRFLOW_CONFIG``) are not inherited; pass
    what the deployment needs in ``env``.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`.

    :param home: the Airflow home; created if missing. Holds ``dags/``, ``logs/``, ``tmp/`` and the
        output of each process.
    :param dags: DAG files to deploy; each is symlinked into ``<home>/dags``.
    :param env: environment variables for every Airflow process (connections, variables, options);
        they win over the settings made here.
    :param port: the API server port (default: a free port on 127.0.0.1).
    """

    #: Health entries of ``GET /api/v2/monitor/health`` that :meth:`start` waits for by default.
    components: tuple[str, ...] = COMPONENTS

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
        self._launched: list[Launched] = []
        self._api: requests.Session | None = None
        self._started = False
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
    def logs_folder(self) -> Path:
        """Return the base log folder (task logs under ``dag_id=.../run_id=.../task_id=...``)."""
        return self.home / "logs"

    @property
    def output_paths(self) -> list[Path]:
        """Return the files receiving the stdout and stderr of each process started so far."""
        return [launched.output_path for launched in self._launched]

    def _settings(self) -> dict[str, str]:
        """Return the settings of this kind of deployment: metadata database, executor, ..."""
        raise NotImplementedError

    @property
    def env(self) -> dict[str, str]:
        """Return the complete environment of the deployment's Airflow processes."""
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
            # Task processes wait up to 5 s for the API server by default; on a busy machine it answers
            # later, the retried call finds its first attempt done ("already running") and the task fails.
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
            "TMPDIR": str(self.home / "tmp"),
            # Components are started as `airflow ...` from PATH: use this interpreter's.
            "PATH": os.pathsep.join([bin_dir, inherited.get("PATH", os.defpath)]),
            "PYTHONUNBUFFERED": "1",
            **self._settings(),
        }
        return {**inherited, **settings, **self._extra_env}

    def _prepare(self) -> None:
        """Create the home, the DAGs folder of symlinks, the log and temporary folders."""
        for folder in (self.home, self.dags_folder, self.logs_folder, self.home / "tmp"):
            folder.mkdir(parents=True, exist_ok=True)
        for dag in self.dags:
            if not dag.is_file():
                raise FileNotFoundError(f"DAG file {dag} does not exist")
            link = self.dags_folder / dag.name
            if link.is_symlink() or link.exists():
                if link.resolve() == dag.resolve():
                    continue
                link.unlink()
            link.symlink_to(dag)

    # ------------------------------------------------------------------------- lifecycle

    def _launch(self) -> None:
        """Start the deployment's processes with :meth:`_spawn` (the health wait follows)."""
        raise NotImplementedError

    def _spawn(
        self,
        name: str,
        command: Sequence[str],
        env: dict[str, str] | None = None,
        *,
        service: bool = False,
        stop_signal: signal.Signals = signal.SIGTERM,
        **popen: Any,
    ) -> Launched:
        """
        Start one process in its own session, its output appended to ``<home>/<name>.log``.

        :param name: the process's name in messages and its output file's name.
        :param command: the command line.
        :param env: its environment (default: :attr:`env`).
        :param service: stop it only once every Airflow process is gone (a database, a broker).
        :param stop_signal: the signal that asks it to stop.
        :param popen: more arguments for ``subprocess.Popen`` (``cwd``, ``user``, ``group``, ...).
        """
        output_path = self.home / f"{name}.log"
        output = output_path.open("ab")
        popen.setdefault("cwd", self.home)
        try:
            process = subprocess.Popen(
                list(command),
                env=self.env if env is None else env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() signals the whole group
                **popen,
            )
        except BaseException:
            output.close()
            raise
        launched = Launched(name, process, output, output_path, service, stop_signal)
        self._launched.append(launched)
        log.info("Started %s (pid %s) in %s", name, process.pid, self.home)
        return launched

    def _check_running(self) -> None:
        """Raise :class:`DeploymentError` with its output if a started process has exited."""
        for launched in self._launched:
            if launched.process.poll() is not None:
                raise DeploymentError(
                    f"{launched.name} exited with {launched.process.returncode}:\n"
                    f"{self.output_tail(launched.name)}"
                )

    @property
    def running(self) -> bool:
        """Tell whether every process the deployment started is running."""
        return bool(self._launched) and all(launched.process.poll() is None for launched in self._launched)

    @property
    def pids(self) -> dict[str, int]:
        """Return the PID of each process started (also its process group id), by name."""
        return {launched.name: launched.process.pid for launched in self._launched}

    def start(self, timeout: float = 180.0, components: Sequence[str] | None = None) -> Self:
        """
        Start the deployment and wait until the API reports ``components`` healthy.

        :param timeout: seconds to wait for the database migration, the components and the API.
        :param components: the health entries of ``GET /api/v2/monitor/health`` to wait for
            (default: :attr:`components`).
        """
        if self._started:
            raise DeploymentError("this deployment was already started")
        self._started = True
        import requests

        wanted = self.components if components is None else tuple(components)
        began = time.monotonic()
        deadline = began + timeout
        try:
            self._prepare()
            self._launch()
            log.info("Waiting for the API at %s", self.url)
            health: dict[str, Any] = {}
            while True:
                self._check_running()
                try:
                    response = requests.get(f"{self.url}/api/v2/monitor/health", timeout=5)
                    health = response.json() if response.ok else {}
                except (requests.RequestException, ValueError):
                    health = {}
                if health and self._healthy(health, wanted):
                    break
                if time.monotonic() > deadline:
                    raise DeploymentError(
                        f"Airflow was not healthy after {timeout:.0f} s (health: {health}):\n"
                        f"{self.output_tail()}"
                    )
                time.sleep(0.5)
            self._api = self._api_session()
            self._ready(deadline)
        except BaseException:
            self.stop()
            raise
        log.info("Airflow healthy after %.1f s", time.monotonic() - began)
        return self

    def _ready(self, deadline: float) -> None:
        """Wait, until ``deadline`` (monotonic), for what the health endpoint does not report."""

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

        First the Airflow processes: the process group of each one started, every descendant
        (task runners make their own process groups) and any process running with this
        ``AIRFLOW_HOME``; then the services (database, broker) the same way. Raises
        :class:`DeploymentError` if a process survives SIGKILL. Then :meth:`_cleanup` runs.

        Calling it again does nothing.

        :param grace: seconds between the stop signal and SIGKILL, for each of the two stages.
        """
        if self._api is not None:
            self._api.close()
            self._api = None
        if not self._started or self._stopped:
            return
        began = time.monotonic()
        survivors: list[psutil.Process] = []
        for services in (False, True):
            stage = [launched for launched in self._launched if launched.service == services]
            survivors += self._stop_stage(stage, grace, include_home=not services)
        for launched in self._launched:
            launched.output.close()
        self._stopped = True
        log.info("Airflow stopped in %.1f s", time.monotonic() - began)
        if survivors:
            raise DeploymentError(f"processes survived SIGKILL: {sorted(p.pid for p in survivors)}")
        self._cleanup()

    def _cleanup(self) -> None:
        """Remove what must not outlive the deployment, once every process is gone."""

    def _stop_stage(self, stage: list[Launched], grace: float, *, include_home: bool) -> list[psutil.Process]:
        """Signal ``stage`` (and the processes with this home), wait, kill; return the survivors."""
        if not stage:
            return []
        targets = self._members(stage, include_home=include_home)
        _signal_stage(stage, targets, None)
        survivors = self._wait_gone(stage, targets, grace, include_home=include_home)
        if survivors:
            log.warning(
                "Processes %s ignored the stop signal for %.0f s; killing them",
                sorted(p.pid for p in survivors),
                grace,
            )
            _signal_stage(stage, survivors, signal.SIGKILL)
            survivors = self._wait_gone(stage, survivors, 10.0, include_home=include_home)
        return survivors

    def processes(self) -> list[psutil.Process]:
        """
        Return the live processes of this deployment.

        They are the processes started, the members of their process groups, their descendants
        (task runners make their own process groups) and any process whose ``AIRFLOW_HOME`` is this
        home; once :meth:`stop` returned, the list is empty.
        """
        return self._members(self._launched, include_home=True)

    def _members(self, launched: Sequence[Launched], *, include_home: bool) -> list[psutil.Process]:
        """Return the live processes of ``launched``: groups, descendants, and this home's if asked."""
        import psutil  # type: ignore[import-untyped, unused-ignore]  # an Airflow dependency

        found: dict[int, psutil.Process] = {}
        leaders = set()
        for item in launched:
            leaders.add(item.process.pid)
            if item.process.poll() is not None:
                continue
            try:
                root = psutil.Process(item.process.pid)
                found[root.pid] = root
                found.update((child.pid, child) for child in root.children(recursive=True))
            except psutil.NoSuchProcess:
                continue
        home = str(self.home)
        me = os.getpid()
        for proc in psutil.process_iter():
            if proc.pid == me or proc.pid in found:
                continue
            try:
                if os.getpgid(proc.pid) in leaders or (
                    include_home and proc.environ().get("AIRFLOW_HOME") == home
                ):
                    found[proc.pid] = proc
            except (psutil.Error, OSError):
                continue
        return [proc for proc in found.values() if _alive(proc)]

    def _wait_gone(
        self, stage: list[Launched], targets: list[psutil.Process], timeout: float, *, include_home: bool
    ) -> list[psutil.Process]:
        """Reap the started processes and wait until every target and group member is gone."""
        deadline = time.monotonic() + timeout
        while True:
            for launched in stage:
                launched.process.poll()  # reap our child so it does not linger as a zombie
            left = [proc for proc in targets if _alive(proc)]
            if (
                not left
                and all(launched.process.returncode is not None for launched in stage)
                and not any(_group_exists(launched.process.pid) for launched in stage)
            ):
                return []
            if time.monotonic() > deadline:
                seen = {proc.pid for proc in left}
                more = self._members(stage, include_home=include_home)
                return left + [proc for proc in more if proc.pid not in seen]
            time.sleep(0.2)

    def output_tail(self, name: str | None = None, lines: int = _TAIL_LINES) -> str:
        """
        Return the last ``lines`` lines of the output of one process started, or of each.

        :param name: the process's name (see :attr:`pids`); all of them, each under its name, if None.
        :param lines: how many lines of each.
        """
        chosen = [launched for launched in self._launched if name is None or launched.name == name]
        parts = []
        for launched in chosen:
            try:
                text = launched.output_path.read_text(errors="replace")
            except FileNotFoundError:
                text = "(no output)"
            tail = "\n".join(text.splitlines()[-lines:])
            parts.append(tail if len(chosen) == 1 else f"--- {launched.name} ---\n{tail}")
        return "\n".join(parts) or "(no output)"

    def __enter__(self) -> Self:
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
        state = "running" if self.running else "stopped"
        return f"{type(self).__name__}({str(self.home)!r}, {self.url}, {state})"

    # ------------------------------------------------------------------------------ DAGs

    def read(self, path: str, **kwargs: Any) -> requests.Response:
        """
        Send a ``GET`` to the REST API and return the answer; raise :class:`DeploymentError` on an error.

        A read that gets no answer is sent again, up to 4 times in all: an API server busy with many
        tasks on a small machine may miss the timeout now and then.

        :param path: the path (``/api/v2/...``).
        :param kwargs: more arguments for ``requests`` (``params``, ``timeout``: 30 s by default).
        """
        import requests
        import tenacity

        kwargs.setdefault("timeout", 30)
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(requests.RequestException),
            stop=tenacity.stop_after_attempt(4),
            wait=tenacity.wait_fixed(2),
            before_sleep=tenacity.before_sleep_log(log, logging.WARNING),
            reraise=True,
        )
        response: requests.Response = retrying(self.api.get, path, **kwargs)
        if not response.ok:
            raise DeploymentError(f"GET {path} answered {response.status_code}: {response.text}")
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the REST API (a read with :meth:`read`) and return the JSON answer."""
        if method == "GET":
            return self.read(path, **kwargs).json()
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
        import requests

        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.api.get(f"/api/v2/dags/{_segment(dag_id)}", timeout=30).ok:
                    return
            except requests.RequestException as exc:
                log.warning("No answer about DAG %s (%s); asking again", dag_id, type(exc).__name__)
            else:
                # Airflow 3 names the file relative to its bundle (the DAGs folder); older ones absolutely.
                ours = {dag.name for dag in self.dags}
                errors = {
                    name: trace for name, trace in self.import_errors().items() if Path(name).name in ours
                }
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

    def xcom_value(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """
        Return the value a task pushed to XCom (its return value by default), deserialised.

        :param dag_id: the DAG id.
        :param run_id: the run id.
        :param task_id: the task id.
        :param key: the XCom key.
        """
        path = (
            f"/api/v2/dags/{_segment(dag_id)}/dagRuns/{_segment(run_id)}/taskInstances/"
            f"{_segment(task_id)}/xcomEntries/{_segment(key)}"
        )
        return self._json("GET", path, params={"deserialize": "true"})["value"]

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
        """Return every table and row of the metadata database as SQL text."""
        raise NotImplementedError


class LocalAirflow(AirflowDeployment):
    """
    Run ``airflow standalone`` in a private home: SQLite, LocalExecutor, all admins, a free port.

    Nothing is written outside ``home``: the configuration is passed by environment variables, and
    every Airflow process gets ``TMPDIR=<home>/tmp``. See :class:`AirflowDeployment` for the
    environment, the lifecycle and the REST API helpers.

    :param home: the Airflow home; created if missing. Holds ``airflow.db``, ``dags/``, ``logs/``,
        ``tmp/``, ``pycache/`` (the processes' bytecode) and ``standalone.log``.
    :param dags: DAG files to deploy; each is symlinked into ``<home>/dags``.
    :param env: environment variables for every Airflow process (connections, variables, options);
        they win over the settings made here.
    :param port: the API server port (default: a free port on 127.0.0.1).
    """

    @property
    def db_path(self) -> Path:
        """Return the SQLite metadata database file."""
        return self.home / "airflow.db"

    @property
    def output_path(self) -> Path:
        """Return the file receiving the stdout and stderr of ``airflow standalone``."""
        return self.home / "standalone.log"

    @property
    def pid(self) -> int | None:
        """Return the PID of ``airflow standalone`` (also its process group id), if started."""
        return self.pids.get("standalone")

    def _settings(self) -> dict[str, str]:
        return {
            # SQLite under many task processes, the scheduler and the DAG processor: the database is in
            # WAL mode (see _create_database), writers wait for a lock rather than fail with "database
            # is locked", and the API server has enough pooled connections for every task's calls.
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.db_path}?timeout=30",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE": "20",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_MAX_OVERFLOW": "20",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            # Bytecode, as an installed deployment has it, kept in the home and shared by every process:
            # without it each process compiles Airflow from source, and the first import of a module in
            # the triggerer (the GIL held while compiling) stalls its event loop.
            "PYTHONDONTWRITEBYTECODE": "",
            "PYTHONPYCACHEPREFIX": str(self.home / "pycache"),
        }

    def _launch(self) -> None:
        """Create the database and start ``airflow standalone`` (it migrates the database)."""
        self._create_database()
        self._spawn("standalone", [sys.executable, "-m", "airflow", "standalone"])

    def _create_database(self) -> None:
        """
        Create the SQLite metadata database in WAL mode (``airflow standalone`` migrates it).

        In SQLite's default rollback-journal mode a reader blocks writers: with many task processes
        reporting through the API server, writes queue behind reads until a component dies with
        "database is locked". WAL lets reads and one writer proceed together; the mode is stored in
        the database file.
        """
        connection = sqlite3.connect(self.db_path)
        try:
            mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        finally:
            connection.close()
        if mode != "wal":
            raise DeploymentError(f"SQLite refused WAL mode ({mode})")

    def dump_database(self) -> str:
        """Return every table and row of the SQLite metadata database as SQL (``iterdump``)."""
        connection = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30)
        try:
            return "\n".join(connection.iterdump())
        finally:
            connection.close()


def _signal_stage(
    stage: Sequence[Launched], targets: Iterable[psutil.Process], sig: signal.Signals | None
) -> None:
    """
    Send ``sig`` to the process group of each started process and to each target outside those groups.

    :param sig: the signal; None sends each group its process's ``stop_signal`` and SIGTERM to the rest.
    """
    import psutil  # type: ignore[import-untyped, unused-ignore]  # an Airflow dependency

    leaders = {launched.process.pid for launched in stage}
    for launched in stage:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(launched.process.pid, sig or launched.stop_signal)
    for proc in targets:
        try:
            if os.getpgid(proc.pid) not in leaders:
                proc.send_signal(sig or signal.SIGTERM)
        except (psutil.Error, OSError):
            continue


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

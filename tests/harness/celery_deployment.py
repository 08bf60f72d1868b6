"""Run a private many-host Airflow deployment: CeleryExecutor, PostgreSQL, Redis and several workers.

:class:`CeleryAirflow` is what production looks like when tasks run on several machines: a
PostgreSQL metadata database, a Redis broker, the API server, the scheduler, the DAG processor and
``workers`` Celery workers. Each worker plays a machine of its own: its own ``TMPDIR`` (so no lock
file is shared between workers), its own Celery hostname ``w<n>@host<n>``, and the host name
``host<n>`` that Airflow records for each task instance it runs (``GET .../taskInstances`` shows it
as ``hostname``). Every process listens on 127.0.0.1 only, on free ports, and :meth:`stop` leaves no
process, database cluster or Redis data behind::

    from tests.harness.celery_deployment import CeleryAirflow

    with CeleryAirflow(home, [Path("dags/my_dag.py")], env={"AIRFLOW_CONN_X": "..."}) as airflow:
        airflow.wait_for_dag("my_dag")
        run_id = airflow.trigger("my_dag")
        assert airflow.wait_for_run("my_dag", run_id) == "success"
        print({ti["task_id"]: ti["hostname"] for ti in airflow.task_instances("my_dag", run_id)})

It needs PostgreSQL's server programs (``initdb``, ``postgres``, ``pg_dumpall``; Debian's
``postgresql`` package) and ``redis-server`` (Debian's ``redis-server``), and the Python packages
``apache-airflow-providers-celery``, ``psycopg2-binary`` and ``asyncpg`` (the ``dev`` extra).
PostgreSQL refuses to run as root: as root, the cluster runs as the ``postgres`` user (else
``nobody``), in a fresh directory under the system's temporary folder that this user can reach.
The Debian packages' own services are not used.

Importing this module is cheap (standard library only): Airflow imports it in every task process on
a worker, to learn the host name (``[core] hostname_callable``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.harness.deployment import AirflowDeployment, DeploymentError, free_port

__all__ = ["HOST_VARIABLE", "CeleryAirflow", "host_name", "postgres_bin_dir"]

#: The environment variable that names the host a worker plays (read by :func:`host_name`).
HOST_VARIABLE = "AIRFLOW_TOKENS_TEST_HOST"
_DATABASE = "airflow"
_DATABASE_USER = "airflow"


def host_name() -> str:
    """Return the host name a worker plays (``[core] hostname_callable`` of the workers), else the FQDN."""
    return os.environ.get(HOST_VARIABLE) or socket.getfqdn()


def postgres_bin_dir() -> Path:
    """
    Return the folder of PostgreSQL's server programs (``initdb``, ``postgres``, ``pg_dumpall``).

    ``initdb`` on ``PATH`` wins; else the newest ``/usr/lib/postgresql/<version>/bin`` (where Debian
    puts them, off ``PATH``). Raises :class:`DeploymentError` when neither exists.
    """
    found = shutil.which("initdb")
    candidates = [Path(found).resolve().parent] if found else []
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
        reverse=True,
    )
    for folder in [*candidates, *versions]:
        if all((folder / program).is_file() for program in ("initdb", "postgres", "pg_dumpall")):
            return folder
    raise DeploymentError(
        "PostgreSQL's server programs (initdb, postgres, pg_dumpall) were not found on PATH nor in "
        "/usr/lib/postgresql/<version>/bin; install PostgreSQL (Debian: apt-get install postgresql)"
    )


def _redis_server() -> str:
    found = shutil.which("redis-server")
    if found is None:
        raise DeploymentError(
            "redis-server was not found on PATH; install Redis (Debian: apt-get install redis-server)"
        )
    return found


class CeleryAirflow(AirflowDeployment):
    """
    Run Airflow with the CeleryExecutor on a private PostgreSQL and Redis, with several workers.

    The database cluster lives in a fresh directory of the system's temporary folder (PostgreSQL
    must reach it as its own user), Redis keeps nothing on disk; :meth:`stop` removes both once every
    process is gone. Worker ``n`` gets ``TMPDIR=<home>/hosts/host<n>/tmp``, Celery hostname
    ``w<n>@host<n>`` and host name ``host<n>``; the task logs of every worker go to ``<home>/logs``
    (as with remote logging), and no worker serves logs. See
    :class:`~tests.harness.deployment.AirflowDeployment` for the environment, the lifecycle
    and the REST API helpers.

    :param home: the Airflow home; created if missing. Holds ``dags/``, ``logs/``, ``tmp/``,
        ``hosts/``, ``redis/`` and the output of each process (``<name>.log``).
    :param dags: DAG files to deploy; each is symlinked into ``<home>/dags``.
    :param env: environment variables for every Airflow process (connections, variables, options);
        they win over the settings made here, except each worker's ``TMPDIR`` and host name.
    :param port: the API server port (default: a free port on 127.0.0.1).
    :param workers: how many Celery workers (hosts) to run.
    :param concurrency: how many tasks each worker runs at once.
    """

    components = ("scheduler", "dag_processor")

    def __init__(
        self,
        home: Path,
        dags: list[Path],
        env: dict[str, str] | None = None,
        port: int | None = None,
        *,
        workers: int = 3,
        concurrency: int = 8,
    ) -> None:
        super().__init__(home, dags, env, port)
        if workers < 1 or concurrency < 1:
            raise ValueError("workers and concurrency must be at least 1")
        self.workers = workers
        self.concurrency = concurrency
        self._pg_bin = postgres_bin_dir()
        self._redis_bin = _redis_server()
        self._pg_port = free_port()
        self._redis_port = free_port()
        self._password = os.urandom(18).hex()
        #: The database cluster's directory (created by :meth:`start`, removed by :meth:`stop`).
        self.cluster_dir: Path | None = None

    # ------------------------------------------------------------------------------ layout

    @property
    def hosts(self) -> list[str]:
        """Return the host name each worker plays: ``host1``, ``host2``, ..."""
        return [f"host{number}" for number in range(1, self.workers + 1)]

    @property
    def celery_hostnames(self) -> list[str]:
        """Return each worker's Celery hostname: ``w1@host1``, ..."""
        return [f"w{number}@{host}" for number, host in enumerate(self.hosts, 1)]

    def host_tmpdir(self, host: str) -> Path:
        """Return the ``TMPDIR`` of the worker playing ``host``."""
        return self.home / "hosts" / host / "tmp"

    @property
    def redis_dir(self) -> Path:
        """Return Redis's working directory (removed by :meth:`stop`)."""
        return self.home / "redis"

    @property
    def database_port(self) -> int:
        """Return the port PostgreSQL listens on (127.0.0.1)."""
        return self._pg_port

    @property
    def database_url(self) -> str:
        """Return the SQLAlchemy URL of the metadata database (it holds the database password)."""
        return (
            f"postgresql+psycopg2://{_DATABASE_USER}:{self._password}@127.0.0.1:{self._pg_port}/{_DATABASE}"
        )

    def _settings(self) -> dict[str, str]:
        return {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database_url,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE": "10",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_MAX_OVERFLOW": "20",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": f"redis://:{self._password}@127.0.0.1:{self._redis_port}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{self.database_url}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.concurrency),
        }

    def _service_account(self) -> dict[str, Any]:
        """Return the ``Popen`` arguments that run PostgreSQL as an unprivileged user when we are root."""
        if os.geteuid() != 0:
            return {}
        for name in ("postgres", "nobody"):
            try:
                account = pwd.getpwnam(name)
            except KeyError:
                continue
            return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        raise DeploymentError("running as root, but neither the postgres nor the nobody user exists")

    def _service_env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C"}

    # ------------------------------------------------------------------------- lifecycle

    def _launch(self) -> None:
        """Start PostgreSQL and Redis, migrate the database, start the components and the workers."""
        deadline = time.monotonic() + 120
        self._start_postgres(deadline)
        self._start_redis(deadline)
        self._migrate()
        for command in ("api-server", "scheduler", "dag-processor"):
            self._spawn(command, [sys.executable, "-m", "airflow", command])
        for host, celery_hostname in zip(self.hosts, self.celery_hostnames, strict=True):
            tmpdir = self.host_tmpdir(host)
            tmpdir.mkdir(parents=True, exist_ok=True)
            env = {
                **self.env,
                "TMPDIR": str(tmpdir),
                HOST_VARIABLE: host,
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{__name__}.host_name",
            }
            self._spawn(
                f"worker-{host}",
                [
                    *(sys.executable, "-m", "airflow", "celery", "worker"),
                    *("--celery-hostname", celery_hostname, "--concurrency", str(self.concurrency)),
                    *("--skip-serve-logs", "--without-mingle", "--without-gossip"),
                ],
                env,
            )

    def _start_postgres(self, deadline: float) -> None:
        """Create a database cluster owned by the service account, start it, create the database."""
        account = self._service_account()
        cluster = Path(tempfile.mkdtemp(prefix="airflow-tokens-postgres-"))
        self.cluster_dir = cluster
        data, password_file = cluster / "data", cluster / "password"
        password_file.write_text(self._password)
        if account:
            os.chown(cluster, account["user"], account["group"])
            os.chown(password_file, account["user"], account["group"])
        initdb = subprocess.run(
            [
                str(self._pg_bin / "initdb"),
                *("--pgdata", str(data), "--username", _DATABASE_USER, f"--pwfile={password_file}"),
                *("--auth", "scram-sha-256", "--encoding", "UTF8", "--no-locale", "--no-sync"),
            ],
            cwd=cluster,
            env=self._service_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            **account,
        )
        password_file.unlink()
        if initdb.returncode != 0:
            raise DeploymentError(f"initdb failed ({initdb.returncode}):\n{initdb.stdout}{initdb.stderr}")
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self._pg_port),
            "unix_socket_directories": "",
            "max_connections": "200",
            # A throwaway cluster: durability buys nothing and costs the shared disk.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        self._spawn(
            "postgres",
            [str(self._pg_bin / "postgres"), "-D", str(data)]
            + [part for name, value in settings.items() for part in ("-c", f"{name}={value}")],
            self._service_env(),
            service=True,
            stop_signal=signal.SIGINT,  # "fast" shutdown: no waiting for clients to disconnect
            cwd=cluster,
            **account,
        )
        import psycopg2  # type: ignore[import-untyped, unused-ignore]

        while True:
            self._check_running()
            try:
                connection = psycopg2.connect(
                    host="127.0.0.1",
                    port=self._pg_port,
                    user=_DATABASE_USER,
                    password=self._password,
                    dbname="postgres",
                    connect_timeout=5,
                )
                break
            except psycopg2.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise DeploymentError(f"PostgreSQL did not accept connections: {exc}") from exc
                time.sleep(0.2)
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE {_DATABASE}")
        finally:
            connection.close()

    def _start_redis(self, deadline: float) -> None:
        """Start Redis on loopback with a password and no persistence; wait until it answers."""
        self.redis_dir.mkdir(parents=True, exist_ok=True)
        config = self.redis_dir / "redis.conf"
        config.write_text(
            "\n".join(
                [
                    "bind 127.0.0.1",
                    f"port {self._redis_port}",
                    f"dir {self.redis_dir}",
                    f"requirepass {self._password}",
                    "protected-mode yes",
                    "daemonize no",
                    'save ""',
                    "appendonly no",
                    'logfile ""',
                    "",
                ]
            )
        )
        config.chmod(0o600)
        self._spawn("redis", [self._redis_bin, str(config)], self._service_env(), service=True)
        while True:
            self._check_running()
            try:
                with socket.create_connection(("127.0.0.1", self._redis_port), timeout=5) as sock:
                    sock.sendall(f"AUTH {self._password}\r\nPING\r\n".encode())
                    answer = b""
                    while b"PONG" not in answer and len(answer) < 1000:
                        chunk = sock.recv(1000)
                        if not chunk:
                            break
                        answer += chunk
                if b"+OK\r\n+PONG" in answer:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise DeploymentError(f"Redis did not answer PING:\n{self.output_tail('redis')}")
            time.sleep(0.2)

    def _migrate(self) -> None:
        """Create the metadata database's tables (``airflow db migrate``)."""
        output = self.home / "migrate.log"
        with output.open("ab") as sink:
            result = subprocess.run(
                [sys.executable, "-m", "airflow", "db", "migrate"],
                cwd=self.home,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                timeout=300,
                check=False,
            )
        if result.returncode != 0:
            tail = "\n".join(output.read_text(errors="replace").splitlines()[-40:])
            raise DeploymentError(f"airflow db migrate failed ({result.returncode}):\n{tail}")

    def _ready(self, deadline: float) -> None:
        """Wait until every Celery worker has logged that it is ready for tasks."""
        waiting = dict(zip(self.hosts, self.celery_hostnames, strict=True))
        while waiting:
            self._check_running()
            for host, celery_hostname in list(waiting.items()):
                output = (self.home / f"worker-{host}.log").read_text(errors="replace")
                if f"{celery_hostname} ready." in output:
                    del waiting[host]
            if not waiting:
                return
            if time.monotonic() > deadline:
                names = ", ".join(f"worker-{host}" for host in waiting)
                raise DeploymentError(f"Celery workers not ready in time: {names}\n{self.output_tail()}")
            time.sleep(0.5)

    def _cleanup(self) -> None:
        """Remove the database cluster and Redis's directory."""
        if self.cluster_dir is not None:
            shutil.rmtree(self.cluster_dir, ignore_errors=True)
        shutil.rmtree(self.redis_dir, ignore_errors=True)

    # ------------------------------------------------------------------------- artefacts

    def dump_database(self) -> str:
        """Return the whole database cluster (every database, role and row) as SQL (``pg_dumpall``)."""
        result = subprocess.run(
            [
                str(self._pg_bin / "pg_dumpall"),
                *("--host", "127.0.0.1", "--port", str(self._pg_port), "--username", _DATABASE_USER),
            ],
            env={**self._service_env(), "PGPASSWORD": self._password},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            raise DeploymentError(f"pg_dumpall failed ({result.returncode}): {result.stderr}")
        return result.stdout

"""Run every example DAG with ``dag.test()`` in one Airflow process against the vendor emulator."""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_tokens.testing import EmulatorClient
    from airflow_tokens.token import AccessToken

REPO = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO / ".demo"
HOME = DEMO_DIR / "airflow_home"
LOG_FILE = DEMO_DIR / "dags.log"
EXAMPLES_DIR = REPO / "dags_example"
STARTED = time.monotonic()  # the summary's wall time counts from here, Airflow's imports included


@dataclass(frozen=True)
class Example:
    """One example DAG, the connection it uses and the emulator vendor behind it."""

    dag_id: str
    conn_id: str
    vendor: str
    conn: dict[str, Any]
    run_conf: dict[str, Any] | None = None  # the DAG's params, when its connection is one

    @property
    def vendor_conn_type(self) -> str:
        """Return the connection type (the first part of the cache key)."""
        return str(self.conn["conn_type"])


def examples(url: str) -> list[Example]:
    """Return the example DAGs with connections that point at the emulator."""
    from airflow_tokens.testing import (
        CUSTOM_ENDPOINT_EXTRA,
        CUSTOM_ENDPOINT_PATH,
        EMULATOR_CLIENT_ID,
        EMULATOR_CLIENT_SECRET,
    )

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
            "learning360_default",
            "learning360",
            {"conn_type": "learning360", "host": url, **creds},
        ),
        Example(
            "manis_token_example", "manis_default", "manis", {"conn_type": "manis", "host": url, **creds}
        ),
        Example(
            "podero_token_example", "podero_default", "podero", {"conn_type": "podero", "host": url, **creds}
        ),
        Example("oauth2_token_example", "oauth2_client_credentials_default", "oauth2", oauth2),
        Example("token_endpoint_example", "token_endpoint_default", "custom", custom),
        # Its own Sirv connection, so its one token request (8 workers and 8 triggers) counts alone.
        Example(
            "deferrable_job_example",
            "sirv_jobs",
            "sirv",
            {"conn_type": "sirv", "host": url, **creds},
            run_conf={"conn_id": "sirv_jobs"},
        ),
    ]


@dataclass
class Outcome:
    """What one example DAG's run did."""

    example: Example
    states: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # by task id, or "dag.test()"
    token_requests: int = 0
    token: AccessToken | None = None
    seconds: float = 0.0

    @property
    def problems(self) -> list[str]:
        """Return what went wrong: errors, tasks that did not succeed, not exactly one token request."""
        found = [f"{source}: {error}" for source, error in self.errors.items()]
        found += [
            f"task {task} ended {state}"
            for task, state in sorted(self.states.items())
            if state != "success" and task not in self.errors
        ]
        if not self.states and not self.errors:
            found.append("no task ran")
        if self.token_requests != 1:
            found.append(f"expected one token request, the emulator counted {self.token_requests}")
        return found


@contextmanager
def connections(chosen: list[Example]) -> Iterator[None]:
    """Expose the examples' connections as ``AIRFLOW_CONN_*`` variables; restore the environment after."""
    from unittest import mock

    from airflow_tokens.memory import forget_connections

    conns = {f"AIRFLOW_CONN_{example.conn_id.upper()}": json.dumps(example.conn) for example in chosen}
    with mock.patch.dict(os.environ, conns):
        forget_connections()
        try:
            yield
        finally:
            forget_connections()


def cached_token(example: Example) -> AccessToken | None:
    """Return the token the tasks cached in the Variable, read from the metadata database."""
    from airflow.models.variable import Variable

    from airflow_tokens.hooks import get_token_hook
    from airflow_tokens.stores import VariableStore

    key = VariableStore.variable_key(f"{example.vendor_conn_type}.{example.conn_id}")
    raw = Variable.get(key, default_var=None)
    # The entry is sealed: only the connection's own credentials open it.
    return get_token_hook(example.conn_id).seal.open(raw).token if raw is not None else None


def run_example(dag: Any, example: Example, client: EmulatorClient) -> Outcome:
    """
    Run one example DAG with ``dag.test()`` and collect its task states, errors, requests and token.

    Every task starts with an empty in-process token cache, as it would in its own worker process, so
    the tasks after the first get the token from the Variable, not from this process's memory.
    """
    from airflow_tokens.memory import clear_memory_cache

    outcome = Outcome(example)

    def record_failure(context: Any) -> None:
        exc = context.get("exception")
        outcome.errors[context["ti"].task_id] = f"{type(exc).__name__}: {exc}"

    for task in dag.tasks:
        task.on_execute_callback = [lambda _context: clear_memory_cache()]
        task.on_failure_callback = [record_failure]
    started = time.monotonic()
    before = client.token_requests(example.vendor)
    try:
        run = dag.test(run_conf=example.run_conf)
        outcome.states = {
            ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]": str(ti.state)
            for ti in run.get_task_instances()
        }
    except Exception as exc:
        outcome.errors["dag.test()"] = f"{type(exc).__name__}: {exc}"
    outcome.seconds = time.monotonic() - started
    outcome.token_requests = client.token_requests(example.vendor) - before
    outcome.token = cached_token(example)
    return outcome


def print_outcome(outcome: Outcome, out: TextIO) -> None:
    """Print one example's result."""
    from airflow.sdk._shared.secrets_masker import redact

    problems = outcome.problems
    token = outcome.token
    done = sorted(task for task, state in outcome.states.items() if state == "success")
    verdict = "FAILED" if problems else "success"
    print(f"\n{outcome.example.dag_id}: {verdict} ({outcome.seconds:.1f} s)", file=out)
    print(f"  tasks that succeeded   : {len(done)} of {len(outcome.states)} ({', '.join(done)})", file=out)
    print(f"  token requests seen    : {outcome.token_requests}", file=out)
    if token is not None:
        print(
            f"  cached in Variable     : {token.token_type} token, {token.lifetime:.0f} s lifetime", file=out
        )
    # The hooks registered the token with the secrets masker during the run: task logs show it so.
    print(f"  as task logs show it   : {redact(f'Bearer {token.token}') if token else 'no token'}", file=out)
    for problem in problems:
        print(f"  error                  : {redact(problem)}", file=out)
    out.flush()


def demo(
    url: str,
    client: EmulatorClient,
    chosen: list[Example] | None = None,
    *,
    out: TextIO = sys.stdout,
    started: float = STARTED,
) -> int:
    """
    Run the example DAGs one after another in this process, printing each result as soon as it is known.

    Airflow must be configured and its metadata database ready. Return the exit code: 0 when every DAG
    succeeded on one token request, else 1.

    :param url: the emulator's base URL.
    :param client: an admin client of that emulator (it counts the token requests).
    :param chosen: the examples to run; by default every DAG in dags_example/, each with its connection.
    :param out: where to print.
    :param started: the ``time.monotonic()`` the reported wall time counts from.
    """
    from airflow.dag_processing.dagbag import DagBag

    from airflow_tokens.get_provider_info import get_provider_info

    to_run = chosen if chosen is not None else examples(url)
    # dag.test() runs a deferred task's trigger to its end before the next task: one status read
    # per job keeps the deferrable example quick; it still defers and polls with its own token.
    client.configure_jobs(polls=1)
    bag = DagBag(dag_folder=str(EXAMPLES_DIR))
    failed = False
    for path, error in bag.import_errors.items():
        print(f"\n{Path(path).name}: FAILED to import\n{error}", file=out)
        failed = True
    if chosen is None:
        for dag_id in sorted(set(bag.dag_ids) - {example.dag_id for example in to_run}):
            print(f"\n{dag_id}: FAILED: the demo has no connection for it", file=out)
            failed = True
    print(
        f"\nRunning dag.test() on each example DAG in turn, in this process ({len(to_run)} in all)", file=out
    )
    outcomes: list[Outcome] = []
    with connections(to_run):
        for example in to_run:
            dag = bag.dags.get(example.dag_id)
            if dag is None:
                outcome = Outcome(example, errors={example.dag_id: f"not found in {EXAMPLES_DIR.name}/"})
            else:
                outcome = run_example(dag, example, client)
            print_outcome(outcome, out)
            outcomes.append(outcome)
            failed |= bool(outcome.problems)
    names = {
        entry["connection-type"]: entry["hook-name"] for entry in get_provider_info()["connection-types"]
    }
    verdict = "FAILED" if failed else "every DAG succeeded"
    wall = time.monotonic() - started
    print(f"\nSummary: {verdict}; example DAGs run: {len(outcomes)}; wall time {wall:.0f} s", file=out)
    width = max((len(names[outcome.example.vendor_conn_type]) for outcome in outcomes), default=0)
    for outcome in outcomes:
        name = names[outcome.example.vendor_conn_type]
        result = "FAILED" if outcome.problems else "success"
        dag_id = outcome.example.dag_id
        print(f"  {name:<{width}}  token requests: {outcome.token_requests}  ({dag_id}: {result})", file=out)
    if not failed:
        print(
            "\nEvery task started with an empty in-process cache, as in its own worker: the first one"
            "\nfetched the token and stored it in a Variable, the others read it there."
            "\nThe emulator counted the token requests.",
            file=out,
        )
    out.flush()
    return 1 if failed else 0


def configure_airflow() -> None:
    """Point Airflow at a private SQLite home in .demo/, metadata database removed (before importing it)."""
    from cryptography.fernet import Fernet

    HOME.mkdir(parents=True, exist_ok=True)
    for db_file in HOME.glob("airflow.db*"):  # every demo starts from an empty metadata database
        db_file.unlink()
    key_file = HOME / "fernet.key"
    if not key_file.exists():
        key_file.write_bytes(Fernet.generate_key())
    for name in [name for name in os.environ if name.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_"))]:
        del os.environ[name]
    os.environ.update(
        {
            "AIRFLOW_HOME": str(HOME),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLES_DIR),
            "AIRFLOW__CORE__FERNET_KEY": key_file.read_text().strip(),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{HOME / 'airflow.db'}",
        }
    )


def main() -> int:
    """Set up Airflow, its metadata database and the emulator once, run the demo, return its exit code."""
    # A short run: cyclic garbage collection would re-scan the ~650,000 objects Airflow's imports
    # create several times over (seconds of CPU) to free next to nothing.
    gc.disable()
    configure_airflow()
    with LOG_FILE.open("w") as log:
        from airflow.sdk.log import configure_logging

        # Log as a task does (secrets masked), to the log file rather than the terminal.
        configure_logging(output=log, colored_console_log=False)
        from airflow.utils.db import initdb

        from airflow_tokens.testing import EmulatorServer

        print(f"Airflow home: {HOME.relative_to(REPO)} (SQLite); logs: {LOG_FILE.relative_to(REPO)}")
        begin = time.monotonic()
        initdb()  # what `airflow db migrate` does on an empty database, without a second Airflow start-up
        print(f"Metadata database created in {time.monotonic() - begin:.1f} s")
        with EmulatorServer() as server:
            print(f"Vendor emulator: {server.url}", flush=True)
            code = demo(server.url, server.client)
    if code:
        print(f"\nThe task logs, tracebacks included, are in {LOG_FILE.relative_to(REPO)}")
    return code


if __name__ == "__main__":
    if importlib.util.find_spec("airflow_tokens") is None:
        raise SystemExit("run through `make demo`, which installs the package first")
    exit_code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip the interpreter's teardown of everything Airflow loaded (up to 10 s on a busy 2-core machine).
    os._exit(exit_code)

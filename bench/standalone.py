"""Sections that need a real deployment: token requests per workload, cold-start race, in-task Variable cache.

One ``LocalAirflow`` (``airflow standalone``: scheduler with LocalExecutor, DAG processor, API server,
SQLite) runs ``bench/dags/bench_token_workloads.py``; the emulator runs in this process and the task
processes reach it over loopback. Each variant has its own DAG id; the emulator's counts are reset
before each variant and read after each run.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bench.common import REPO, Figure, Section, Stopwatch, fmt_ns, load_average, median, summary

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_tokens.testing import EmulatorServer
    from tests.harness.deployment import LocalAirflow

DAG_FILE = REPO / "bench" / "dags" / "bench_token_workloads.py"
PARALLEL_TASKS = 16
VARIABLE_KEY = "airflow_tokens.access_token.sirv.sirv_default"


@dataclass(frozen=True)
class Variant:
    """One way of getting a token in each of the 16 tasks."""

    key: str
    dag_id: str
    vendor: str
    label: str
    cold: bool = False


WORKLOADS = (
    Variant("airflow_tokens", "bench_airflow_tokens", "sirv", "airflow-tokens, Variable cache"),
    Variant("requests_post", "bench_requests_post", "sirv", "requests.post in each task"),
    Variant("requests_auth", "bench_requests_auth", "oauth2", "requests-auth OAuth2ClientCredentials"),
)
COLD_STARTS = (
    Variant("cold_lock", "bench_cold_lock", "sirv", "cold start, with the cross-process lock", cold=True),
    Variant("cold_no_lock", "bench_cold_no_lock", "sirv", "cold start, lock removed (bench only)", cold=True),
    Variant(
        "cold_lock_barrier",
        "bench_cold_lock_barrier",
        "sirv",
        "cold start, calls released together, with the lock",
        cold=True,
    ),
    Variant(
        "cold_no_lock_barrier",
        "bench_cold_no_lock_barrier",
        "sirv",
        "cold start, calls released together, lock removed",
        cold=True,
    ),
)


@dataclass
class RunResult:
    """What one DAG run did."""

    run_id: str
    state: str
    seconds: float
    token_requests: int
    peak_tasks: int
    peak_calls: int
    calls_before_first_done: int
    task_seconds: list[float] = field(default_factory=list)


def _peak(spans: list[tuple[float, float]]) -> int:
    """Return how many of ``spans`` were open at the same moment (at most)."""
    return max((sum(start <= moment < end for start, end in spans) for moment, _ in spans), default=0)


def _task_spans(airflow: LocalAirflow, dag_id: str, run_id: str) -> list[tuple[float, float]]:
    """Return the (start, end) of each task instance, as the REST API reports them."""
    spans = []
    for ti in airflow.task_instances(dag_id, run_id):
        if ti["start_date"] and ti["end_date"]:
            spans.append(
                (
                    datetime.fromisoformat(ti["start_date"]).timestamp(),
                    datetime.fromisoformat(ti["end_date"]).timestamp(),
                )
            )
    return spans


def _task_results(results_dir: Path, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    folder = results_dir / dag_id / run_id
    return [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]


def _run(
    airflow: LocalAirflow, emulator: EmulatorServer, variant: Variant, results_dir: Path, timeout: float
) -> RunResult:
    """Trigger one run of the variant's DAG, wait for it and gather counts and overlap."""
    before = emulator.client.token_requests(variant.vendor)
    began = time.monotonic()
    run_id = airflow.trigger(variant.dag_id)
    state = airflow.wait_for_run(variant.dag_id, run_id, timeout)
    seconds = time.monotonic() - began
    requests = emulator.client.token_requests(variant.vendor) - before
    tasks = _task_results(results_dir, variant.dag_id, run_id)
    calls = [(float(task["start"]), float(task["end"])) for task in tasks]
    first_done = min((end for _, end in calls), default=0.0)
    result = RunResult(
        run_id=run_id,
        state=state,
        seconds=seconds,
        token_requests=requests,
        peak_tasks=_peak(_task_spans(airflow, variant.dag_id, run_id)),
        peak_calls=_peak(calls),
        calls_before_first_done=sum(start < first_done for start, _ in calls),
        task_seconds=[float(task["seconds"]) for task in tasks],
    )
    print(
        f"  {variant.dag_id} run {run_id}: {state} in {seconds:.1f} s, {requests} token requests, "
        f"{len(tasks)} tasks reported, up to {result.peak_tasks} tasks and {result.peak_calls} token "
        f"calls at once",
        flush=True,
    )
    return result


def _delete_cache_variable(airflow: LocalAirflow) -> None:
    response = airflow.api.delete(f"/api/v2/variables/{VARIABLE_KEY}", timeout=30)
    if response.status_code not in (204, 404):
        raise RuntimeError(f"could not delete {VARIABLE_KEY}: {response.status_code} {response.text}")


def _environment(emulator: EmulatorServer, results_dir: Path, pycache: Path) -> dict[str, str]:
    from airflow_tokens.testing import EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET

    credentials = {"login": EMULATOR_CLIENT_ID, "password": EMULATOR_CLIENT_SECRET}
    return {
        "AIRFLOW_CONN_SIRV_DEFAULT": json.dumps({"conn_type": "sirv", "host": emulator.url, **credentials}),
        "AIRFLOW_CONN_OAUTH2_CLIENT_CREDENTIALS_DEFAULT": json.dumps(
            {"conn_type": "oauth2_client_credentials", "host": f"{emulator.url}/oauth2/token", **credentials}
        ),
        "BENCH_RESULTS_DIR": str(results_dir),
        # The DAG file does not change during the runs: parse it once.
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3600",
        # Bytecode in a private folder, as a pip-installed deployment has it (not in the venv).
        "PYTHONDONTWRITEBYTECODE": "",
        "PYTHONPYCACHEPREFIX": str(pycache),
    }


def run_deployment(work: Path, *, quick: bool, workload: bool, variable_task: bool) -> list[Section]:
    """Start one deployment and the emulator, run the selected sections, stop everything."""
    from airflow_tokens.testing import EmulatorServer
    from tests.harness.deployment import LocalAirflow

    sections: list[Section] = []
    results_dir = work / "task-results"
    results_dir.mkdir(parents=True, exist_ok=True)
    with EmulatorServer() as emulator:
        home = work / "airflow-home"
        env = _environment(emulator, results_dir, work / "pycache")
        airflow = LocalAirflow(home, [DAG_FILE], env=env)
        try:
            watch = Stopwatch()
            airflow.start(timeout=240)
            startup = watch.seconds
            print(f"  airflow standalone healthy after {startup:.1f} s", flush=True)
            dag_ids = [variant.dag_id for variant in (*WORKLOADS, *COLD_STARTS)] + ["bench_variable_hit"]
            for dag_id in dag_ids:
                airflow.wait_for_dag(dag_id, timeout=180)
            if workload:
                watch = Stopwatch()
                section = _workloads(airflow, emulator, results_dir, quick)
                section.seconds = watch.seconds
                section.load = load_average()
                section.data["startup_seconds"] = startup
                sections.append(section)
            if variable_task:
                watch = Stopwatch()
                section = _variable_task(airflow, results_dir, quick)
                section.seconds = watch.seconds
                section.load = load_average()
                sections.append(section)
        finally:
            airflow.stop()
    return sections


def _workloads(airflow: LocalAirflow, emulator: EmulatorServer, results_dir: Path, quick: bool) -> Section:
    runs = 1 if quick else 3
    cold_runs = 1 if quick else 3
    outcome: dict[str, list[RunResult]] = {}
    for variant in WORKLOADS:
        emulator.client.reset()
        if variant.key == "airflow_tokens":
            _delete_cache_variable(airflow)  # the first run starts on an empty cache
        outcome[variant.key] = [
            _run(airflow, emulator, variant, results_dir, timeout=240) for _ in range(runs)
        ]
    for variant in COLD_STARTS:
        outcome[variant.key] = []
        for _ in range(cold_runs):
            emulator.client.reset()
            _delete_cache_variable(airflow)
            outcome[variant.key].append(_run(airflow, emulator, variant, results_dir, timeout=240))
    return _workload_section(outcome, runs)


def _workload_section(outcome: dict[str, list[RunResult]], runs: int) -> Section:
    expected = PARALLEL_TASKS * runs
    section = Section(
        "workload",
        f"Token requests per workload: {PARALLEL_TASKS} parallel tasks, {runs} DAG run(s), real deployment",
    )
    variants = {variant.key: variant for variant in (*WORKLOADS, *COLD_STARTS)}

    def totals(key: str) -> tuple[int, str]:
        results = outcome[key]
        per_run = ", ".join(str(result.token_requests) for result in results)
        return sum(result.token_requests for result in results), per_run

    def all_succeeded(key: str) -> bool:
        return all(result.state == "success" for result in outcome[key])

    def overlap(key: str) -> str:
        results = outcome[key]
        tasks = "/".join(str(result.peak_tasks) for result in results)
        calls = "/".join(str(result.peak_calls) for result in results)
        return (
            f"peak {tasks} of {PARALLEL_TASKS} tasks running at once, {calls} token calls in flight at once"
        )

    total, per_run = totals("airflow_tokens")
    ok = total == 1 and all_succeeded("airflow_tokens")
    section.figures.append(
        Figure(
            "workload_airflow_tokens",
            f"airflow-tokens (Variable cache): token requests, {runs} run(s) x {PARALLEL_TASKS} tasks",
            f"{total} (per run: {per_run})",
            "1 in total",
            Figure.check(ok),
            overlap("airflow_tokens"),
        )
    )
    for key in ("requests_post", "requests_auth"):
        total, per_run = totals(key)
        section.figures.append(
            Figure(
                f"workload_{key}",
                f"{variants[key].label}: token requests, {runs} run(s) x {PARALLEL_TASKS} tasks",
                f"{total} (per run: {per_run})",
                f"expected {expected}",
                "info" if all_succeeded(key) else "MISS",
                overlap(key),
            )
        )
    for key, released in (("cold_lock", "as they start"), ("cold_lock_barrier", "released together")):
        total, per_run = totals(key)
        ok = all(result.token_requests == 1 for result in outcome[key]) and all_succeeded(key)
        section.figures.append(
            Figure(
                key,
                f"Cold start, {PARALLEL_TASKS} tasks on an empty cache, token calls {released}, "
                "with the lock: requests per run",
                per_run,
                "1 per run",
                Figure.check(ok),
                overlap(key),
            )
        )
    for key, released in (("cold_no_lock", "as they start"), ("cold_no_lock_barrier", "released together")):
        total, per_run = totals(key)
        before_first = "/".join(str(result.calls_before_first_done) for result in outcome[key])
        section.figures.append(
            Figure(
                key,
                f"Cold start, token calls {released}, without the lock (`cross_process_lock=False`): "
                "requests per run",
                per_run,
                "",
                "info" if all_succeeded(key) else "MISS",
                f"{overlap(key)}; {before_first} calls began before the first one returned",
            )
        )
    rows = [
        "| variant | DAG id | runs | state | token requests per run | peak tasks at once | "
        "peak token calls at once | token call per task, median (p90) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, results in outcome.items():
        durations = [seconds for result in results for seconds in result.task_seconds]
        stats = summary(durations) if durations else {"median": float("nan"), "p90": float("nan")}
        rows.append(
            f"| {variants[key].label} | `{variants[key].dag_id}` | {len(results)} | "
            f"{', '.join(sorted({result.state for result in results}))} | "
            f"{', '.join(str(result.token_requests) for result in results)} | "
            f"{', '.join(str(result.peak_tasks) for result in results)} | "
            f"{', '.join(str(result.peak_calls) for result in results)} | "
            f"{fmt_ns(stats['median'] * 1e9)} ({fmt_ns(stats['p90'] * 1e9)}) |"
        )
    section.details = "\n".join(rows)
    section.data = {
        "runs": runs,
        "expected": expected,
        "requests": {key: [result.token_requests for result in results] for key, results in outcome.items()},
        "run_seconds": {
            key: [round(result.seconds, 1) for result in results] for key, results in outcome.items()
        },
        "peak_tasks": {key: [result.peak_tasks for result in results] for key, results in outcome.items()},
        "peak_calls": {key: [result.peak_calls for result in results] for key, results in outcome.items()},
        "task_seconds_median": {
            key: median([s for result in results for s in result.task_seconds]) if results else None
            for key, results in outcome.items()
        },
    }
    return section


def _variable_task(airflow: LocalAirflow, results_dir: Path, quick: bool) -> Section:
    dag_id = "bench_variable_hit"
    reps = 60 if quick else 300
    run_id = airflow.trigger(dag_id, conf={"reps": reps, "batches": 20 if quick else 50})
    state = airflow.wait_for_run(dag_id, run_id, 300)
    if state != "success":
        logs = airflow.task_logs(dag_id, run_id)
        raise RuntimeError(f"{dag_id} run {run_id} {state}:\n{json.dumps(logs)[-4000:]}")
    data = json.loads((results_dir / dag_id / run_id / "measure.json").read_text())
    samples: dict[str, list[float]] = data["samples"]
    stats = {name: summary(values) for name, values in samples.items()}
    bare = stats["bare_variable_get"]["median"]
    load = stats["variable_load_path"]["median"]
    first = stats["first_get_token_in_process"]["median"]
    floor = stats["connection_and_variable_get"]["median"]
    section = Section("variable_task", "Variable-cache hit inside a task (real deployment, task SDK)")
    section.figures = [
        Figure(
            "variable_load_ratio",
            "Variable load path (token not in memory, connection resolved) / bare `Variable.get`",
            f"{load / bare:.2f}x ({fmt_ns(load)} vs {fmt_ns(bare)})",
            "≤ 1.2x",
            Figure.check(load / bare <= 1.2),
            f"median of {reps} interleaved calls each",
        ),
        Figure(
            "variable_first_ratio",
            "First `get_token()` in a process (connection lookup + Variable) / bare `Variable.get`",
            f"{first / bare:.2f}x ({fmt_ns(first)})",
            "≤ 1.2x",
            Figure.check(first / bare <= 1.2),
            f"vs `get_connection` + `Variable.get` by hand ({fmt_ns(floor)}): {first / floor:.2f}x",
        ),
        Figure(
            "variable_repeated",
            "Repeated `get_token()` in the same task (reused hook / new hook per call)",
            f"{fmt_ns(stats['repeated_reused_hook']['median'])} / "
            f"{fmt_ns(stats['repeated_new_hook']['median'])}",
            "served from memory",
            Figure.check(data["variable_reads_in_2000_repeated_calls"] == 0),
            f"{data['variable_reads_in_2000_repeated_calls']} Variable reads in 2,000 repeated calls",
        ),
    ]
    rows = ["| call, inside a running task | median | p10 | p90 | n |", "|---|---|---|---|---|"]
    labels = {
        "bare_variable_get": "`Variable.get(key)` of the cache Variable",
        "variable_load_path": "`hook.get_token()`, token memory cleared (Variable load path)",
        "first_get_token_in_process": "`SirvTokenHook().get_token()`, memory and connection cleared",
        "connection_and_variable_get": "`BaseHook.get_connection()` + `Variable.get(key)` (by hand)",
        "connection_only": "`BaseHook.get_connection()` alone",
        "resolve_only": "`SirvTokenHook().token_request`, memory cleared (connection resolution alone)",
        "repeated_reused_hook": "repeated `hook.get_token()` (memory)",
        "repeated_new_hook": "repeated `SirvTokenHook().get_token()` (memory)",
    }
    for name, label in labels.items():
        item = stats[name]
        rows.append(
            f"| {label} | {fmt_ns(item['median'])} | {fmt_ns(item['p10'])} | {fmt_ns(item['p90'])} | "
            f"{item['n']:.0f} |"
        )
    rows.append(
        f"| the very first `get_token()` of the task (includes `mask_secret`) | "
        f"{fmt_ns(data['very_first_ns'])} | | | 1 |"
    )
    section.details = "\n".join(rows)
    section.data = {"stats": stats, "very_first_ns": data["very_first_ns"], "reps": reps}
    return section

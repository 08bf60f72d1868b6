"""Write docs/benchmarks.md and the chart (matplotlib, Agg) from the sections measured."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from matplotlib.axes import Axes

    from bench.common import Section

ORDER = ("workload", "cache_hit", "variable_task", "cold_fetch", "imports", "memory", "metrics", "multihost")
NUMBERS = {name: number for number, name in enumerate(ORDER, 1)}

METHODS = {
    "workload": (
        "A real deployment: `LocalAirflow` runs `airflow standalone` (scheduler with LocalExecutor, "
        "parallelism 32, DAG processor, triggerer, API server, SQLite) in a private home; the emulator "
        "runs in the bench process and the task processes reach it over loopback. Every variant is its "
        "own DAG in `bench/dags/bench_token_workloads.py`, 16 parallel tasks that each get one token; "
        "the emulator's counts are reset before each variant and read after each run. Connections come "
        'from `AIRFLOW_CONN_*` variables. "Peak tasks at once" is computed from the task instances\' '
        'start and end dates (REST API), as `tests/standalone` does; "peak token calls at once" from '
        "the wall-clock start and end of the token call each task recorded. The last column is the "
        "wall time of that call inside each task, 16 processes sharing 2 cores: airflow-tokens' call "
        "includes a `Variable.get` through the supervisor and API server (about 5 ms on an idle "
        "deployment, see section 3) and registering the token with the secrets masker, where the other "
        "two only POST to the loopback emulator (about 1 ms alone); against a real vendor the POST "
        "dominates. Cold-start runs begin with "
        "the cache Variable deleted. The lock-less variant is the same Variable cache with "
        "`TokenCache(VariableStore(), cross_process_lock=False, lease_seconds=0)`. "
        'The "released together" variants hold every task at '
        "a file barrier until all 16 have started, then call `get_token()` at once: the worst case."
    ),
    "cache_hit": (
        "One fresh process, emulator-backed connection, one fetch each, then only cache hits: "
        "airflow-tokens' memory cache (a new hook object per call, and a reused one), requests-auth's "
        "`OAuth2ClientCredentials` already holding a token (calling it on a prepared request: cache "
        "lookup under a lock, expiry check, header), and authlib's `OAuth2Token.is_expired()` (a bare "
        "expiry check, the floor). Batches timed with `time.perf_counter_ns`, rotating the order."
    ),
    "variable_task": (
        "Inside one task of the same real deployment (`bench_variable_hit`): `Variable.get` goes "
        "through the task SDK and the supervisor to the API server, as in production. Interleaved: a "
        "bare `Variable.get` of the cache Variable's key; the Variable load path (the token dropped "
        "from process memory, the hook's resolved connection kept); the first `get_token()` of a "
        "process (`clear_memory_cache()`, which also forgets the resolved connection, then a new hook); "
        "and what a hand-written task needs at least (`BaseHook.get_connection` + `Variable.get`). "
        "The connection is an `AIRFLOW_CONN_*` variable, so its lookup does not leave the process. "
        "Then batches of repeated calls, and a count of Variable reads during 2,000 repeated calls."
    ),
    "cold_fetch": (
        "One fresh process; the emulator on loopback in the bench process. The hook's fetch path "
        "(`_fetch()`: what `fetch_access_token()` and a cache miss run before the token is masked; "
        "masking is a once-per-token cost, measured apart in the forced-refresh row) on a "
        'reused `SirvTokenHook(cache="none")` (its transport reuses one `requests.Session`) against a '
        "bare `session.post(url, json=body)` + `.json()` on one reused session: same endpoint, same "
        "body, both keep-alive. Also both with a new session (and a new hook) per request. Interleaved, "
        "median of many. On loopback a request takes about a millisecond, so fixed per-request costs "
        "weigh far more than against a real vendor over the internet (tens to hundreds of ms)."
    ),
    "imports": (
        "Fresh interpreters. Import: wall time of `import airflow_tokens.hooks.sirv` right after "
        "`import airflow.sdk` in the same process. With bytecode (`.pyc` in a private "
        "`PYTHONPYCACHEPREFIX`, warmed first), as a pip-installed deployment runs, and without "
        "(`PYTHONDONTWRITEBYTECODE=1`, no `.pyc`: every module compiled on each start, as in a venv "
        "installed by `uv pip install` without `--compile-bytecode` on a machine that sets that "
        "variable). Parse: wall time of `DagBag(dag_folder=<file>)` for each example DAG file and for "
        "an empty DAG (same imports, no tasks), `DagBag` already imported; first parse in a fresh "
        "process, and again after another DAG file was parsed in the process."
    ),
    "memory": (
        "Fresh interpreters: RSS (psutil, after `gc.collect()`) after `import airflow.sdk`, then after "
        "`from airflow_tokens.hooks.sirv import SirvTokenHook`, then after `SirvTokenHook().get_token()` "
        "fetched one token from the emulator (outside a task: memory cache)."
    ),
    "metrics": (
        "One fresh process with Airflow's StatsD metrics on, sent to a loopback UDP socket that nobody "
        'reads (the kernel drops what overflows). A reused `SirvTokenHook(cache="memory")` holding '
        "one token; interleaved batches of cache hits with airflow-tokens' metrics off (the one flag, "
        "`metrics.on`, that a process without metrics has false) and on, and of a memory hit's metric "
        "alone (`if metrics.on: metrics.cache_hit(...)`), off and on. Other cache paths and the fetch "
        "call the metric function, which returns at once when metrics are off."
    ),
    "multihost": (
        "A real many-host deployment: `CeleryAirflow` runs PostgreSQL (metadata database) and Redis "
        "(broker) from Debian's packages, the API server, the scheduler, the DAG processor and three "
        "Celery workers of concurrency 8, each worker a host of its own: its own `TMPDIR` (no lock file "
        "is shared) and host name. The DAG `multihost_refresh` (`tests/dags/multihost_tokens.py`) runs "
        "twice at once, on two Sirv connections with 8 s tokens: one with the lease, one with "
        "`lease_seconds` 0. Its 12 tasks call `get_access_token()` every 20 ms and record each call: "
        "wall-clock start, duration, token requests their process sent during the call (a response "
        "hook on the hook's `requests.Session`), expiry of the token returned. The emulator counts "
        "each connection's token requests. A token is replaced once less than the refresh margin (60 s, "
        "at most a quarter of the lifetime: 2 s) is left, so one token serves 6 s (the usable "
        "lifetime); the target is one request per usable lifetime over the span of the calls, plus one. "
        '"While another task fetched": calls that sent no request and overlapped in time a call of '
        "another task that did (on the same host or another); if they had waited for the fetch, their "
        "p99 would reach the fetching calls' duration. Each task's first call (connection lookup, and "
        "the cold start on the empty cache) is left out of the latencies: they are about refreshes."
    ),
}


def figures_table(sections: list[Section]) -> str:
    """Return the table of every figure, with its target and PASS/MISS."""
    rows = ["| # | figure | value | target | result | note |", "|---|---|---|---|---|---|"]
    for section in sorted(sections, key=lambda s: NUMBERS[s.name]):
        for figure in section.figures:
            result = f"**{figure.status}**" if figure.status in ("PASS", "MISS") else figure.status
            rows.append(
                f"| {NUMBERS[section.name]} | {figure.label} | {figure.value} | {figure.target} | "
                f"{result} | {figure.note} |"
            )
    return "\n".join(rows)


#: Targets first missed, the figure then (by `make bench` or by hand at that commit) and what changed;
#: the figure after the change is the one in the table above.
OPTIMISATIONS = [
    (
        "2. cache hit, new hook per call",
        "242 µs (ad-hoc timeit at 33ef1e1: every new hook read its connection)",
        "76c5639: new hooks reuse the connection resolved in the process for 60 s; 3.10 µs at 556a1a6; "
        "then the hook keeps its profile in a plain attribute and a token derives its refresh deadline "
        "once; 12.84 µs at 796c188 (every hit built the hook's transport, reading three extras); "
        "8eb6a94: the transport is built only to send, its settings resolved once per connection",
    ),
    (
        "4. cold fetch / bare `session.post()`",
        "1.18x (556a1a6)",
        "1e0de43: the fetch logs at DEBUG (the INFO line through Airflow's structlog cost 60-280 µs), "
        "one precompiled whitespace check",
    ),
    (
        "5. import after `import airflow.sdk`",
        "52.9 ms with bytecode, 407.7 ms without (556a1a6)",
        "1e0de43: `requests` and `filelock` are imported only when a fetch or a lock needs them",
    ),
    (
        "6. RSS of import + one fetch",
        "6.1 MiB (556a1a6)",
        "1e0de43: `filelock` only on a shared-store miss; `requests` (3.96 MiB) stays: it is the "
        "package's HTTP library",
    ),
]


def write_markdown(
    path: Path,
    sections: list[Section],
    facts: dict[str, str],
    chart: str,
    wall_seconds: float,
    command: str,
    notes: list[str],
) -> None:
    """Write the benchmark report."""
    machine = [
        "| | |",
        "|---|---|",
        f"| date | {facts['date']} |",
        f"| CPU | {facts['cpu']}, {facts['cores']} cores (shared, noisy virtual machine) |",
        f"| RAM | {facts['ram']} |",
        f"| OS | {facts['os']} |",
        f"| Python | {facts['python']} |",
        f"| Apache Airflow | {facts['airflow']} (task SDK {facts['task_sdk']}) |",
        f"| airflow-tokens | {facts['airflow_tokens']} |",
        f"| requests | {facts['requests']} |",
        f"| requests-auth | {facts['requests_auth']} |",
        f"| authlib | {facts['authlib']} |",
        f"| load average (1/5/15 min) | {facts['load_at_start']} at the start, "
        f"{facts['load_at_end']} at the end |",
        f"| command, wall time | `{command}`, {wall_seconds / 60:.1f} min |",
    ]
    parts = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`bench/run.py`); do not edit by hand. Figures are medians of many "
        "repetitions on a small shared machine: read them as orders of magnitude and ratios, not as "
        "absolutes. A MISS stays a MISS here until the code changes.",
        "",
        "## Machine and versions",
        "",
        *machine,
        "",
        "## Figures",
        "",
        figures_table(sections),
        "",
        f"![Benchmark chart]({chart})",
        "",
    ]
    parts += [
        "## Optimisations: before and after",
        "",
        "| figure | before | change |",
        "|---|---|---|",
        *(f"| {figure} | {before} | {change} |" for figure, before, change in OPTIMISATIONS),
        "",
    ]
    if notes:
        parts += ["## Notes on the misses", "", *notes, ""]
    for section in sorted(sections, key=lambda s: NUMBERS[s.name]):
        parts += [
            f"## {NUMBERS[section.name]}. {section.title}",
            "",
            METHODS[section.name],
            "",
            section.details,
            "",
            f"_Section wall time: {section.seconds:.0f} s; load average (1/5/15 min) when it ended: "
            f"{section.load}._",
            "",
        ]
    parts += [
        "## How to reproduce",
        "",
        "```sh",
        "make bench                              # all; rewrites this file and docs/img/benchmarks.png",
        ".venv/bin/python bench/run.py --quick   # fewer repetitions; report in a temporary folder",
        ".venv/bin/python bench/run.py --only workload --only variable_task  # some sections",
        "```",
        "",
        "Sections: `workload`, `cache_hit`, `variable_task`, `cold_fetch`, `imports`, `memory`, `metrics`, "
        "`multihost`. "
        "`--out DIR` writes the report elsewhere; `--keep` keeps the scratch folder (Airflow home, "
        "task logs, raw results). The run starts the emulator, one `airflow standalone` and one Celery "
        "deployment (PostgreSQL and Redis from Debian's packages, which `make bench` installs if "
        "missing) and stops every process it started, also on Ctrl-C.",
        "",
    ]
    path.write_text("\n".join(parts))


def _bars(axes: Axes, labels: list[str], values: list[float], colors: list[str], fmt: str) -> None:
    positions = list(range(len(values)))
    bars = axes.bar(positions, values, color=colors)
    axes.set_xticks(positions, labels, fontsize=7)
    for bar, value in zip(bars, values, strict=True):
        axes.annotate(
            fmt.format(value),
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=7,
        )


OURS, OTHER, FLOOR = "#2b7bba", "#b0b0b0", "#7fbf7f"


def write_chart(path: Path, sections: list[Section]) -> None:
    """Draw one panel per section (those measured) into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_name = {section.name: section for section in sections}
    figure, grid = plt.subplots(3, 3, figsize=(15, 12.5))
    panels = [axes for row in grid for axes in row]
    drawers = [
        ("workload", _draw_workload),
        ("cache_hit", _draw_cache_hit),
        ("variable_task", _draw_variable_task),
        ("cold_fetch", _draw_cold_fetch),
        ("imports", _draw_imports),
        ("imports", _draw_parse),
        ("memory", _draw_memory),
        ("multihost", _draw_multihost),
    ]
    for axes, (name, draw) in zip(panels, drawers, strict=False):
        if name in by_name:
            draw(axes, by_name[name].data)
        else:
            axes.set_title(f"{name}: not run", fontsize=9)
            axes.axis("off")
    _draw_summary(panels[-1], sections)
    figure.suptitle("airflow-tokens benchmarks (bench/run.py)", fontsize=12)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _draw_workload(axes: Axes, data: dict[str, Any]) -> None:
    requests: dict[str, list[int]] = data["requests"]
    keys = [
        ("airflow_tokens", "airflow-\ntokens", OURS),
        ("requests_post", "requests\n.post", OTHER),
        ("requests_auth", "requests-\nauth", OTHER),
        ("cold_lock", "cold\nlock", OURS),
        ("cold_no_lock", "cold\nno lock", OTHER),
        ("cold_lock_barrier", "together\nlock", OURS),
        ("cold_no_lock_barrier", "together\nno lock", OTHER),
    ]
    values: list[float] = []
    for key, _, _ in keys:
        counts = requests.get(key, [])
        if key.startswith("cold"):
            values.append(max(counts) if counts else 0)
        else:
            values.append(sum(counts))
    _bars(axes, [label for _, label, _ in keys], values, [color for _, _, color in keys], "{:.0f}")
    axes.set_title(
        f"1. Token requests, 16 parallel tasks\n({data['runs']} runs in all; cold starts: worst run)",
        fontsize=9,
    )
    axes.set_ylabel("token requests")


def _draw_cache_hit(axes: Axes, data: dict[str, Any]) -> None:
    stats = data["stats"]
    keys = [
        ("airflow_tokens_new_hook", "airflow-tokens\nnew hook", OURS),
        ("airflow_tokens_reused_hook", "airflow-tokens\nreused hook", OURS),
        ("requests_auth_cached", "requests-auth\ncached", OTHER),
        ("authlib_is_expired", "authlib\nis_expired", FLOOR),
    ]
    values = [stats[key]["median"] / 1000 for key, _, _ in keys]
    _bars(axes, [label for _, label, _ in keys], values, [color for _, _, color in keys], "{:.2f}")
    axes.axhline(stats["requests_auth_cached"]["median"] / 1000, color="red", ls="--", lw=1, label="target")
    axes.set_title("2. Cache hit, per call (median)", fontsize=9)
    axes.set_ylabel("µs")
    axes.legend(fontsize=7)


def _draw_variable_task(axes: Axes, data: dict[str, Any]) -> None:
    stats = data["stats"]
    keys = [
        ("bare_variable_get", "Variable.get\n(bare)", OTHER),
        ("variable_load_path", "get_token\nVariable load", OURS),
        ("first_get_token_in_process", "first get_token\nin process", OURS),
        ("connection_and_variable_get", "get_connection\n+ Variable.get", OTHER),
    ]
    values = [stats[key]["median"] / 1e6 for key, _, _ in keys]
    _bars(axes, [label for _, label, _ in keys], values, [color for _, _, color in keys], "{:.2f}")
    axes.axhline(1.2 * values[0], color="red", ls="--", lw=1, label="target 1.2x Variable.get")
    repeated = stats["repeated_reused_hook"]["median"] / 1000
    axes.set_title(f"3. Variable cache inside a task (repeated: {repeated:.1f} µs)", fontsize=9)
    axes.set_ylabel("ms")
    axes.legend(fontsize=7)


def _draw_cold_fetch(axes: Axes, data: dict[str, Any]) -> None:
    stats = data["stats"]
    keys = [
        ("bare_reused_session", "bare post\nreused session", OTHER),
        ("hook_fetch_access_token", "hook fetch\nreused session", OURS),
        ("bare_new_session", "bare post\nnew session", OTHER),
        ("hook_new_hook_new_session", "new hook\nnew session", OURS),
    ]
    values = [stats[key]["median"] / 1e6 for key, _, _ in keys]
    _bars(axes, [label for _, label, _ in keys], values, [color for _, _, color in keys], "{:.2f}")
    axes.axhline(1.1 * values[0], color="red", ls="--", lw=1, label="target 1.1x bare (reused)")
    axes.set_title("4. Cold fetch against the emulator (median)", fontsize=9)
    axes.set_ylabel("ms")
    axes.legend(fontsize=7)


def _draw_imports(axes: Axes, data: dict[str, Any]) -> None:
    from statistics import median

    values = [
        median(data["hook_ms"]),
        median(data["hook_after_names_ms"]),
        median(data["hook_no_bytecode_ms"]),
    ]
    labels = ["after\nairflow.sdk", "after BaseHook,\nVariable, dag, task", "no bytecode\n(.pyc)"]
    _bars(axes, labels, values, [OURS, OURS, OTHER], "{:.0f}")
    axes.axhline(50, color="red", ls="--", lw=1, label="target 50 ms")
    axes.set_title("5. import airflow_tokens.hooks.sirv (median)", fontsize=9)
    axes.set_ylabel("ms")
    axes.legend(fontsize=7)


def _draw_parse(axes: Axes, data: dict[str, Any]) -> None:
    cold: dict[str, float] = data["parse_cold_ms"]
    warm: dict[str, float] = data["parse_warm_ms"]
    names = sorted(cold, key=lambda name: (name != "empty_dag.py", name))
    positions = list(range(len(names)))
    width = 0.4
    axes.bar([p - width / 2 for p in positions], [cold[n] for n in names], width, color=OURS, label="first")
    axes.bar([p + width / 2 for p in positions], [warm[n] for n in names], width, color=FLOOR, label="warm")
    axes.set_xticks(positions, [n.removesuffix(".py").replace("_", "\n") for n in names], fontsize=7)
    axes.axhline(1.1 * cold["empty_dag.py"], color="red", ls="--", lw=1, label="1.1x empty (first)")
    axes.set_title("5. DagBag parse per file (median)", fontsize=9)
    axes.set_ylabel("ms")
    axes.legend(fontsize=7)


def _draw_memory(axes: Axes, data: dict[str, Any]) -> None:
    from statistics import median

    values = [median(data["import_mib"]), median(data["fetch_mib"]), median(data["added_mib"])]
    _bars(axes, ["import hook", "fetch one\ntoken", "total"], values, [OURS, OURS, OURS], "{:.1f}")
    axes.axhline(5_000_000 / 2**20, color="red", ls="--", lw=1, label="target 5 MB")
    axes.set_title("6. RSS added after import airflow.sdk", fontsize=9)
    axes.set_ylabel("MiB")
    axes.legend(fontsize=7)


def _draw_multihost(axes: Axes, data: dict[str, Any]) -> None:
    lease, off = data["variants"]["sirv_lease"], data["variants"]["sirv_nolease"]
    _bars(
        axes, ["with the lease", "lease off"], [lease["requests"], off["requests"]], [OURS, OTHER], "{:.0f}"
    )
    axes.axhline(lease["target"], color="red", ls="--", lw=1, label="target (one per lifetime + 1)")
    axes.set_title(
        f"7. Token requests, {data['tasks']} tasks on 3 hosts, {data['seconds']} s\n"
        f"others while one fetched: p50 {lease['during_p50'] * 1e3:.1f} ms, "
        f"p99 {lease['during_p99'] * 1e3:.1f} ms",
        fontsize=9,
    )
    axes.set_ylabel("token requests")
    axes.legend(fontsize=7)


def _draw_summary(axes: Axes, sections: list[Section]) -> None:
    axes.axis("off")
    lines = []
    for section in sorted(sections, key=lambda s: NUMBERS[s.name]):
        for figure in section.figures:
            if figure.status in ("PASS", "MISS"):
                lines.append((f"{NUMBERS[section.name]}. {figure.key}: {figure.status}", figure.status))
    axes.set_title("targets", fontsize=9)
    for number, (text, status) in enumerate(lines):
        axes.text(
            0.0,
            1 - number * 0.075,
            text,
            fontsize=8,
            color="darkgreen" if status == "PASS" else "darkred",
            transform=axes.transAxes,
            va="top",
        )

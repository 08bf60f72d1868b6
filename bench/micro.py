"""Sections measured in fresh subprocesses: cache-hit cost, cold fetch, import and parse cost, memory.

The emulator runs in this process (a uvicorn thread); each measurement runs in a new interpreter
(``bench/workers.py``) with a private Airflow home and the connection ``sirv_default`` pointing at
the emulator. Bytecode is written to and read from a private folder (``PYTHONPYCACHEPREFIX``), as a
pip-installed deployment has it; the import section also reports the cost without bytecode.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import re
import subprocess
from typing import TYPE_CHECKING, Any

from bench.common import (
    PYTHON,
    REPO,
    Figure,
    Section,
    Stopwatch,
    airflow_env,
    fmt_ns,
    load_average,
    median,
    run_worker,
    stats_table,
    summary,
)

if TYPE_CHECKING:
    from pathlib import Path

EMPTY_DAG = '''"""An empty DAG: the parse-time baseline."""

from __future__ import annotations

import logging

from airflow.sdk import dag, task

log = logging.getLogger(__name__)


@dag(schedule=None, catchup=False)
def empty_dag() -> None:
    """No tasks."""


empty_dag()
'''
IMPORT_CODE = (
    "import airflow.sdk, sys; sys.stderr.write('BENCH-MARK\\n'); sys.stderr.flush(); "
    "import airflow_tokens.hooks.sirv"
)
_IMPORTTIME = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)")


class Micro:
    """
    Run the subprocess sections against one emulator.

    :param work: the scratch folder (Airflow homes, bytecode, DAG files).
    :param emulator_url: the emulator's base URL.
    :param quick: fewer repetitions.
    """

    def __init__(self, work: Path, emulator_url: str, quick: bool) -> None:
        from airflow_tokens.testing import EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET

        self.work = work
        self.url = emulator_url
        self.quick = quick
        self.pycache = work / "pycache"
        connection = {
            "conn_type": "sirv",
            "host": emulator_url,
            "login": EMULATOR_CLIENT_ID,
            "password": EMULATOR_CLIENT_SECRET,
        }
        self.extra = {
            "AIRFLOW_CONN_SIRV_DEFAULT": json.dumps(connection),
            "PYTHONDONTWRITEBYTECODE": "",
            "PYTHONPYCACHEPREFIX": str(self.pycache),
        }
        self._homes = 0

    def env(self, *, bytecode: bool = True) -> dict[str, str]:
        """Return the environment of a fresh worker (a new Airflow home each time)."""
        self._homes += 1
        extra = dict(self.extra)
        if not bytecode:
            extra.update({"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": str(self.work / "no-pyc")})
        return airflow_env(self.work / "homes" / f"home-{self._homes}", extra)

    def worker(self, name: str, args: dict[str, Any], *, bytecode: bool = True) -> Any:
        """Run one worker in a fresh interpreter."""
        return run_worker(name, args, self.env(bytecode=bytecode))

    def warm_bytecode(self) -> None:
        """Compile everything the workers import into the private bytecode folder (untimed)."""
        self.worker("cache_hit", {"emulator": self.url, "rounds": 1, "batch": 10})
        self.worker("dag_parse", {"file": str(REPO / "dags_example" / "sirv_example.py")})

    # ------------------------------------------------------------------------------ 2. cache hit

    def cache_hit(self) -> Section:
        """Cost of a cached token, side by side with requests-auth and authlib, in one process."""
        rounds, batch = (60, 1000) if self.quick else (400, 1000)
        result = self.worker("cache_hit", {"emulator": self.url, "rounds": rounds, "batch": batch})
        samples: dict[str, list[float]] = result["samples"]
        stats = {name: summary(values) for name, values in samples.items()}
        ceiling = stats["requests_auth_cached"]["median"]
        section = Section("cache_hit", "Cache-hit cost of get_token() from the memory cache")
        for key, label in (
            ("airflow_tokens_new_hook", '`SirvTokenHook(cache="memory").get_token()`, new hook per call'),
            ("airflow_tokens_reused_hook", "`hook.get_token()`, reused hook, memory cache"),
        ):
            item = stats[key]
            section.figures.append(
                Figure(
                    key,
                    label,
                    f"{fmt_ns(item['median'])} (p90 {fmt_ns(item['p90'])})",
                    f"≤ requests-auth ({fmt_ns(ceiling)})",
                    Figure.check(item["median"] <= ceiling),
                    f"{item['median'] / ceiling:.2f}x requests-auth's cached path",
                )
            )
        item = stats["requests_auth_cached"]
        floor = stats["authlib_is_expired"]
        section.figures.append(
            Figure(
                "requests_auth_cached",
                "requests-auth `auth(prepared_request)`, token cached (lookup + expiry + header)",
                f"{fmt_ns(item['median'])} (p90 {fmt_ns(item['p90'])})",
                note=f"authlib `OAuth2Token.is_expired()` (floor): {fmt_ns(floor['median'])}",
            )
        )
        rows = [
            f"{rounds} rounds of {batch} calls per variant, in a rotating order, in one fresh process; "
            "each sample is one batch's time divided by its calls.",
            "",
        ]
        labels = {
            "airflow_tokens_new_hook": 'airflow-tokens: `SirvTokenHook(cache="memory").get_token()`',
            "airflow_tokens_reused_hook": "airflow-tokens: `hook.get_token()` (reused hook)",
            "requests_auth_cached": "requests-auth: `OAuth2ClientCredentials(...)(prepared_request)`",
            "authlib_is_expired": "authlib: `OAuth2Token.is_expired()`",
            "empty_loop": "empty loop iteration (measurement floor)",
            "new_hook_only": 'breakdown: `SirvTokenHook(cache="memory")` alone (constructor)',
            "new_hook_profile": "breakdown: constructor + `_profile` (the resolved connection, shared)",
            "token_is_fresh": "breakdown: `AccessToken.is_fresh(60)` alone",
        }
        rows += stats_table("call", stats, labels)
        during = result["token_requests_during_timing"]
        rows += [
            "",
            f"Token requests during the timed calls: Sirv {during['sirv']}, OAuth2 {during['oauth2']} "
            "(every timed call was a cache hit).",
        ]
        section.details = "\n".join(rows)
        section.data = {"stats": stats, "rounds": rounds, "batch": batch}
        return section

    # ------------------------------------------------------------------------------ 4. cold fetch

    def cold_fetch(self) -> Section:
        """One token request: the hook's fetch path vs a bare requests POST, same session rules."""
        rounds = 80 if self.quick else 400
        result = self.worker("cold_fetch", {"rounds": rounds, "forced": 15 if self.quick else 30})
        samples: dict[str, list[float]] = result["samples"]
        stats = {name: summary(values) for name, values in samples.items()}
        bare = stats["bare_reused_session"]["median"]
        hook = stats["hook_fetch_access_token"]["median"]
        bare_new = stats["bare_new_session"]["median"]
        hook_new = stats["hook_new_hook_new_session"]["median"]
        forced = stats["hook_get_token_force_refresh"]["median"]
        section = Section("cold_fetch", "Cold fetch against the emulator: hook vs bare requests.post")
        section.figures = [
            Figure(
                "cold_fetch_ratio",
                "hook fetch path (`hook._fetch()`, masking apart) / bare `session.post()` "
                "(both reuse one session)",
                f"{hook / bare:.2f}x ({fmt_ns(hook)} vs {fmt_ns(bare)})",
                "≤ 1.10x",
                Figure.check(hook / bare <= 1.10),
                f"median of {rounds} interleaved requests each, emulator on loopback",
            ),
            Figure(
                "cold_fetch_new_session_ratio",
                "new hook + new session per call / bare `post()` on a new session",
                f"{hook_new / bare_new:.2f}x ({fmt_ns(hook_new)} vs {fmt_ns(bare_new)})",
                note="new TCP connection each time on both sides",
            ),
            Figure(
                "cold_fetch_forced",
                '`get_token(force_refresh=True)`, `cache="none"` (masks every new token)',
                f"{fmt_ns(forced)} ({forced / bare:.2f}x bare)",
                note="see the masker note below",
            ),
        ]
        rows = []
        labels = {
            "bare_reused_session": "bare `session.post(url, json=body)` + `.json()`, one reused session",
            "hook_fetch_access_token": (
                '`SirvTokenHook(cache="none")._fetch()` (the fetch path without masking), reused hook'
            ),
            "hook_get_token_force_refresh": "`hook.get_token(force_refresh=True)`, reused hook",
            "bare_new_session": "bare `post` on a new `requests.Session()` each time",
            "hook_new_hook_new_session": "new hook with a new session each time, `_fetch()`",
        }
        rows += stats_table("request", stats, labels)
        parts = result["breakdown"]
        forced_samples = samples["hook_get_token_force_refresh"]
        rows += [
            "",
            f"Where the hook's extra time goes (medians over {rounds} rounds, same process):",
            "",
            f"- one `_fetch()` {fmt_ns(parts['fetch_with_log'])}; with the logger "
            f"`airflow_tokens.fetch` disabled {fmt_ns(parts['fetch_without_log'])}: the DEBUG line "
            f'"Fetched a ... token" through Airflow\'s logging costs about '
            f"{fmt_ns(parts['fetch_with_log'] - parts['fetch_without_log'])};",
            f"- the tenacity retry loop for one successful attempt (`retrying.copy()`, iterate, "
            f"`with attempt`): {fmt_ns(parts['retry_loop'])};",
            f"- reading the response (`read_token_fields`, 450-character token): "
            f"{fmt_ns(parts['read_token_fields'])};",
            f"- `get_token(force_refresh=True)` masks every new token: the {len(forced_samples)} forced "
            f"calls took {fmt_ns(forced_samples[0])} first and {fmt_ns(forced_samples[-1])} last; Airflow's "
            f"`mask_secret` of one new value took {fmt_ns(result['mask_secret_at_start'])} before them and "
            f"{fmt_ns(result['mask_secret_at_end'])} after ({result['tokens_masked']} tokens masked by the "
            "hook in this process): the masker rebuilds its pattern of every value it holds on each new "
            "one.",
        ]
        section.details = "\n".join(rows)
        section.data = {
            "stats": stats,
            "rounds": rounds,
            "breakdown": parts,
            "mask_secret_at_start": result["mask_secret_at_start"],
            "mask_secret_at_end": result["mask_secret_at_end"],
        }
        return section

    # ------------------------------------------------------------------------------ 5. imports

    def _importtime(self, bytecode: bool = True) -> dict[str, Any]:
        """Return ``-X importtime`` of the hook import after ``import airflow.sdk``: total and top modules."""
        completed = subprocess.run(
            [PYTHON, "-X", "importtime", "-c", IMPORT_CODE],
            cwd=REPO,
            env=self.env(bytecode=bytecode),
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        lines = completed.stderr.split("BENCH-MARK", 1)[1].splitlines()
        modules = []
        for line in lines:
            match = _IMPORTTIME.match(line)
            if match:
                modules.append(
                    (match.group(4), int(match.group(1)), int(match.group(2)), len(match.group(3)))
                )
        total = next(
            (cumulative for name, _, cumulative, _ in modules if name == "airflow_tokens.hooks.sirv"), 0
        )
        # The largest third-party imports: by cumulative time, a module only if no listed one contains it.
        packages: list[tuple[str, int]] = []
        for name, _, cumulative, _ in sorted(modules, key=lambda item: item[2], reverse=True):
            if name.startswith("airflow_tokens") or any(name.startswith(f"{top}.") for top, _ in packages):
                continue
            packages.append((name, cumulative))
        own = sum(us for name, us, _, _ in modules if name.startswith("airflow_tokens"))
        return {
            "total_us": total,
            "airflow_tokens_self_us": own,
            "top_self": [[name, us] for name, us, _, _ in sorted(modules, key=lambda item: -item[1])[:8]],
            "top_cumulative": [[name, us] for name, us in packages[:6]],
        }

    def imports(self) -> Section:
        """Import cost of the hook after airflow.sdk, and parse cost of the example DAGs."""
        runs = 5 if self.quick else 15
        results = [self.worker("import_cost", {"mode": "sdk"}) for _ in range(runs)]
        sdk = [result["hook_seconds"] for result in results]
        cpu = [result["hook_cpu"] for result in results]
        names = [self.worker("import_cost", {"mode": "names"})["hook_seconds"] for _ in range(runs)]
        no_pyc = [
            self.worker("import_cost", {"mode": "sdk"}, bytecode=False)["hook_seconds"]
            for _ in range(max(3, runs // 3))
        ]
        evidence = self._importtime()
        evidence_no_pyc = self._importtime(bytecode=False)
        section = Section("imports", "Import cost and DAG parse cost (fresh subprocesses)")
        sdk_ms = median(sdk) * 1000
        section.figures.append(
            Figure(
                "import_hook",
                "`import airflow_tokens.hooks.sirv` after `import airflow.sdk` (wall time)",
                f"{sdk_ms:.1f} ms",
                "≤ 50 ms",
                Figure.check(sdk_ms <= 50),
                f"median of {runs} fresh processes, with bytecode (fastest {min(sdk) * 1000:.1f} ms, "
                f"CPU time {median(cpu) * 1000:.1f} ms); after also importing "
                f"`BaseHook, Variable, dag, task`: {median(names) * 1000:.1f} ms",
            )
        )
        no_pyc_ms = median(no_pyc) * 1000
        section.figures.append(
            Figure(
                "import_hook_no_bytecode",
                "the same import without bytecode (`PYTHONDONTWRITEBYTECODE=1`, no `.pyc` anywhere)",
                f"{no_pyc_ms:.1f} ms",
                "≤ 50 ms",
                Figure.check(no_pyc_ms <= 50),
                f"median of {len(no_pyc)}; every module compiled from source on each start",
            )
        )
        parse = self._parse(3 if self.quick else 5)
        section.figures.extend(parse.figures)
        rows = [
            "`-X importtime` of `import airflow_tokens.hooks.sirv` after `import airflow.sdk`, with "
            "bytecode (one run; importtime's own overhead included): "
            f"**{evidence['total_us'] / 1000:.1f} ms** in all.",
            "",
            "| imported by the hook (largest, cumulative) | cumulative |",
            "|---|---|",
            *(f"| `{name}` | {us / 1000:.1f} ms |" for name, us in evidence["top_cumulative"]),
            f"| the `airflow_tokens` modules themselves (self time) | "
            f"{evidence['airflow_tokens_self_us'] / 1000:.1f} ms |",
            "",
            f"Without bytecode: **{evidence_no_pyc['total_us'] / 1000:.1f} ms** in all; "
            "the largest self times:",
            "",
            "| module | self |",
            "|---|---|",
            *(f"| `{name}` | {us / 1000:.1f} ms |" for name, us in evidence_no_pyc["top_self"]),
            "",
            parse.details,
        ]
        section.details = "\n".join(rows)
        section.data = {
            "hook_ms": [s * 1000 for s in sdk],
            "hook_cpu_ms": [s * 1000 for s in cpu],
            "hook_after_names_ms": [s * 1000 for s in names],
            "hook_no_bytecode_ms": [s * 1000 for s in no_pyc],
            "importtime": evidence,
            "importtime_no_bytecode": evidence_no_pyc,
            **parse.data,
        }
        return section

    def _parse(self, runs: int) -> Section:
        """DagBag parse of each example DAG file vs an empty DAG, in fresh processes."""
        folder = self.work / "parse"
        (folder / "warm").mkdir(parents=True, exist_ok=True)
        empty = folder / "empty_dag.py"
        empty.write_text(EMPTY_DAG)
        examples = sorted((REPO / "dags_example").glob("*.py"))
        controls: dict[Path, Path] = {}  # example -> the same file without airflow-tokens
        for path in examples:
            control = folder / f"{path.stem}_without_airflow_tokens.py"
            control.write_text(_without_airflow_tokens(path.read_text()))
            controls[path] = control
        first_files = [empty, *examples]
        warm_files = {}
        for path in [*first_files, *controls.values()]:
            copy = folder / "warm" / f"warm_{path.name}"  # another module name: parsed anew
            copy.write_text(path.read_text())
            warm_files[path.name] = copy
        first: dict[str, list[float]] = {path.name: [] for path in first_files}
        warm: dict[str, list[float]] = {name: [] for name in warm_files}
        names = list(warm_files)
        for number in range(runs):
            for index, path in enumerate(first_files):  # interleaved, so drift hits every file alike
                shift = (number + index) % len(names)
                order = names[shift:] + names[:shift]
                result = self.worker(
                    "dag_parse", {"file": str(path), "warm": [str(warm_files[name]) for name in order]}
                )
                first[path.name].append(result["seconds"])
                for name in order:
                    warm[name].append(result["warm"][str(warm_files[name])])
        base_first, base_warm = median(first[empty.name]), median(warm[empty.name])
        ratios = {path.name: median(first[path.name]) / base_first for path in examples}
        worst = max(ratios, key=lambda name: ratios[name])
        section = Section("parse", "")
        section.figures.append(
            Figure(
                "parse_ratio",
                "DagBag parse of each example DAG / an empty DAG (worst file), first parse in a process",
                f"{ratios[worst]:.2f}x ({worst}: {median(first[worst]) * 1000:.1f} ms vs "
                f"{base_first * 1000:.1f} ms)",
                "≤ 1.1x",
                Figure.check(ratios[worst] <= 1.1),
                f"median of {runs} fresh processes per file",
            )
        )
        warm_ratios = {path.name: median(warm[path.name]) / base_warm for path in examples}
        warm_worst = max(warm_ratios, key=lambda name: warm_ratios[name])
        section.figures.append(
            Figure(
                "parse_ratio_warm",
                "the same, parsed after another DAG file in the process (worst file)",
                f"{warm_ratios[warm_worst]:.2f}x ({warm_worst}: {median(warm[warm_worst]) * 1000:.2f} ms vs "
                f"{base_warm * 1000:.2f} ms)",
                "≤ 1.1x",
                Figure.check(warm_ratios[warm_worst] <= 1.1),
                f"as the DAG processor parses file after file; median of {len(warm[empty.name])}",
            )
        )
        control_ratios = {
            path.name: median(warm[path.name]) / median(warm[control.name])
            for path, control in controls.items()
        }
        control_worst = max(control_ratios, key=lambda name: control_ratios[name])
        section.figures.append(
            Figure(
                "parse_ratio_control",
                "each example DAG / the same file with every airflow-tokens line removed (worst file)",
                f"{control_ratios[control_worst]:.2f}x ({control_worst})",
                note="what the package itself adds to a parse",
            )
        )
        rows = [
            "| DAG file | first parse in a process | / empty | parsed after another file | / empty | "
            "/ same file without airflow-tokens |",
            "|---|---|---|---|---|---|",
        ]
        for path in [empty, *examples]:
            name = path.name
            control_cell = f"{control_ratios[name]:.2f}x" if name in control_ratios else ""
            first_ms, warm_ms = median(first[name]) * 1000, median(warm[name]) * 1000
            rows.append(
                f"| `{name}` | {first_ms:.1f} ms | {first_ms / 1000 / base_first:.2f}x | "
                f"{warm_ms:.2f} ms | {warm_ms / 1000 / base_warm:.2f}x | {control_cell} |"
            )
        rows += [
            "",
            "The file without airflow-tokens drops every line naming the package; an operator the DAG "
            "builds while it is parsed (`RunJobOperator`) becomes a plain `BaseOperator` with the same "
            "keyword arguments.",
        ]
        section.details = "\n".join(rows)
        section.data = {
            "parse_cold_ms": {name: median(values) * 1000 for name, values in first.items()},
            "parse_warm_ms": {path.name: median(warm[path.name]) * 1000 for path in first_files},
            "parse_control_ratio": control_ratios,
        }
        return section

    # ------------------------------------------------------------------------------ 6. memory

    def memory(self) -> Section:
        """RSS added by importing the hook and fetching one token, after ``import airflow.sdk``."""
        runs = 3 if self.quick else 5
        results = [self.worker("memory", {}) for _ in range(runs)]
        steps_runs = [self.worker("memory_steps", {})["steps"] for _ in range(3)]
        added = [(r["rss_after_fetch"] - r["rss_after_sdk"]) / 2**20 for r in results]
        imported = [(r["rss_after_import"] - r["rss_after_sdk"]) / 2**20 for r in results]
        fetched = [(r["rss_after_fetch"] - r["rss_after_import"]) / 2**20 for r in results]
        value = median(added)
        section = Section("memory", "Memory: RSS added by the package and one token fetch")
        section.figures.append(
            Figure(
                "memory_added",
                "RSS after importing the hook and fetching one token - RSS after `import airflow.sdk`",
                f"{value:.1f} MiB ({value * 2**20 / 1e6:.1f} MB)",
                "≤ 5 MB",
                Figure.check(value * 2**20 <= 5_000_000),
                f"median of {runs} fresh processes (psutil RSS): import {median(imported):.1f} MiB, "
                f"fetch {median(fetched):.1f} MiB",
            )
        )
        sample = results[0]
        names = [name for name, _ in steps_runs[0]]
        steps = {
            name: median([run[index][1] / 2**20 for run in steps_runs]) for index, name in enumerate(names)
        }
        rows = [
            f"RSS after `import airflow.sdk`: {sample['rss_after_sdk'] / 2**20:.1f} MiB; modules the hook "
            f"import and the fetch added: {sample['new_modules']} (top-level packages: "
            f"{', '.join(f'`{name}`' for name in sample['new_top_packages'])}).",
            "",
            "The same, step by step (median of 3 fresh processes; each step's RSS growth):",
            "",
            "| step, after `import airflow.sdk` | RSS added |",
            "|---|---|",
            *(f"| {name} | {value:.2f} MiB |" for name, value in steps.items()),
        ]
        section.details = "\n".join(rows)
        section.data = {"added_mib": added, "import_mib": imported, "fetch_mib": fetched, "steps_mib": steps}
        return section

    # ------------------------------------------------------------------------------ 7. metrics

    def metrics(self) -> Section:
        """Cost of the metrics on a cache hit, off (Airflow's default) and on (StatsD)."""
        rounds, batch = (60, 1000) if self.quick else (300, 1000)
        result = self.worker("metrics_cost", {"rounds": rounds, "batch": batch})
        stats = {name: summary(values) for name, values in result["samples"].items()}
        off = stats["hit_metrics_off"]["median"]
        on = stats["hit_metrics_on"]["median"]
        floor = stats["empty_loop"]["median"]
        call = max(stats["guard_off"]["median"] - floor, 0.0)
        share = call / off
        section = Section("metrics", "Metrics: the cost of a cache hit with metrics off and on")
        section.figures = [
            Figure(
                "metrics_off_hit",
                "`hook.get_token()` cache hit with metrics off (Airflow's default): what its metric costs",
                f"{fmt_ns(call)} of {fmt_ns(off)} ({share:.1%})",
                "≤ 5% of a cache hit",
                Figure.check(share <= 0.05),
                "median; `if metrics.on:` alone, less the empty loop",
            ),
            Figure(
                "metrics_on_hit",
                "`hook.get_token()` cache hit with StatsD metrics on (one UDP packet per hit)",
                f"{fmt_ns(on)} ({on / off:.1f}x off)",
                note=f"sending one metric: {fmt_ns(stats['metric_call_on']['median'] - floor)}",
            ),
        ]
        labels = {
            "hit_metrics_off": "`hook.get_token()`, memory cache, metrics off",
            "hit_metrics_on": "`hook.get_token()`, memory cache, StatsD metrics on",
            "guard_off": "`if metrics.on: metrics.cache_hit(...)` alone (a memory hit's metric), metrics off",
            "metric_call_on": "`metrics.cache_hit(...)` alone, StatsD metrics on",
            "empty_loop": "empty loop iteration (measurement floor)",
        }
        rows = [
            f"{rounds} rounds of {batch} calls per variant, in a rotating order, in one fresh process; "
            "each sample is one batch's time divided by its calls.",
            "",
            *stats_table("call", stats, labels),
        ]
        section.details = "\n".join(rows)
        section.data = {"stats": stats, "rounds": rounds, "batch": batch}
        return section


def run_micro(work: Path, *, quick: bool, names: list[str]) -> list[Section]:
    """Start the emulator and run the selected subprocess sections."""
    from airflow_tokens.testing import EmulatorServer

    sections = []
    with EmulatorServer() as emulator:
        micro = Micro(work, emulator.url, quick)
        micro.warm_bytecode()
        for name in names:
            watch = Stopwatch()
            print(f"[bench] {name} ...", flush=True)
            section = getattr(micro, name)()
            section.seconds = watch.seconds
            section.load = load_average()
            sections.append(section)
            for figure in section.figures:
                print(f"  {figure.label}: {figure.value} [{figure.status}]", flush=True)
    return sections


def _without_airflow_tokens(source: str) -> str:
    """
    Return a DAG file's source with every line naming airflow-tokens dropped.

    The hooks are imported inside the tasks, so dropping their lines leaves the DAG whole. An operator
    imported at the top and built while the file is parsed (the deferrable example) becomes a plain
    ``BaseOperator`` that takes the same keyword arguments, so the control declares the same DAG.
    """
    lines = [line for line in source.splitlines() if "airflow_tokens" not in line]
    used = {node.id for node in ast.walk(ast.parse("\n".join(lines))) if isinstance(node, ast.Name)}
    out = []
    for line in source.splitlines():
        if "airflow_tokens" not in line:
            out.append(line)
            continue
        node = ast.parse(line).body[0] if not line[:1].isspace() else None
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                name = alias.asname or alias.name
                if name in used:
                    out += _stand_in(name, getattr(importlib.import_module(node.module or ""), alias.name))
    return "\n".join(out) + "\n"


def _stand_in(name: str, operator: type) -> list[str]:
    """Return the lines of a plain operator class called ``name`` taking ``operator``'s keyword arguments."""
    keywords = [
        parameter.name
        for parameter in inspect.signature(operator.__init__).parameters.values()  # type: ignore[misc]
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    return [
        "from airflow.sdk import BaseOperator as _PlainOperator",
        f"class {name}(_PlainOperator):",
        f"    def __init__(self, *, {', '.join(f'{k}=None' for k in keywords)}, **kwargs):",
        "        super().__init__(**kwargs)",
    ]

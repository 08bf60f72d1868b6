"""Run the airflow-tokens benchmarks and write docs/benchmarks.md and docs/img/benchmarks.png.

``make bench`` runs this file. Sections (``--only NAME``, repeatable):

- ``workload``: token requests of 16 parallel tasks in a real deployment, against requests.post and
  requests-auth, and the cold-start race with and without the cross-process lock;
- ``cache_hit``: the cost of a cached token, against requests-auth and authlib;
- ``variable_task``: the Variable cache inside a real task, against a bare ``Variable.get``;
- ``cold_fetch``: one token request through the hook, against a bare ``requests`` POST;
- ``imports``: import cost of the hook and parse cost of the example DAGs;
- ``memory``: RSS added by importing the hook and fetching one token;
- ``metrics``: the cost of a cache hit with Airflow's metrics off and on.
- ``multihost``: token requests per token lifetime on three Celery worker hosts, with and without the
  lease, and ``get_token()`` in the tasks that do not fetch while another one does.

``--quick`` runs every section with fewer repetitions. A full run writes the report to ``docs/``;
``--quick`` and ``--only`` write it to a temporary folder unless ``--out`` says otherwise. Every
process started here (the emulator, ``airflow standalone``, the workers) is stopped before exit.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REPO, Section, fmt_ns, load_average, machine_facts
from bench.micro import run_micro
from bench.multihost import run_multihost
from bench.report import write_chart, write_markdown
from bench.standalone import run_deployment

SECTIONS = (
    "workload",
    "cache_hit",
    "variable_task",
    "cold_fetch",
    "imports",
    "memory",
    "metrics",
    "multihost",
)
MICRO = ("cache_hit", "cold_fetch", "imports", "memory", "metrics")
DEPLOYMENT = ("workload", "variable_task")

if TYPE_CHECKING:
    from types import FrameType


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through every `finally`: the emulator and Airflow stop


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer repetitions; every section still runs")
    parser.add_argument("--only", action="append", choices=SECTIONS, metavar="NAME", help="run this section")
    parser.add_argument("--out", type=Path, help="folder of the report (default: docs/ for a full run)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    return parser.parse_args(argv)


def miss_notes(sections: list[Section]) -> list[str]:
    """Explain each MISS with the evidence the sections measured."""
    by_name = {section.name: section for section in sections}
    misses = {figure.key for section in sections for figure in section.figures if figure.status == "MISS"}
    notes: list[str] = []
    if "cold_fetch_ratio" in misses:
        data = by_name["cold_fetch"].data
        parts = data["breakdown"]
        bare = data["stats"]["bare_reused_session"]["median"]
        log_cost = parts["fetch_with_log"] - parts["fetch_without_log"]
        notes.append(
            f"- **Cold fetch ({data['stats']['hook_fetch_access_token']['median'] / bare:.2f}x a bare "
            "POST).** "
            f"Against a loopback emulator answering in {fmt_ns(bare)}, the hook's fixed costs show: the "
            f"log call of every fetch through Airflow's logging (~{fmt_ns(log_cost)}), "
            f"tenacity's retry loop for one successful attempt (~{fmt_ns(parts['retry_loop'])}: "
            f"`Retrying.copy()` plus the attempt iterator and context manager) and reading the response "
            f"(~{fmt_ns(parts['read_token_fields'])}, of which the per-character whitespace check "
            f"`any(ch.isspace() for ch in token)` in `airflow_tokens/response.py` takes "
            f"~{fmt_ns(parts['whitespace_generator'])} where a precompiled regex takes "
            f"~{fmt_ns(parts['whitespace_regex'])}). Proposed fix "
            "(airflow_tokens/, not bench code): send the first attempt outside tenacity and enter the "
            "retry loop only after a retryable failure; check whitespace with one precompiled regex "
            '(`re.compile(r"\\s").search(token)`); log the fetch at DEBUG. Against a real vendor '
            "(50-300 ms per request) the same costs are under 0.3%."
        )
    if "import_hook" in misses or "import_hook_no_bytecode" in misses:
        data = by_name["imports"].data
        top = ", ".join(
            f"`{name}` {us / 1000:.0f} ms" for name, us in data["importtime_no_bytecode"]["top_self"][:4]
        )
        cumulative = ", ".join(
            f"`{name}` {us / 1000:.0f} ms" for name, us in data["importtime"]["top_cumulative"][:4]
        )
        notes.append(
            f"- **Import{' without bytecode' if 'import_hook' not in misses else ''}.** With `.pyc` files "
            f"the hook import takes {min(data['hook_ms']):.0f}-{max(data['hook_ms']):.0f} ms; without them "
            "every module is compiled from source on each process start. `-X importtime`, largest "
            f"self times without bytecode: {top}. With bytecode, largest cumulative: {cumulative}. "
            "Compiling is what costs: `requests` (with urllib3 and charset_normalizer) is the largest part "
            "and `filelock` 4.x is one ~2,000-line module (`filelock/_api.py`), and `airflow.sdk` imports "
            "neither. Proposed fix: install with bytecode (pip does by default; `uv pip install "
            "--compile-bytecode`), and do not set `PYTHONDONTWRITEBYTECODE` where tasks run. (Since "
            "1e0de43 the package imports `requests` and `filelock` only where a fetch or a lock needs them.)"
        )
    if "parse_ratio" in misses or "parse_ratio_warm" in misses:
        data = by_name["imports"].data
        control = max(data["parse_control_ratio"].values())
        notes.append(
            "- **DAG parse vs an empty DAG.** Not caused by airflow-tokens: the hook examples import "
            "nothing from the package at module scope (the hooks are imported inside the task functions), "
            "the deferrable example imports only `RunJobOperator` (its trigger and hooks are imported when "
            f"the task runs), and each file parses within {control:.2f}x of the same file without "
            "airflow-tokens (the operator replaced by a plain `BaseOperator` taking the same arguments). "
            "The difference to the empty DAG is the DAG's own shape: 4-5 `@task`s, or a mapped operator "
            "over 8 payloads with a DAG parameter (and, on the first parse in a process, the task "
            "machinery Airflow imports lazily on the first task). "
            "No fix in the package; the target would hold against a DAG of the same shape."
        )
    if "memory_added" in misses:
        steps: dict[str, float] = by_name["memory"].data["steps_mib"]
        listed = "; ".join(f"{name} {value:.2f} MiB" for name, value in steps.items())
        rest = sum(value for name, value in steps.items() if "import requests" not in name)
        notes.append(
            f"- **Memory.** Step by step after `import airflow.sdk`: {listed}. `requests` (with urllib3 "
            "and charset_normalizer), which the token request needs, is most of it; `airflow.sdk` does not "
            "load it (the task SDK talks httpx, already in memory in every task process). Airflow's own "
            "connection lookup is the next part, and any hook pays it. Proposed fix "
            "(airflow_tokens/fetch.py): send token requests with httpx, which the task SDK has already "
            "imported, keeping `requests` for "
            f"`get_conn()` (its public return type) and the `session=` option: about {rest:.1f} MiB would "
            "remain, Airflow's connection lookup included."
        )
    for key in ("airflow_tokens_new_hook", "airflow_tokens_reused_hook"):
        if key in misses:
            stats = by_name["cache_hit"].data["stats"]
            notes.append(
                f"- **Cache hit, {'new hook' if key.endswith('new_hook') else 'reused hook'} per call "
                f"({fmt_ns(stats[key]['median'])} vs requests-auth "
                f"{fmt_ns(stats['requests_auth_cached']['median'])}).** Breakdown from the same process: "
                f"the constructor alone {fmt_ns(stats['new_hook_only']['median'])} (Airflow's `BaseHook` "
                "and `LoggingMixin` init included), constructor + the shared resolved connection "
                f"{fmt_ns(stats['new_hook_profile']['median'])}, `AccessToken.is_fresh()` "
                f"{fmt_ns(stats['token_is_fresh']['median'])}. Proposed fixes (airflow_tokens/): keep "
                "`_profile` in a plain attribute instead of `functools.cached_property` (on Python 3.11 "
                "its first access on each new object takes an RLock; about 0.3 µs measured), and give "
                "the cache entry its refresh deadline as an epoch float computed once instead of "
                "datetime arithmetic (`refresh_at` -> `effective_margin` -> `lifetime`) on every hit."
            )
    if "variable_first_ratio" in misses:
        stats = by_name["variable_task"].data["stats"]
        notes.append(
            "- **First `get_token()` in a process vs a bare `Variable.get`.** It needs the connection as "
            "well as the Variable (the fingerprint of the credentials decides whether the cached token "
            "may be used), so it is at least `get_connection` + `Variable.get`: "
            f"{fmt_ns(stats['first_get_token_in_process']['median'])} vs "
            f"{fmt_ns(stats['connection_and_variable_get']['median'])} by hand "
            f"(`get_connection` alone {fmt_ns(stats['connection_only']['median'])}, the hook's whole "
            f"connection resolution {fmt_ns(stats['resolve_only']['median'])}). Each task process pays "
            "this once; later calls are memory hits. No fix proposed beyond the connection's own cost."
        )
    for key in ("variable_load_ratio", "variable_repeated"):
        if key in misses:
            notes.append(f"- **{key}.** See section 3.")
    for key in ("workload_airflow_tokens", "cold_lock", "cold_lock_barrier"):
        if key in misses:
            notes.append(f"- **{key}.** More than one token request: see the table of section 1.")
    for key in ("multihost_lease", "multihost_refresh_latency"):
        if key in misses:
            notes.append(
                f"- **{key}.** See the table of section 7: which hosts fetched, and how long the others took."
            )
    return notes


def main(argv: list[str] | None = None) -> int:
    """Run the selected sections and write the report."""
    args = _parse_args(argv)
    selected = [name for name in SECTIONS if not args.only or name in args.only]
    full = not args.quick and not args.only
    out: Path = args.out or (
        REPO / "docs" if full else Path(tempfile.mkdtemp(prefix="airflow-tokens-bench-report-"))
    )
    signal.signal(signal.SIGTERM, _on_sigterm)
    began = time.monotonic()
    facts = machine_facts()
    work = Path(tempfile.mkdtemp(prefix="airflow-tokens-bench-"))
    print(f"[bench] scratch folder {work}; sections: {', '.join(selected)}", flush=True)
    sections: list[Section] = []
    failed = True
    try:
        micro = [name for name in MICRO if name in selected]
        if micro:
            sections += run_micro(work / "micro", quick=args.quick, names=micro)
        if any(name in selected for name in DEPLOYMENT):
            print("[bench] starting airflow standalone ...", flush=True)
            sections += run_deployment(
                work / "deployment",
                quick=args.quick,
                workload="workload" in selected,
                variable_task="variable_task" in selected,
            )
        if "multihost" in selected:
            print("[bench] starting the Celery deployment ...", flush=True)
            sections += run_multihost(work / "multihost", quick=args.quick)
        failed = False
    finally:
        leftovers = _stop_leftovers()
        if args.keep or failed:
            print(f"[bench] kept {work}", flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)
    facts["load_at_end"] = load_average()
    wall = time.monotonic() - began
    command = "make bench" if full else "bench/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
    out.mkdir(parents=True, exist_ok=True)
    chart = out / "img" / "benchmarks.png"
    write_chart(chart, sections)
    write_markdown(
        out / "benchmarks.md", sections, facts, "img/benchmarks.png", wall, command, miss_notes(sections)
    )
    (Path(tempfile.gettempdir()) / "airflow-tokens-bench-last.json").write_text(
        json.dumps({"facts": facts, "sections": [asdict(section) for section in sections]}, default=str)
    )
    print(f"\n[bench] report: {out / 'benchmarks.md'}, chart: {chart}", flush=True)
    for section in sections:
        for figure in section.figures:
            print(f"  [{figure.status:>4}] {figure.label}: {figure.value} (target {figure.target or '-'})")
    print(f"[bench] wall time {wall / 60:.1f} min; leftover processes stopped: {leftovers}", flush=True)
    return 0


def _stop_leftovers() -> int:
    """Terminate any child process still running (none should be); return how many there were."""
    import psutil  # type: ignore[import-untyped, unused-ignore]  # an Airflow dependency

    children = psutil.Process().children(recursive=True)
    for child in children:
        try:
            child.terminate()
        except psutil.Error:
            continue
    _, alive = psutil.wait_procs(children, timeout=10)
    for child in alive:
        try:
            child.kill()
        except psutil.Error:
            continue
    return len(children)


if __name__ == "__main__":
    sys.exit(main())

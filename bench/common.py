"""Helpers shared by the benchmark sections: statistics, figures, machine facts, fresh subprocesses."""

from __future__ import annotations

import base64
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
#: The line a worker prints its JSON result on (the last such line of its stdout wins).
RESULT_PREFIX = "BENCH-RESULT "


def percentile(values: list[float], q: float) -> float:
    """Return the ``q``-th percentile (0..100) of ``values``, linearly interpolated."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: list[float]) -> float:
    """Return the median of ``values``."""
    return float(statistics.median(values))


def summary(values: list[float]) -> dict[str, float]:
    """Return the median, p10, p90, min and count of ``values``."""
    return {
        "median": median(values),
        "p10": percentile(values, 10),
        "p90": percentile(values, 90),
        "min": min(values),
        "n": float(len(values)),
    }


@dataclass
class Figure:
    """
    One benchmark figure with its target, as a row of the figures table.

    :param key: a short identifier (for the chart and JSON).
    :param label: what was measured.
    :param value: the figure shown.
    :param target: the target shown ("" when the figure has none).
    :param status: ``PASS``, ``MISS`` or ``info``.
    :param note: a short remark (method, caveat).
    """

    key: str
    label: str
    value: str
    target: str = ""
    status: str = "info"
    note: str = ""

    @staticmethod
    def check(ok: bool) -> str:
        """Return ``PASS`` or ``MISS``."""
        return "PASS" if ok else "MISS"


@dataclass
class Section:
    """What one benchmark section measured: figures, a detail text (Markdown) and raw data."""

    name: str
    title: str
    figures: list[Figure] = field(default_factory=list)
    details: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    #: The load averages when the section ended (how busy the shared machine was).
    load: str = ""


def fmt_ns(ns: float) -> str:
    """Format nanoseconds with a readable unit."""
    if ns < 1_000:
        return f"{ns:.0f} ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:.2f} µs"
    if ns < 1_000_000_000:
        return f"{ns / 1_000_000:.2f} ms"
    return f"{ns / 1_000_000_000:.2f} s"


def fernet_key() -> str:
    """Return a new Fernet key (32 random bytes, URL-safe base64)."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def airflow_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """
    Return an environment for a fresh Airflow process in a private home (nothing outside it).

    Variables of this process that configure Airflow are dropped; ``extra`` wins over the settings.
    """
    home.mkdir(parents=True, exist_ok=True)
    inherited = {name: value for name, value in os.environ.items() if not name.startswith("AIRFLOW")}
    settings = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__FERNET_KEY": fernet_key(),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    }
    return {**inherited, **settings, **(extra or {})}


def run_worker(name: str, args: dict[str, Any], env: dict[str, str], timeout: float = 600) -> Any:
    """Run ``bench/workers.py NAME ARGS`` in a fresh interpreter and return the JSON it printed."""
    completed = subprocess.run(
        [PYTHON, "-m", "bench.workers", name, json.dumps(args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(
            f"worker {name} exited with {completed.returncode}:\n{completed.stdout[-2000:]}\n"
            f"{completed.stderr[-4000:]}"
        )
    return json.loads(lines[-1].removeprefix(RESULT_PREFIX))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return float("nan")


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def machine_facts() -> dict[str, str]:
    """Return the machine, the versions measured and the date."""
    load = " / ".join(f"{value:.2f}" for value in os.getloadavg())
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count()),
        "ram": f"{_ram_gib():.1f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "airflow": _version("apache-airflow"),
        "task_sdk": _version("apache-airflow-task-sdk"),
        "airflow_tokens": f"{_version('airflow-tokens')} (commit {_git_commit()})",
        "requests": _version("requests"),
        "requests_auth": _version("requests-auth"),
        "authlib": _version("authlib"),
        "load_at_start": load,
    }


def load_average() -> str:
    """Return the 1, 5 and 15 minute load averages."""
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


class Stopwatch:
    """Measure a section's wall time."""

    def __init__(self) -> None:
        self.began = time.monotonic()

    @property
    def seconds(self) -> float:
        """Return the seconds since creation."""
        return time.monotonic() - self.began


def stats_table(heading: str, stats: dict[str, dict[str, float]], labels: dict[str, str]) -> list[str]:
    """Return Markdown rows: one per labelled variant, with its median, p10 and p90."""
    rows = [f"| {heading} | median | p10 | p90 |", "|---|---|---|---|"]
    for key, label in labels.items():
        item = stats[key]
        rows.append(f"| {label} | {fmt_ns(item['median'])} | {fmt_ns(item['p10'])} | {fmt_ns(item['p90'])} |")
    return rows

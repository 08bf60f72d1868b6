"""The 10-minute chaos soak (``make soak``): write docs/soak.md.

A CeleryExecutor deployment on PostgreSQL and Redis with three worker hosts (``tests/harness``), the
emulator failing at random (10 % 503, 2 % 429 with ``Retry-After``), one 20 s outage, one lease holder
killed, 12 tasks calling ``get_token()`` on 8 s tokens for ``--seconds`` (600). The figures: calls that
failed while a valid token existed (goal 0), expired tokens handed out (must be 0), token requests per
usable lifetime (goal <= 1.3) and the p99 of every ``get_token()`` call (goal under 5 ms).
``--before REV`` also runs the same soak with the package as it was at REV (a git worktree put first
on the deployment's ``PYTHONPATH``), for the before/after table. Everything started here is stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from airflow_tokens.testing import EmulatorServer  # noqa: E402
from tests.harness.celery_deployment import CeleryAirflow  # noqa: E402
from tests.multihost.scenarios import CELERY_CONNECTIONS, DAG_FILE, Deployment, sirv_connections  # noqa: E402
from tests.multihost.soak import run_soak  # noqa: E402

GOALS = {
    "failed_while_a_valid_token_existed": ("0", lambda v: v == 0),
    "expired_tokens_served": ("0 (must)", lambda v: v == 0),
    "requests_per_usable_lifetime": ("<= 1.3", lambda v: v <= 1.3),
    "get_token_p99_ms": ("< 5", lambda v: v < 5),
}


def soak_once(seconds: float, package_root: Path | None) -> dict[str, Any]:
    """Start a deployment (with the package at ``package_root`` first on its path), soak it, stop it."""
    home = Path(tempfile.mkdtemp(prefix="airflow-tokens-soak-"))
    with EmulatorServer() as emulator:
        clients, env = sirv_connections(emulator, {"sirv_chaos": CELERY_CONNECTIONS["sirv_chaos"]})
        if package_root is not None:
            env["PYTHONPATH"] = f"{package_root}{os.pathsep}{REPO}"
        airflow = CeleryAirflow(home, [DAG_FILE], env=env, workers=3, concurrency=8)
        deployment = Deployment(airflow, emulator, clients, "soak")
        try:
            airflow.start(timeout=300)
            airflow.wait_for_dag("multihost_chaos")
            outage_at = min(seconds / 2, 240)
            soak = run_soak(
                deployment, seconds, outage_at=outage_at, outage_seconds=20, kill_at=outage_at + 60
            )
            return soak.figures()
        finally:
            deployment.stop()


def write(path: Path, after: dict[str, Any], before: dict[str, Any] | None, seconds: float) -> None:
    lines = [
        "# Chaos soak: a refresh never hurts",
        "",
        f"Made by `make soak` (`scripts/soak.py`, {seconds:.0f} s): a CeleryExecutor deployment on",
        "PostgreSQL and Redis, three worker hosts, 12 tasks calling `get_token()` every 50 ms on 8 s Sirv",
        "tokens, the emulator answering 10 % of token requests 503 and 2 % 429 (`Retry-After: 1`), every",
        "request 503 during one 20 s outage, and the task process holding the refresh lease killed once.",
        "",
        "| figure | goal | before (0.2.0) | after |" if before else "| figure | goal | after |",
        "|---|---|---|---|" if before else "|---|---|---|",
    ]
    for key, value in after.items():
        goal = GOALS.get(key, ("", None))[0]
        cells = [f"`{key}`", goal]
        if before:
            cells.append(json.dumps(before.get(key)))
        cells.append(json.dumps(value))
        lines.append("| " + " | ".join(cells) + " |")
    verdicts = [f"- `{key}`: {'PASS' if check(after[key]) else 'MISS'}" for key, (_, check) in GOALS.items()]
    lines += ["", *verdicts, ""]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--before", help="also soak the package as it was at this git revision")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "soak.md")
    args = parser.parse_args(argv)
    before = None
    if args.before:
        scratch = Path(tempfile.mkdtemp(prefix="airflow-tokens-before-"))
        worktree, package = scratch / "tree", scratch / "package"
        subprocess.run(["git", "worktree", "add", "-q", str(worktree), args.before], cwd=REPO, check=True)
        # Only the old package goes first on the path: the DAG file and its helpers stay this tree's.
        package.mkdir()
        (package / "airflow_tokens").symlink_to(worktree / "airflow_tokens")
        try:
            began = time.monotonic()
            before = soak_once(args.seconds, package)
            print(f"[soak] before ({args.before}): {before} in {time.monotonic() - began:.0f} s", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=REPO, check=False)
    began = time.monotonic()
    after = soak_once(args.seconds, None)
    print(f"[soak] after: {after} in {time.monotonic() - began:.0f} s", flush=True)
    write(args.out, after, before, args.seconds)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Every example of the README and of ``docs/*.md`` runs against the package's emulator, so none can rot.

Every fenced block in a language that is an example (``python``, ``py``, ``sh``, ``bash``, ``shell``,
``console``) must have an HTML comment on the line right before it that says how to run it; blocks in
other languages (``text``, ``json``, ``ini``...) are not examples. A block without a comment, with a
comment of an unknown kind, or a comment that no block follows fails
:func:`test_every_example_block_says_how_it_runs`. The generated pages (benchmarks, hostile endpoints,
reliability, soak) are left out. The kinds::

    <!-- example: python -->       a script, run to its end
    <!-- example: dag -->          a DAG file: each DAG it defines runs with dag.test(), which must succeed;
                                   file=~/airflow/dags/NAME.py also saves it there for the page's shell blocks
    <!-- example: pytest -->       a test module, run with python -m pytest, which must pass
    <!-- example: shell -->        commands; the page's shell blocks run in order in one bash -euo pipefail
                                   session (a reader's terminal); expect='TEXT' requires TEXT in its output
    <!-- example: server -->       one command that serves in the foreground (the emulator): started on a
                                   free port, it must print its listening line, answer there and stop on
                                   SIGTERM
    <!-- example: connection -->   export AIRFLOW_CONN_... lines with placeholder credentials: run by bash,
                                   then every connection they define must pass the package's checks
                                   (no request is sent)
    <!-- example: install -->      pip install lines: run by tests/test_distribution.py against the built
                                   wheel in a new virtual environment (here: each line is checked)
    <!-- example: make -->         make TARGET lines for contributors: each target must exist (make -n)
    <!-- example: continues -->    the rest of the block before it: joined to it and run as one

How they run: one emulator (an ``EmulatorServer`` of this module) serves them all; every example gets one
connection per connection type under its default id pointing at it with the emulator's credentials,
and ``sirv_api`` (an ``http`` connection on it); ``http://127.0.0.1:8765`` in a block becomes the
emulator's URL; the job API ends a job at its first status read. Python and DAG blocks run in one
subprocess, each with fresh globals, its own environment and an empty in-process token cache, with an
Airflow home of their own; the shell sessions run in a fresh home (``HOME``, so ``~/airflow`` is the
Airflow home) whose metadata database is a copy of the session's; pages run in order, the README first.
Both start in the background when the module starts, while the other kinds are tested.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from airflow_tokens.testing import (
    CUSTOM_ENDPOINT_EXTRA,
    CUSTOM_ENDPOINT_PATH,
    EMULATOR_CLIENT_ID,
    EMULATOR_CLIENT_SECRET,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from airflow_tokens.testing import EmulatorServer

REPO = Path(__file__).resolve().parent.parent
#: Pages the benchmark and test scripts write: their blocks are results, not examples.
GENERATED = frozenset({"benchmarks.md", "hostile.md", "reliability.md", "soak.md"})
#: Languages whose blocks are examples.
EXAMPLE_LANGUAGES = frozenset({"python", "py", "sh", "bash", "shell", "console"})
PYTHON_LANGUAGES = frozenset({"python", "py"})
#: Each kind, and whether its block is Python (else shell).
KINDS: dict[str, bool] = {
    "python": True,
    "dag": True,
    "pytest": True,
    "shell": False,
    "server": False,
    "connection": False,
    "install": False,
    "make": False,
}
CONTINUES = "continues"
#: The emulator's address as the examples write it (its default port).
EXAMPLE_URL = "http://127.0.0.1:8765"
#: What the harness prints around each block it runs in a shared process, to tell their output apart.
MARK = "@@@docs-example"
#: Seconds a batch (the Python process, the shell sessions) may take.
BATCH_TIMEOUT = 240

MARKER = re.compile(r"^\s*<!--\s*example:(?P<spec>.*?)-->\s*$")
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)[^`]*$")


# ----------------------------------------------------------------------------------- collecting


@dataclass
class Example:
    """One example: a block (and the blocks that continue it) of a page, and how to run it."""

    page: str
    line: int
    kind: str
    language: str
    code: str
    options: dict[str, list[str]] = field(default_factory=dict)
    #: The ``## `` heading the example is under (empty before the first).
    section: str = ""

    @property
    def id(self) -> str:
        """Return ``page:line``, the line of the block's opening fence."""
        return f"{self.page}:{self.line}"

    @property
    def expected(self) -> list[str]:
        """Return the texts its output must contain (``expect=``)."""
        return self.options.get("expect", [])

    @property
    def file(self) -> str | None:
        """Return where a DAG block is saved for the shell blocks of its page (``file=``), if anywhere."""
        files = self.options.get("file")
        return files[-1] if files else None


def pages() -> list[Path]:
    """Return the README and every page of ``docs/`` but the generated ones, the README first."""
    docs = sorted(path for path in (REPO / "docs").glob("*.md") if path.name not in GENERATED)
    return [REPO / "README.md", *docs]


def relative(page: Path) -> str:
    """Return a page's path in the repository."""
    return page.relative_to(REPO).as_posix()


def parse_page(page: Path) -> tuple[list[Example], list[str]]:
    """Return a page's examples in order, and every problem with its blocks and comments."""
    name = relative(page)
    lines = page.read_text().splitlines()
    examples: list[Example] = []
    problems: list[str] = []
    section = ""
    pending: tuple[int, str] | None = None  # the comment on the previous line: (line, spec)
    index = 0
    while index < len(lines):
        line = lines[index]
        opening = FENCE.match(line)
        if opening is None:
            if pending is not None:
                problems.append(f"{name}:{pending[0]}: no block follows the example comment")
                pending = None
            if marker := MARKER.match(line):
                pending = (index + 1, marker["spec"].strip())
            elif line.startswith("## "):
                section = line[3:].strip()
            index += 1
            continue
        fence, language = opening["fence"], opening["info"].lower()
        start = index + 1
        body: list[str] = []
        index += 1
        while index < len(lines) and not re.match(
            rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$", lines[index]
        ):
            body.append(lines[index][len(opening["indent"]) :])
            index += 1
        index += 1  # the closing fence
        code = "\n".join(body) + "\n"
        where = f"{name}:{start}"
        if pending is None:
            if language in EXAMPLE_LANGUAGES or not language:
                problems.append(
                    f"{where}: a ```{language} block needs a comment saying how it runs, "
                    "like <!-- example: shell --> (or a language that is no example, like ```text)"
                )
            continue
        spec, pending = pending[1], None
        if language not in EXAMPLE_LANGUAGES:
            problems.append(f"{where}: an example comment before a ```{language} block, which is no example")
            continue
        try:
            kind, *settings = shlex.split(spec)
        except ValueError as exc:
            problems.append(f"{where}: the example comment {spec!r} does not parse: {exc}")
            continue
        options: dict[str, list[str]] = {}
        for setting in settings:
            key, equals, value = setting.partition("=")
            if not equals or key not in ("expect", "file"):
                problems.append(f"{where}: unknown example setting {setting!r} (expect=TEXT, file=PATH)")
            options.setdefault(key, []).append(value)
        if kind == CONTINUES:
            if not examples or examples[-1].language not in _same_family(language):
                problems.append(f"{where}: 'continues' follows no example of the same language")
                continue
            examples[-1].code += "\n" + code
            continue
        if kind not in KINDS:
            problems.append(
                f"{where}: unknown example kind {kind!r}; known: {', '.join([*KINDS, CONTINUES])}"
            )
            continue
        if KINDS[kind] != (language in PYTHON_LANGUAGES):
            problems.append(f"{where}: a {kind!r} example cannot be a ```{language} block")
            continue
        if "file" in options and kind != "dag":
            problems.append(f"{where}: file= is for dag examples")
        if "expect" in options and kind != "shell":
            problems.append(f"{where}: expect= is for shell examples")
        examples.append(Example(name, start, kind, language, code, options, section))
    if pending is not None:
        problems.append(f"{name}:{pending[0]}: no block follows the example comment")
    return examples, problems


def _same_family(language: str) -> frozenset[str]:
    return PYTHON_LANGUAGES if language in PYTHON_LANGUAGES else EXAMPLE_LANGUAGES - PYTHON_LANGUAGES


def all_examples(kinds: Iterable[str] | None = None) -> list[Example]:
    """Return every page's examples (of ``kinds``, if given), in page order."""
    wanted = set(KINDS if kinds is None else kinds)
    return [example for page in pages() for example in parse_page(page)[0] if example.kind in wanted]


def quick_start() -> list[Example]:
    """Return the examples of the README's quick start, in order."""
    return [example for example in parse_page(REPO / "README.md")[0] if example.section == "Quick start"]


def params(kind: str) -> list[Any]:
    """Return the pytest parameters of every example of ``kind``, named by where the block is."""
    return [pytest.param(example, id=example.id) for example in all_examples([kind])]


# ----------------------------------------------------------------------------------- the harness


def connections(url: str) -> dict[str, str]:
    """Return the ``AIRFLOW_CONN_*`` variables of every example: each type's default, and ``sirv_api``."""
    credentials = {"login": EMULATOR_CLIENT_ID, "password": EMULATOR_CLIENT_SECRET}
    defined: dict[str, dict[str, Any]] = {
        conn_type: {"conn_type": conn_type, "host": url, **credentials}
        for conn_type in ("sirv", "learning360", "manis", "podero")
    }
    defined["oauth2_client_credentials"] = {
        "conn_type": "oauth2_client_credentials",
        "host": f"{url}/oauth2/token",
        **credentials,
        "extra": {"api_base_url": url},
    }
    defined["token_endpoint"] = {
        "conn_type": "token_endpoint",
        "host": url + CUSTOM_ENDPOINT_PATH,
        **credentials,
        "extra": {**CUSTOM_ENDPOINT_EXTRA, "api_base_url": url},
    }
    variables = {f"AIRFLOW_CONN_{name.upper()}_DEFAULT": json.dumps(conn) for name, conn in defined.items()}
    variables["AIRFLOW_CONN_SIRV_API"] = json.dumps({"conn_type": "http", "host": url})
    return variables


def example_env(home: Path, url: str | None, **more: str) -> dict[str, str]:
    """
    Return the environment of an example: this one's, with ``HOME`` (and so ``~/airflow``) at ``home``.

    The session's Airflow home, connections and pytest's own variables are left out; the emulator's
    connections are added when ``url`` is given.
    """
    drop = ("AIRFLOW_CONN_", "AIRFLOW_VAR_", "PYTEST_", "_AIRFLOW")
    env = {key: value for key, value in os.environ.items() if not key.startswith(drop)}
    for name in ("AIRFLOW_HOME", "AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"):
        env.pop(name, None)
    env["HOME"] = str(home)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    if url is not None:
        env.update(connections(url))
    env.update(more)
    return env


def substitute(code: str, url: str) -> str:
    """Return ``code`` with the examples' emulator address replaced by ``url``."""
    return code.replace(EXAMPLE_URL, url)


def saved_path(file: str, home: Path) -> Path:
    """Return where ``file=`` saves a block: ``~`` is ``home``."""
    return home / file.removeprefix("~/") if file.startswith("~/") else home / file


def _text(output: str | bytes | None) -> str:
    """Return what a process printed as text (a timed-out process's output comes as bytes)."""
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""


def split_marked(output: str) -> dict[str, tuple[str, str | None]]:
    """Return, by example id, its output and what its end marker said (None: it did not end)."""
    found: dict[str, tuple[str, str | None]] = {}
    pattern = re.compile(rf"^{MARK} (\S+) (START|END)(?: (.*))?$", re.MULTILINE)
    current: str | None = None
    position = 0
    for match in pattern.finditer(output):
        text = output[position : match.start()]
        if current is not None:
            found[current] = (found[current][0] + text, found[current][1])
        example_id, what = match[1], match[2]
        if what == "START":
            current = example_id
            found[current] = ("", None)
        else:
            found[example_id] = (found.get(example_id, ("", None))[0], match[3] or "")
            current = None
        position = match.end()
    if current is not None:
        found[current] = (found[current][0] + output[position:], None)
    return found


@dataclass
class Outcome:
    """What running one example gave: whether it succeeded, why not, and its output."""

    ok: bool
    output: str
    problem: str = ""

    def check(self, example: Example) -> None:
        """Fail the test with the example's output unless it succeeded and printed what it should."""
        missing = [text for text in example.expected if text not in self.output]
        if self.ok and not missing:
            return
        problem = self.problem or f"its output lacks {missing}"
        pytest.fail(f"{example.id} ({example.kind}): {problem}\n--- output ---\n{self.output[-12000:]}")


def run_shell_session(
    examples: list[Example], *, env: dict[str, str], cwd: Path, url: str, timeout: float = BATCH_TIMEOUT
) -> dict[str, Outcome]:
    """Run a page's shell examples in order in one ``bash -euo pipefail`` session; return each outcome."""
    cwd.mkdir(parents=True, exist_ok=True)
    parts = ["exec 2>&1"]
    for example in examples:
        parts += [
            f"printf '\\n%s\\n' '{MARK} {example.id} START'",
            substitute(example.code, url).rstrip("\n"),
            f"printf '\\n%s\\n' '{MARK} {example.id} END'",
        ]
    script = cwd / f"session-{os.getpid()}-{time.monotonic_ns()}.sh"
    script.write_text("\n".join(parts) + "\n")
    try:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", str(script)],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        output, code = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as exc:
        output, code = _text(exc.stdout) + _text(exc.stderr), None
    finally:
        script.unlink(missing_ok=True)
    parts_out = split_marked(output)
    outcomes = {}
    for example in examples:
        text, end = parts_out.get(example.id, ("", None))
        if example.id not in parts_out:
            outcomes[example.id] = Outcome(False, output, "not run: an earlier block of the page failed")
        elif end is None:
            why = "timed out" if code is None else f"the session exited {code} in this block"
            outcomes[example.id] = Outcome(False, text, why)
        else:
            outcomes[example.id] = Outcome(True, text)
    return outcomes


@dataclass
class Server:
    """A server example running in the background."""

    process: subprocess.Popen[str]
    url: str
    lines: list[str]
    reader: threading.Thread

    def stop(self) -> int | None:
        """Stop it with SIGTERM; return its exit code (None if it had to be killed)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(15)
            return None
        finally:
            self.reader.join(10)  # every line it printed is in ``lines``


def server_command(code: str) -> str:
    """Return the one command of a server block, listening on a free port instead of the one written."""
    commands = [line for line in (raw.split(" #", 1)[0].strip() for raw in code.splitlines()) if line]
    if len(commands) != 1:
        raise ValueError(f"a server block holds one command, not {len(commands)}")
    (command,) = commands
    if re.search(r"--port[ =]\d+", command):
        return re.sub(r"--port[ =]\d+", "--port 0", command)
    return f"{command} --port 0"


def start_server(example: Example, *, env: dict[str, str], cwd: Path, timeout: float = 60) -> Server:
    """Start a server example on a free port; return it once it printed the URL it listens on."""
    command = server_command(example.code)
    process = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", f"exec {command}"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    found: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if not found and (match := re.search(r"listening on (http://\S+)", line)):
                found.append(match[1])

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while not found and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if not found:
        process.kill()
        process.wait(15)
        raise AssertionError(f"{example.id}: `{command}` printed no listening line:\n{''.join(lines)}")
    return Server(process, found[0], lines, reader)


def copy_database(source: Path, target: Path) -> None:
    """Copy a SQLite database consistently (with SQLite's backup)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(source) as old, sqlite3.connect(target) as new:
        old.backup(new)


# ----------------------------------------------------------------------------------- the batches


def run_python_jobs(jobs_file: str) -> int:
    """In the examples' Python process: run each job of ``jobs_file``, printing marks around it."""
    import runpy
    import traceback

    jobs = json.loads(Path(jobs_file).read_text())
    from airflow_tokens.memory import clear_memory_cache, forget_connections

    for job in jobs:
        print(f"\n{MARK} {job['id']} START", flush=True)
        saved = dict(os.environ)
        problem = ""
        try:
            os.chdir(job["cwd"])
            if job["kind"] == "python":
                runpy.run_path(job["path"], run_name="__main__")
            else:
                problem = _run_dag_file(job["path"])
        except SystemExit as exc:
            if exc.code not in (0, None):
                problem = f"exited {exc.code}"
        except BaseException:
            problem = traceback.format_exc()
        finally:
            os.environ.clear()
            os.environ.update(saved)
            clear_memory_cache()
            forget_connections()
        sys.stdout.flush()
        sys.stderr.flush()
        print(f"\n{MARK} {job['id']} END {json.dumps(problem)}", flush=True)
    return 0


def _run_dag_file(path: str) -> str:
    """Run every DAG of the file with ``dag.test()``; return what went wrong, or ``""``."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=path)
    if bag.import_errors:
        return f"the DAG file does not import: {bag.import_errors}"
    if not bag.dags:
        return "the DAG file defines no DAG"
    problems = []
    for dag_id, dag in sorted(bag.dags.items()):
        run = dag.test()
        if run.state != "success":
            states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
            problems.append(f"DAG {dag_id}: run {run.state}, tasks {states}")
    return "; ".join(problems)


@dataclass
class Batches:
    """The examples run in the background: the Python process and the shell sessions."""

    python: Future[dict[str, Outcome]]
    shell: Future[dict[str, Outcome]]


def python_batch(examples: list[Example], root: Path, url: str, database: Path) -> dict[str, Outcome]:
    """Run every Python and DAG example in one process with an Airflow home of its own."""
    home = root / "python-home"
    airflow_home = home / "airflow"
    dags = airflow_home / "dags"
    dags.mkdir(parents=True)
    copy_database(database, airflow_home / "airflow.db")
    jobs = []
    for number, example in enumerate(examples):
        cwd = root / "work" / Path(example.page).stem
        cwd.mkdir(parents=True, exist_ok=True)
        if example.kind == "dag":
            name = (
                Path(example.file).name
                if example.file
                else f"docs_{Path(example.page).stem}_{example.line}.py"
            )
            path = dags / name
        else:
            path = root / "scripts" / f"example_{number}_{Path(example.page).stem}_{example.line}.py"
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(substitute(example.code, url))
        jobs.append({"id": example.id, "kind": example.kind, "path": str(path), "cwd": str(cwd)})
    jobs_file = root / "jobs.json"
    jobs_file.write_text(json.dumps(jobs))
    env = example_env(
        home,
        url,
        AIRFLOW_HOME=str(airflow_home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{airflow_home / 'airflow.db'}",
    )
    code = f"from tests.test_docs_examples import run_python_jobs; run_python_jobs({str(jobs_file)!r})"
    try:
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=BATCH_TIMEOUT,
        )
        output = done.stdout + done.stderr
        finished = True
    except subprocess.TimeoutExpired as exc:
        output = _text(exc.stdout) + _text(exc.stderr)
        finished = False
    parts = split_marked(output)
    outcomes = {}
    for example in examples:
        if example.id not in parts:
            outcomes[example.id] = Outcome(False, output, "not run (the examples' process stopped before it)")
            continue
        text, end = parts[example.id]
        if end is None:
            why = "timed out" if not finished else "the examples' process died in it"
            outcomes[example.id] = Outcome(False, text, why)
        else:
            problem = json.loads(end)
            outcomes[example.id] = Outcome(not problem, text, problem)
    return outcomes


def shell_batch(examples: list[Example], root: Path, url: str, database: Path) -> dict[str, Outcome]:
    """Run each page's shell examples in one session per page, pages in order, in one home."""
    home = root / "shell-home"
    copy_database(database, home / "airflow" / "airflow.db")
    env = example_env(home, url)
    outcomes: dict[str, Outcome] = {}
    for page in pages():
        name = relative(page)
        page_examples, _ = parse_page(page)
        for example in page_examples:
            if example.kind == "dag" and example.file:
                target = saved_path(example.file, home)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(substitute(example.code, url))
        session = [example for example in examples if example.page == name]
        if session:
            outcomes.update(run_shell_session(session, env=env, cwd=root / "work" / page.stem, url=url))
    return outcomes


# ----------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    """Serve every example from one emulator, whose jobs end at their first status read."""
    from airflow_tokens.testing import EmulatorServer

    with EmulatorServer() as server:
        server.client.configure_jobs(polls=1)
        yield server


@pytest.fixture(scope="module")
def batches(
    airflow_db: Path, emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Batches]:
    """Start the Python examples and the shell sessions in the background."""
    database = airflow_db / "airflow.db"
    root = tmp_path_factory.mktemp("docs-examples")
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="docs-examples") as pool:
        yield Batches(
            python=pool.submit(
                python_batch, all_examples(["python", "dag"]), root / "python", emulator.url, database
            ),
            shell=pool.submit(shell_batch, all_examples(["shell"]), root / "shell", emulator.url, database),
        )


@pytest.fixture(scope="module", autouse=True)
def _start_batches(request: pytest.FixtureRequest) -> None:
    """Start the batches with the module (if a test needs them), so the other tests run meanwhile."""
    if any("batches" in getattr(item, "fixturenames", ()) for item in request.session.items):
        request.getfixturevalue("batches")


# ----------------------------------------------------------------------------------- the tests


def test_every_example_block_says_how_it_runs() -> None:
    problems = [problem for page in pages() for problem in parse_page(page)[1]]
    assert not problems, "\n".join(problems)
    assert all_examples(), "no example found"


def test_the_readme_starts_with_the_quick_start_and_links_every_page() -> None:
    readme = (REPO / "README.md").read_text()
    headings = re.findall(r"^## (.+)$", readme, flags=re.MULTILINE)
    assert headings[0] == "Quick start"
    kinds = [example.kind for example in quick_start()]
    assert kinds[0] == "install", kinds  # the first thing a user types
    for page in sorted((REPO / "docs").glob("*.md")):
        assert f"(docs/{page.name}" in readme, f"the README does not link docs/{page.name}"


def _slug(heading: str) -> str:
    """Return GitHub's anchor of a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.MULTILINE | re.DOTALL)
    return {_slug(heading) for heading in re.findall(r"^#{1,6} (.+)$", text, flags=re.MULTILINE)}


@pytest.mark.parametrize("page", pages(), ids=relative)
def test_every_link_of_a_page_reaches_a_file_and_heading(page: Path) -> None:
    text = re.sub(r"^ {0,3}```.*?^ {0,3}```", "", page.read_text(), flags=re.MULTILINE | re.DOTALL)
    text = re.sub(r"`[^`\n]*`", "", text)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"{target}: no heading #{anchor} in {file.relative_to(REPO)}")
    assert not broken, broken


@pytest.mark.parametrize("example", params("pytest"))
def test_a_pytest_example_passes(example: Example, tmp_path: Path) -> None:
    test_file = tmp_path / f"test_{Path(example.page).stem}_{example.line}.py"
    test_file.write_text(example.code)
    env = example_env(tmp_path / "home", None, AIRFLOW_HOME=str(tmp_path / "airflow"))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", tmp_path, test_file],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = done.stdout + done.stderr
    Outcome(done.returncode == 0, output, f"pytest exited {done.returncode}").check(example)
    assert re.search(r"\b\d+ passed\b", output), output


@pytest.mark.parametrize("example", params("server"))
def test_a_server_example_serves_and_stops(example: Example, tmp_path: Path) -> None:
    server = start_server(example, env=example_env(tmp_path, None), cwd=tmp_path)
    try:
        health = requests.get(f"{server.url}/_emulator/health", timeout=10)
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
    finally:
        code = server.stop()
    output = "".join(server.lines)
    assert code == 0, f"{example.id}: exited {code} on SIGTERM:\n{output}"
    if "--quiet" not in example.code:  # what the pages say it prints
        for text in (
            EMULATOR_CLIENT_ID,
            EMULATOR_CLIENT_SECRET,
            "export AIRFLOW_CONN_SIRV_DEFAULT=",
            "/v2/account",
        ):
            assert text in output, f"{example.id}: {text!r} is not in what it printed:\n{output}"


@pytest.mark.parametrize("example", params("connection"))
def test_a_connection_example_passes_every_check(
    example: Example, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_tokens.hooks import get_token_hook
    from airflow_tokens.memory import forget_connections

    env = example_env(tmp_path, None)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", f"{example.code}\nprintf '%s\\0' '{MARK}'\nenv -0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    exported = done.stdout.split(f"{MARK}\0", 1)[1].split("\0")
    defined = {
        name: value
        for name, _, value in (item.partition("=") for item in exported)
        if name.startswith("AIRFLOW_CONN_") and env.get(name) != value
    }
    assert defined, f"{example.id} defines no AIRFLOW_CONN_* variable"
    for name, value in defined.items():
        monkeypatch.setenv(name, value)
        forget_connections()
        hook = get_token_hook(name.removeprefix("AIRFLOW_CONN_").lower())
        hook.strict_extras = True  # as airflow-tokens check: an unknown extra is an error
        hook.token_request  # noqa: B018 - every check made before a request


@pytest.mark.parametrize("example", params("make"))
def test_a_make_example_names_existing_targets(example: Example) -> None:
    targets = []
    for line in example.code.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            assert words[0] == "make", f"{example.id}: {line!r} is no make TARGET line"
            assert len(words) > 1, f"{example.id}: {line!r} names no target"
            targets += words[1:]
    done = subprocess.run(
        ["make", "-n", *targets], cwd=REPO, capture_output=True, text=True, timeout=60, env=os.environ.copy()
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("example", params("install"))
def test_an_install_example_installs_the_package(example: Example) -> None:
    from tests import test_distribution

    lines = [
        words for words in (shlex.split(line, comments=True) for line in example.code.splitlines()) if words
    ]
    assert lines, f"{example.id} installs nothing"
    for words in lines:
        assert words[:2] == ["pip", "install"], f"{example.id}: {shlex.join(words)} is no pip install line"
        assert any(test_distribution.is_the_package(word) for word in words[2:]), words
    # tests/test_distribution.py runs these lines against the built wheel: the quick start's in full.
    assert example in [*test_distribution.quick_start_installs(), *test_distribution.other_installs()]


@pytest.mark.airflow_db
@pytest.mark.parametrize("example", params("python") + params("dag"))
def test_a_python_example_runs(example: Example, batches: Batches) -> None:
    batches.python.result(timeout=BATCH_TIMEOUT + 60)[example.id].check(example)


@pytest.mark.airflow_db
@pytest.mark.parametrize("example", params("shell"))
def test_a_shell_example_runs(example: Example, batches: Batches) -> None:
    batches.shell.result(timeout=BATCH_TIMEOUT + 60)[example.id].check(example)

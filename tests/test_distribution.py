"""The built distributions: what the sdist holds, what the wheel declares, and the wheel installed on its own.

The sdist and the wheel are built from this checkout with ``python -m build``, which builds the wheel
from the unpacked sdist: a file the sdist leaves out is missing from the wheel too. The wheel is then
installed with its declared dependencies (and no others) into a new virtual environment, and used from
a folder outside the checkout in isolated mode (``python -I``), so nothing can come from the checkout or
from this environment: a module, a data file or a dependency that the wheel lacks fails here.

The ``pip install`` lines of the README and ``docs/`` (their ``<!-- example: install -->`` blocks, see
``tests/test_docs_examples.py``) run here against the wheel: the quick start's in a new virtual environment,
followed by the rest of the quick start as written (its emulator, its connection, its DAG); the others are
resolved with ``uv pip install --dry-run``.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import shlex
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from email.message import Message
from email.parser import Parser
from pathlib import Path

import pytest

from airflow_tokens import __version__
from airflow_tokens.get_provider_info import get_provider_info
from tests.test_docs_examples import (
    Example,
    all_examples,
    quick_start,
    run_shell_session,
    saved_path,
    start_server,
)

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "airflow_tokens"
#: What the sdist may hold at its top level: the package, its metadata and tool settings, the documents.
SDIST_TOP_LEVEL = {PACKAGE, "PKG-INFO", "pyproject.toml", "setup.cfg", "README.md", "CHANGELOG.md", "LICENSE"}
#: hatchling adds the .gitignore, which it reads to leave ignored files out.
SDIST_ALLOWED_EXTRA = {".gitignore"}
#: The Python versions the package is tested on (`make test`) and says it supports.
PYTHONS = ("3.11", "3.12", "3.13")
#: Libraries the package must declare by name, whatever else comes with Airflow.
REQUIRED = {
    "apache-airflow",
    "asgiref",
    "cryptography",
    "filelock",
    "httpx",
    "requests",
    "sqlalchemy",
    "tenacity",
}
#: The extra that names what ``airflow_tokens.testing`` needs beyond the package itself.
TESTING_EXTRA = "testing"
#: The extra that brings the HTTP provider ``airflow_tokens.http`` builds on.
HTTP_EXTRA = "http"
#: The kinds of example the quick start may hold: what a reader types into a terminal, and the DAG file.
QUICK_START_KINDS = {"install", "shell", "server", "dag"}
#: Imports that need no declaration, by module: each runs only where its caller has brought it.
UNDECLARED = {
    # Loaded through the pytest11 entry point, that is by pytest itself.
    "airflow_tokens.testing.pytest_plugin": {"pytest"},
}
BUILD_TIMEOUT = 240
INSTALL_TIMEOUT = 300


@dataclass(frozen=True)
class Dists:
    sdist: Path
    wheel: Path


def run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float) -> str:
    """Run a command, fail the test with its output if it fails, and return its standard output."""
    done = subprocess.run(
        [str(arg) for arg in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def canonical(name: str) -> str:
    """Return a distribution name normalised as PEP 503 does."""
    return re.sub(r"[-_.]+", "-", name).lower()


def clean_env(**extra: str) -> dict[str, str]:
    """Return this process's environment without Python's, Airflow's or a virtual environment's settings."""
    drop = ("PYTHON", "VIRTUAL_ENV", "AIRFLOW", "_AIRFLOW", "CONDA")
    env = {key: value for key, value in os.environ.items() if not key.startswith(drop)}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    """Build the sdist, then the wheel from it, into a temporary folder."""
    out = tmp_path_factory.mktemp("dist")
    run(
        sys.executable,
        "-m",
        "build",
        "--installer",
        "uv",
        "--outdir",
        out,
        REPO,
        env=clean_env(),
        timeout=BUILD_TIMEOUT,
    )
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return Dists(sdist, wheel)


def wheel_metadata(wheel: Path) -> Message:
    """Return the wheel's METADATA as a message (repeated headers such as Requires-Dist kept)."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return Parser().parsestr(archive.read(name).decode())


def package_files() -> set[str]:
    """Return the package's files in the checkout (tracked or not, but not ignored), relative to the repo."""
    listed = run(
        "git", "ls-files", "--cached", "--others", "--exclude-standard", "--", PACKAGE, cwd=REPO, timeout=60
    ).splitlines()
    return {name for name in listed if (REPO / name).is_file()}


def test_the_sdist_holds_the_package_and_its_documents_and_nothing_else(dists: Dists) -> None:
    root = dists.sdist.name.removesuffix(".tar.gz")
    with tarfile.open(dists.sdist) as archive:
        members = archive.getmembers()
    names = set()
    for member in members:
        assert member.isfile() or member.isdir(), f"{member.name} is a link or a special file"
        path = Path(member.name)
        assert path.parts[0] == root, member.name
        relative = path.relative_to(root)
        if relative.parts:
            names.add(relative.as_posix())
            assert relative.parts[0] in SDIST_TOP_LEVEL | SDIST_ALLOWED_EXTRA, member.name
            assert not any(part.startswith(".venv") for part in relative.parts), member.name
            assert "__pycache__" not in relative.parts, member.name
            assert relative.suffix not in {".pyc", ".pyo"}, member.name
    assert {"PKG-INFO", "pyproject.toml", "README.md", "CHANGELOG.md", "LICENSE"} <= names
    assert {name for name in names if name.startswith(f"{PACKAGE}/")} == package_files()


def test_the_sdist_unpacks_with_the_safe_tar_filter(dists: Dists, tmp_path: Path) -> None:
    # pip and build unpack an sdist with the "data" filter, which refuses links out of the archive.
    with tarfile.open(dists.sdist) as archive:
        archive.extractall(tmp_path, filter="data")
    assert (
        (tmp_path / dists.sdist.name.removesuffix(".tar.gz") / "LICENSE")
        .read_text()
        .startswith(
            "\n                                 Apache License\n                           Version 2.0"
        )
    )


def test_the_wheel_holds_every_file_of_the_package_and_the_license(dists: Dists) -> None:
    with zipfile.ZipFile(dists.wheel) as archive:
        names = set(archive.namelist())
        dist_info = f"airflow_tokens-{__version__}.dist-info"
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
        license_text = archive.read(f"{dist_info}/licenses/LICENSE").decode()
    assert {name for name in names if name.startswith(f"{PACKAGE}/")} == package_files()
    assert f"{PACKAGE}/py.typed" in names
    assert license_text == (REPO / "LICENSE").read_text()
    assert (
        "[apache_airflow_provider]\nprovider_info = airflow_tokens.get_provider_info:get_provider_info"
        in (entry_points)
    )
    assert "[pytest11]\nairflow_tokens = airflow_tokens.testing.pytest_plugin" in entry_points
    assert "[console_scripts]\nairflow-tokens = airflow_tokens.cli:main" in entry_points


def test_the_wheel_declares_its_license_python_versions_and_libraries(dists: Dists) -> None:
    metadata = wheel_metadata(dists.wheel)
    assert metadata["Name"] == "airflow-tokens"
    assert metadata["Version"] == __version__
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert metadata["Requires-Python"] == ">=3.11"
    classifiers = set(metadata.get_all("Classifier") or [])
    assert {f"Programming Language :: Python :: {version}" for version in PYTHONS} <= classifiers
    declared = declared_requirements(metadata)
    assert set(declared[None]) >= REQUIRED, sorted(declared[None])
    for name, spec in declared[None].items():
        assert ">=" in spec, f"{name} has no lower bound: {spec!r}"
    assert {"fastapi", "starlette", "uvicorn"} <= set(declared[TESTING_EXTRA])


def test_every_library_the_package_imports_is_declared(dists: Dists) -> None:
    declared = declared_requirements(wheel_metadata(dists.wheel))
    base = set(declared[None])
    with_testing = base | set(declared[TESTING_EXTRA])
    distributions = importlib.metadata.packages_distributions()
    missing = []
    with zipfile.ZipFile(dists.wheel) as archive:
        for name in sorted(archive.namelist()):
            if not name.endswith(".py"):
                continue
            module = name.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
            allowed = with_testing if module.startswith(f"{PACKAGE}.testing") else base
            for imported in sorted(
                runtime_imports(archive.read(name).decode()) - UNDECLARED.get(module, set())
            ):
                # Airflow's modules come from several distributions; the package declares the one to install.
                candidates = {"apache-airflow"} if imported == "airflow" else distributions.get(imported, [])
                if not {canonical(candidate) for candidate in candidates} & allowed:
                    missing.append(f"{module} imports {imported} (from {sorted(candidates)})")
    assert not missing, "imported but not declared:\n" + "\n".join(missing)


def test_twine_accepts_both_distributions(dists: Dists) -> None:
    out = run(sys.executable, "-m", "twine", "check", "--strict", dists.sdist, dists.wheel, timeout=120)
    assert out.count("PASSED") == 2, out


@pytest.fixture(scope="module")
def installed(dists: Dists, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Install the wheel with its testing and http extras, and pytest (for its plugin), into a new venv."""
    venv = tmp_path_factory.mktemp("wheel-venv") / "venv"
    uv = (sys.executable, "-m", "uv")
    run(*uv, "venv", "--quiet", "--python", sys.executable, venv, env=clean_env(), timeout=INSTALL_TIMEOUT)
    run(
        *uv,
        "pip",
        "install",
        "--quiet",
        "--python",
        venv / "bin" / "python",
        f"airflow-tokens[{TESTING_EXTRA},{HTTP_EXTRA}] @ {dists.wheel.as_uri()}",
        "pytest",
        env=clean_env(),
        timeout=INSTALL_TIMEOUT,
    )
    return venv


# Run by the wheel's own environment, in isolated mode, from a folder outside the checkout.
USE_THE_INSTALLED_WHEEL = """
import importlib, importlib.metadata as md, json, os, pkgutil, sys
from pathlib import Path

import airflow_tokens

ours = lambda group: [ep for ep in md.entry_points(group=group) if ep.dist.name == "airflow-tokens"]
(provider,) = ours("apache_airflow_provider")
info = provider.load()()
hooks = {}
for entry in info["connection-types"]:
    module, _, name = entry["hook-class-name"].rpartition(".")
    hooks[entry["connection-type"]] = getattr(importlib.import_module(module), name).__name__
triggers = [importlib.import_module(m).__name__ for t in info["triggers"] for m in t["python-modules"]]
modules = sorted(m.name for m in pkgutil.walk_packages(airflow_tokens.__path__, "airflow_tokens."))
for module in modules:
    importlib.import_module(module)
(plugin,) = ours("pytest11")
plugin.load()

from airflow_tokens.hooks.sirv import SirvTokenHook
from airflow_tokens.testing import EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET, EmulatorServer

with EmulatorServer() as server:
    connection = {"conn_type": "sirv", "host": server.url}
    connection.update(login=EMULATOR_CLIENT_ID, password=EMULATOR_CLIENT_SECRET)
    os.environ["AIRFLOW_CONN_SIRV_DEFAULT"] = json.dumps(connection)
    hook = SirvTokenHook(cache="memory")
    token = hook.get_token()
    again = hook.get_token()
    requests = server.client.token_requests("sirv")

print(json.dumps({
    "file": airflow_tokens.__file__,
    "py_typed": (Path(airflow_tokens.__file__).parent / "py.typed").is_file(),
    "sys_path": sys.path,
    "python": "%d.%d" % sys.version_info[:2],
    "package_name": info["package-name"],
    "versions": info.get("versions"),
    "hooks": hooks,
    "triggers": triggers,
    "modules": modules,
    "token_served_again": bool(token) and token == again,
    "token_requests": requests,
}))
"""


def test_the_installed_wheel_registers_the_provider_and_gets_a_token_from_its_emulator(
    installed: Path, tmp_path: Path
) -> None:
    python = installed / "bin" / "python"
    out = run(
        python,
        "-I",
        "-c",
        USE_THE_INSTALLED_WHEEL,
        cwd=tmp_path,
        env=clean_env(AIRFLOW_HOME=str(tmp_path / "airflow-home")),
        timeout=INSTALL_TIMEOUT,
    )
    result = json.loads(out.splitlines()[-1])

    site_packages = installed / "lib" / f"python{result['python']}" / "site-packages"
    assert result["python"] == "{}.{}".format(*sys.version_info[:2])
    assert Path(result["file"]).is_relative_to(site_packages), result["file"]
    assert not [entry for entry in result["sys_path"] if entry and Path(entry).is_relative_to(REPO)]
    assert result["py_typed"]
    assert result["package_name"] == "airflow-tokens"
    assert result["versions"][0] == __version__
    assert set(result["hooks"]) == {
        entry["connection-type"] for entry in get_provider_info()["connection-types"]
    }
    assert result["triggers"] == ["airflow_tokens.triggers.job"]
    # Every module of the checkout's package was imported from the wheel.
    in_checkout = {
        name.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        for name in package_files()
        if name.endswith(".py") and name != f"{PACKAGE}/__init__.py"
    }
    assert set(result["modules"]) == in_checkout
    assert result["token_served_again"]
    assert result["token_requests"] == 1


def test_the_installed_wheel_runs_its_command(installed: Path, tmp_path: Path) -> None:
    out = run(
        installed / "bin" / "airflow-tokens",
        "--version",
        cwd=tmp_path,
        env=clean_env(AIRFLOW_HOME=str(tmp_path / "airflow-home")),
        timeout=120,
    )
    assert __version__ in out


def declared_requirements(metadata: Message) -> dict[str | None, dict[str, str]]:
    """Return the wheel's Requires-Dist as {extra or None: {canonical name: specifier}}."""
    declared: dict[str | None, dict[str, str]] = {None: {}, TESTING_EXTRA: {}}
    for requirement in metadata.get_all("Requires-Dist") or []:
        spec, _, marker = requirement.partition(";")
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*)", spec)
        assert match, requirement
        extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
        declared.setdefault(extra.group(1) if extra else None, {})[canonical(match.group(1))] = match.group(2)
    return declared


def runtime_imports(source: str) -> set[str]:
    """Return the top-level names of the modules a source file imports when it runs (not for type checks)."""
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.partition(".")[0])
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return names - set(sys.stdlib_module_names) - {PACKAGE, "__future__"}


def is_type_checking(test: ast.expr) -> bool:
    """Tell whether an ``if`` tests ``TYPE_CHECKING`` (or ``typing.TYPE_CHECKING``)."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


# ------------------------------------------------------------------- the install lines of the docs


def is_the_package(requirement: str) -> bool:
    """Tell whether a ``pip install`` argument is a requirement of this package (with extras or a version)."""
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    return match is not None and canonical(match[0]) == canonical(PACKAGE)


def quick_start_installs() -> list[Example]:
    """Return the install examples of the README's quick start."""
    return [example for example in quick_start() if example.kind == "install"]


def other_installs() -> list[Example]:
    """Return every other install example of the README and ``docs/``."""
    ours = quick_start_installs()
    return [example for example in all_examples(["install"]) if example not in ours]


def install_commands(example: Example, wheel: Path, python: Path, *options: str) -> list[list[str]]:
    """Return an install example's ``pip install`` lines as uv commands for ``python``, with the wheel."""
    from packaging.requirements import Requirement

    commands = []
    for line in example.code.splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        assert words[:2] == ["pip", "install"], line
        arguments = []
        for word in words[2:]:
            if is_the_package(word):
                requirement = Requirement(word)
                assert requirement.url is None, word
                assert requirement.specifier.contains(__version__, prereleases=True), (word, __version__)
                extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
                word = f"{requirement.name}{extras} @ {wheel.as_uri()}"
            arguments.append(word)
        commands.append(
            [
                sys.executable,
                "-m",
                "uv",
                "pip",
                "install",
                "--quiet",
                *options,
                "--python",
                str(python),
                *arguments,
            ]
        )
    return commands


def new_venv(path: Path) -> Path:
    """Create an empty virtual environment of this Python at ``path``; return its interpreter."""
    run(
        sys.executable,
        "-m",
        "uv",
        "venv",
        "--quiet",
        "--python",
        sys.executable,
        path,
        env=clean_env(),
        timeout=120,
    )
    return path / "bin" / "python"


def test_the_quick_start_runs_as_written_in_a_new_virtual_environment(
    dists: Dists, tmp_path_factory: pytest.TempPathFactory
) -> None:
    examples = quick_start()
    assert {example.kind for example in examples} <= QUICK_START_KINDS, [e.kind for e in examples]
    assert all(example.file for example in examples if example.kind == "dag"), (
        "a DAG the reader saves nowhere"
    )
    (server_example,) = [example for example in examples if example.kind == "server"]
    root = tmp_path_factory.mktemp("quick-start")
    python = new_venv(root / "venv")
    for example in quick_start_installs():
        for command in install_commands(example, dists.wheel, python):
            run(*command, env=clean_env(), timeout=INSTALL_TIMEOUT)
    # A reader's shell: the new environment's commands first, a home of its own (so ~/airflow is the
    # Airflow home, with Airflow's default configuration), nothing of this process's Airflow settings.
    home = root / "home"
    home.mkdir()
    env = clean_env(HOME=str(home), PATH=os.pathsep.join([str(python.parent), os.environ.get("PATH", "")]))
    for example in examples:
        if example.kind == "dag":
            target = saved_path(example.file or "", home)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(example.code)
    server = start_server(server_example, env=env, cwd=home)
    try:
        outcomes = run_shell_session(
            [example for example in examples if example.kind == "shell"],
            env=env,
            cwd=home,
            url=server.url,
            timeout=INSTALL_TIMEOUT,
        )
        for example in examples:
            if example.kind == "shell":
                outcomes[example.id].check(example)
        from airflow_tokens.testing import EmulatorClient

        assert EmulatorClient(server.url).token_requests("sirv") == 1  # one token served the DAG's call
    finally:
        code = server.stop()
    assert code == 0, "".join(server.lines)


@pytest.mark.parametrize("example", [pytest.param(example, id=example.id) for example in other_installs()])
def test_an_install_line_of_the_docs_resolves_with_the_wheel(
    example: Example, dists: Dists, tmp_path: Path
) -> None:
    python = new_venv(tmp_path / "venv")
    for command in install_commands(example, dists.wheel, python, "--dry-run"):
        run(*command, env=clean_env(), timeout=INSTALL_TIMEOUT)

"""The ``airflow-tokens`` command: check a connection by fetching a token, or serve the vendor emulator.

Importing this module is cheap: Airflow, the hooks and the emulator are imported by the command
that needs them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from datetime import UTC
from typing import TYPE_CHECKING

from airflow_tokens import __version__

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from airflow_tokens.hooks.base import TokenHook
    from airflow_tokens.token import AccessToken

log = logging.getLogger(__name__)

EXIT_OK = 0
#: Anything not listed below: an Airflow that cannot start, a bug, an unexpected failure.
EXIT_FAILURE = 1
#: The connection is missing, not one of ours, or configured wrongly (an unknown extra included); no
#: request was sent.
EXIT_CONFIG = 2
#: The vendor answered with an error status, or no answer came (after the retries).
EXIT_REQUEST = 3
#: The vendor answered 2xx without a usable token.
EXIT_RESPONSE = 4
EXIT_INTERRUPTED = 130

#: ``--cache`` choices; ``xcom`` needs a running task and makes no sense here.
CACHE_CHOICES = ("none", "memory", "variable")

#: Airflow's configuration variable for its log level; the command lowers it to keep its own output clean.
_LOG_LEVEL_VAR = "AIRFLOW__LOGGING__LOGGING_LEVEL"
#: Airflow's process-context marker. "server" makes the task SDK look up connections in the metadata
#: database as well (as ``airflow connections get`` and ``airflow connections test`` do); without it,
#: ``BaseHook.get_connection`` outside a task only sees ``AIRFLOW_CONN_*`` and secrets backends.
_PROCESS_CONTEXT_VAR = "_AIRFLOW_PROCESS_CONTEXT"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """
    Describe a token fetched by ``airflow-tokens check``; it never holds the token itself.

    :param conn_id: the Airflow connection checked.
    :param vendor: the vendor's name (the hook's ``hook_name``).
    :param conn_type: the connection type.
    :param token_type: the token's scheme, usually ``Bearer``.
    :param lifetime_seconds: the token's whole lifetime, rounded to the second.
    :param expires_at: when the token expires, as a UTC ISO 8601 timestamp.
    :param scope: the granted scopes, or None when the vendor does not say.
    :param token_length: how many characters the token has.
    :param cache: the cache the token was requested through.
    :param elapsed_ms: how long getting the token took, in milliseconds.
    """

    conn_id: str
    vendor: str
    conn_type: str
    token_type: str
    lifetime_seconds: int
    expires_at: str
    scope: list[str] | None
    token_length: int
    cache: str
    elapsed_ms: float

    @classmethod
    def of(cls, hook: TokenHook, token: AccessToken, cache: str, elapsed: float) -> CheckResult:
        """Return the result for ``token``, obtained by ``hook`` in ``elapsed`` seconds."""
        return cls(
            conn_id=hook.conn_id,
            vendor=hook.hook_name,
            conn_type=hook.conn_type,
            token_type=token.token_type,
            lifetime_seconds=round(token.lifetime),
            expires_at=token.expires_at.astimezone(UTC).isoformat(timespec="seconds"),
            scope=list(token.scope) if token.scope is not None else None,
            token_length=len(token.token),
            cache=cache,
            elapsed_ms=round(elapsed * 1000, 1),
        )

    def to_json(self) -> str:
        """Return the result as one JSON object."""
        return json.dumps(asdict(self))

    def to_text(self) -> str:
        """Return the result as aligned ``label  value`` lines for people."""
        scope = "(not stated by the vendor)" if self.scope is None else (" ".join(self.scope) or "(none)")
        rows = [
            ("Connection", self.conn_id),
            ("Vendor", self.vendor),
            ("Connection type", self.conn_type),
            ("Token type", self.token_type),
            ("Lifetime", f"{self.lifetime_seconds} s"),
            ("Expires at", self.expires_at),
            ("Scope", scope),
            ("Token", f"*** ({self.token_length} characters)"),
            ("Cache", self.cache),
            ("Time taken", f"{self.elapsed_ms:.0f} ms"),
        ]
        width = max(len(label) for label, _ in rows)
        return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


class CheckFailed(Exception):
    """
    Report a failed check with its exit code and a one-line, secret-free message.

    :param exit_code: the process exit code.
    :param message: what went wrong, on one line.
    """

    def __init__(self, exit_code: int, message: str) -> None:
        self.exit_code = exit_code
        self.message = message
        super().__init__(message)


def _one_line(text: str) -> str:
    """Return ``text`` with its lines joined by spaces."""
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


@contextlib.contextmanager
def _environ(name: str, value: str, *, override: bool) -> Iterator[None]:
    """Set environment variable ``name`` (unless already set and not ``override``), restore it after."""
    saved = os.environ.get(name)
    if override or saved is None:
        os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


@contextlib.contextmanager
def _quiet_airflow(debug: bool) -> Iterator[None]:
    """
    Send whatever Airflow writes to stdout to stderr instead, and lower its log level unless ``debug``.

    Airflow configures its log handler when it is first imported, bound to ``sys.stdout`` as it is
    then: importing it in here keeps stdout for the command's own output.
    """
    with (
        _environ(_LOG_LEVEL_VAR, "DEBUG" if debug else "WARNING", override=debug),
        contextlib.redirect_stdout(sys.stderr),
    ):
        yield


def check(conn_id: str, cache: str = "none", *, allow_unknown_extras: bool = False) -> CheckResult:
    """
    Fetch a token through connection ``conn_id`` and describe it; raise :class:`CheckFailed` on failure.

    The connection is found wherever Airflow finds it: ``AIRFLOW_CONN_*``, a secrets backend or the
    metadata database. An extra its type does not understand is a configuration error unless
    ``allow_unknown_extras`` (then it is logged as a warning, as in a task).
    """
    try:
        from airflow_tokens.exceptions import TokenConfigError, TokenRequestError, TokenResponseError
        from airflow_tokens.hooks import get_token_hook
    except Exception as exc:
        raise CheckFailed(EXIT_FAILURE, f"cannot load Airflow: {type(exc).__name__}: {exc}") from exc

    exit_codes: tuple[tuple[type[Exception], int], ...] = (
        (TokenConfigError, EXIT_CONFIG),
        (TokenRequestError, EXIT_REQUEST),
        (TokenResponseError, EXIT_RESPONSE),
    )
    with _environ(_PROCESS_CONTEXT_VAR, "server", override=False):
        try:
            hook = get_token_hook(conn_id, cache=cache)
            hook.strict_extras = not allow_unknown_extras
            hook.token_request  # noqa: B018 -- validate the connection before the clock starts
            hook.cache  # noqa: B018
            started = time.perf_counter()
            token = hook.get_access_token()
            elapsed = time.perf_counter() - started
        except Exception as exc:
            code = next((code for kind, code in exit_codes if isinstance(exc, kind)), EXIT_FAILURE)
            message = str(exc) if code != EXIT_FAILURE else f"{type(exc).__name__}: {exc}"
            raise CheckFailed(code, _one_line(message) or type(exc).__name__) from exc
    log.debug("Checked connection %s in %.3f s", conn_id, elapsed)
    return CheckResult.of(hook, token, cache, elapsed)


def _run_check(args: argparse.Namespace) -> int:
    """Run ``airflow-tokens check``; return the exit code."""
    stdout = sys.stdout
    with _quiet_airflow(args.debug):
        try:
            result = check(args.conn_id, args.cache, allow_unknown_extras=args.allow_unknown_extras)
        except CheckFailed as failure:
            if args.debug:
                traceback.print_exception(failure.__cause__ or failure, file=sys.stderr)
            print(f"airflow-tokens: error: {failure.message}", file=sys.stderr, flush=True)
            return failure.exit_code
    print(result.to_json() if args.json else result.to_text(), file=stdout, flush=True)
    return EXIT_OK


def _run_emulator(args: argparse.Namespace) -> int:
    """Run ``airflow-tokens emulator`` until SIGINT or SIGTERM; return the exit code."""
    from airflow_tokens.testing.__main__ import main as serve

    return serve(["--host", args.host, "--port", str(args.port)])


def _parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    parser = argparse.ArgumentParser(
        prog="airflow-tokens",
        description="Check airflow-tokens connections and serve the vendor emulator.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", required=True, metavar="COMMAND")

    check_parser = commands.add_parser(
        "check",
        help="fetch a token through a connection and describe it (never showing the token)",
        description=(
            "Fetch a token through an Airflow connection (from AIRFLOW_CONN_*, a secrets backend or the "
            "metadata database) and describe it; the token itself is never shown. Exit codes: 0 success, "
            "2 configuration error (unknown connection, connection type not ours, missing or wrong "
            "field, an extra the connection type does not understand), 3 the token request failed, "
            "4 the vendor's answer held no usable token, 1 anything else."
        ),
    )
    check_parser.add_argument("conn_id", metavar="CONN_ID", help="the Airflow connection id")
    check_parser.add_argument("--json", action="store_true", help="print one JSON object")
    check_parser.add_argument(
        "--cache",
        choices=CACHE_CHOICES,
        default="none",
        help="token cache to go through (default: %(default)s, always a real request; outside a task the "
        "variable cache falls back to process memory)",
    )
    check_parser.add_argument(
        "--allow-unknown-extras",
        action="store_true",
        help="only warn about extras the connection type does not understand (as a task does), and "
        "fetch the token anyway",
    )
    check_parser.add_argument(
        "--debug", action="store_true", help="show Airflow's debug log and the traceback of an error"
    )
    check_parser.set_defaults(run=_run_check)

    emulator_parser = commands.add_parser(
        "emulator",
        help="serve the local emulator of every vendor's token endpoint",
        description="Serve the local emulator of every vendor's token endpoint until SIGINT or SIGTERM.",
    )
    emulator_parser.add_argument(
        "--host", default="127.0.0.1", help="interface to listen on (default: %(default)s)"
    )
    emulator_parser.add_argument(
        "--port", type=int, default=8765, help="port to listen on, 0 for a free one (default: %(default)s)"
    )
    emulator_parser.set_defaults(run=_run_emulator)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``airflow-tokens`` command line; return the process exit code."""
    args = _parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        print("airflow-tokens: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return code


if __name__ == "__main__":
    sys.exit(main())

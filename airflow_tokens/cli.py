"""The ``airflow-tokens`` command: check a connection, show or clear the token cache, serve the emulator.

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

    from sqlalchemy.orm import Session

    from airflow_tokens.hooks.base import TokenHook
    from airflow_tokens.inventory import CachedToken
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
#: ``clear CONN_ID``: nothing is cached for that connection (nothing was removed).
EXIT_NOT_CACHED = 5
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


def _report(failure: CheckFailed, debug: bool) -> int:
    """Print a failure on one line of stderr (after its traceback if ``debug``); return its exit code."""
    if debug:
        traceback.print_exception(failure.__cause__ or failure, file=sys.stderr)
    print(f"airflow-tokens: error: {failure.message}", file=sys.stderr, flush=True)
    return failure.exit_code


def _run_check(args: argparse.Namespace) -> int:
    """Run ``airflow-tokens check``; return the exit code."""
    stdout = sys.stdout
    with _quiet_airflow(args.debug):
        try:
            result = check(args.conn_id, args.cache, allow_unknown_extras=args.allow_unknown_extras)
        except CheckFailed as failure:
            return _report(failure, args.debug)
    print(result.to_json() if args.json else result.to_text(), file=stdout, flush=True)
    return EXIT_OK


@contextlib.contextmanager
def _metadata_session() -> Iterator[Session]:
    """Open a session on Airflow's metadata database (committed at the end); failures are CheckFailed."""
    try:
        from airflow.utils.session import create_session

        with create_session() as session:
            yield session
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CheckFailed(
            EXIT_FAILURE, f"cannot use Airflow's metadata database: {type(exc).__name__}: {first}"
        ) from exc


def status_text(tokens: Sequence[CachedToken]) -> str:
    """Return the cached tokens as an aligned table for people (never a token)."""
    if not tokens:
        return "No token is cached in Airflow Variables."
    rows = [("CONNECTION", "TYPE", "VENDOR", "EXPIRES IN", "OBTAINED AT", "BY", "LEASE", "SCOPE")]
    for item in tokens:
        if item.problem is not None:
            expires = obtained = by = "-"
            scope = f"({item.problem})"
        else:
            expires = "expired" if item.expired else f"{item.expires_in} s"
            obtained, by = item.obtained_at or "-", item.obtained_by or "-"
            scope = "(not stated)" if item.scope is None else (" ".join(item.scope) or "(none)")
        rows.append(
            (item.conn_id, item.conn_type, item.vendor, expires, obtained, by, item.lease.to_text(), scope)
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]])
        for row in rows
    )


def _run_status(args: argparse.Namespace) -> int:
    """Run ``airflow-tokens status``; return the exit code."""
    stdout = sys.stdout
    with _quiet_airflow(args.debug):
        try:
            from airflow_tokens.inventory import cached_tokens

            with _metadata_session() as session:
                tokens = cached_tokens(session)
        except CheckFailed as failure:
            return _report(failure, args.debug)
    if args.json:
        print(json.dumps([item.to_dict() for item in tokens]), file=stdout, flush=True)
    else:
        print(status_text(tokens), file=stdout, flush=True)
    return EXIT_OK


def _run_clear(args: argparse.Namespace) -> int:
    """Run ``airflow-tokens clear``; return the exit code."""
    stdout = sys.stdout
    with _quiet_airflow(args.debug):
        try:
            from airflow_tokens.inventory import clear, describe

            with _metadata_session() as session:
                removed = clear(session, None if args.all else args.conn_id)
        except CheckFailed as failure:
            return _report(failure, args.debug)
    if args.json:
        print(json.dumps({"removed": removed}), file=stdout, flush=True)
    elif removed:
        print("\n".join(f"Removed {describe(key)}" for key in removed), file=stdout, flush=True)
    elif args.all:
        print("No token is cached in Airflow Variables: nothing removed.", file=stdout, flush=True)
    if removed or args.all:
        return EXIT_OK
    print(f"airflow-tokens: nothing is cached for connection {args.conn_id!r}", file=sys.stderr, flush=True)
    return EXIT_NOT_CACHED


def _run_emulator(args: argparse.Namespace) -> int:
    """Run ``airflow-tokens emulator`` until SIGINT or SIGTERM; return the exit code."""
    from airflow_tokens.testing.__main__ import main as serve

    return serve(["--host", args.host, "--port", str(args.port)])


def _output_options(parser: argparse.ArgumentParser, document: str) -> None:
    """Add ``--json`` (print ``document`` instead of text) and ``--debug`` to a command's parser."""
    parser.add_argument("--json", action="store_true", help=f"print {document}")
    parser.add_argument(
        "--debug", action="store_true", help="show Airflow's debug log and the traceback of an error"
    )


def _parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    parser = argparse.ArgumentParser(
        prog="airflow-tokens",
        description="Check airflow-tokens connections, show or clear the token cache, serve the vendor "
        "emulator.",
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
    _output_options(check_parser, "one JSON object")
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
    check_parser.set_defaults(run=_run_check)

    status_parser = commands.add_parser(
        "status",
        help="list the tokens cached in Airflow Variables (never the tokens)",
        description=(
            "List every connection with a token cached in Airflow Variables, read from the metadata "
            "database: connection, type and vendor, expiry, when and by which host the token was obtained, "
            "scope and refresh lease. The token itself is never shown (nor decrypted). Exit codes: 0 "
            "success (also when nothing is cached), 1 the metadata database cannot be read."
        ),
    )
    _output_options(status_parser, "one JSON array")
    status_parser.set_defaults(run=_run_status)

    clear_parser = commands.add_parser(
        "clear",
        help="remove a connection's cached token and refresh lease (after a revocation)",
        description=(
            "Remove the token cached in Airflow Variables for a connection, and its refresh lease, so that "
            "the next task fetches a new token (for example after the token was revoked at the vendor). "
            "Tasks running now keep the token they hold in memory. Exit codes: 0 removed (with --all: "
            "also when nothing was cached), 5 nothing was cached for CONN_ID, 1 the metadata database "
            "cannot be used."
        ),
    )
    target = clear_parser.add_mutually_exclusive_group(required=True)
    target.add_argument("conn_id", metavar="CONN_ID", nargs="?", help="the Airflow connection id")
    target.add_argument("--all", action="store_true", help="remove every cached token and lease")
    _output_options(clear_parser, "one JSON object")
    clear_parser.set_defaults(run=_run_clear)

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

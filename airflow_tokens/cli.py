"""The ``airflow-tokens`` command: check a connection, show or clear the token cache, serve the emulator.

Importing this module is cheap: Airflow, the hooks and the emulator are imported by the command
that needs them.

With ``--json`` every outcome is one JSON document on stdout, errors included; stderr only gets
Airflow's log and, with ``--debug``, the traceback. A success is what each command documents
(``check`` and ``clear``: an object with ``"ok": true``; ``status``: the array of cached tokens, as
before). An error, a wrong command line included, is one object, with the process's exit code::

    {"ok": false, "command": "check", "conn_id": "sirv_default",
     "error": {"kind": "request", "message": "...", "exit_code": 3}}

``kind`` is one of :data:`ERROR_KINDS` by exit code, or ``"usage"`` for a wrong command line (exit
code 2, as argparse's). ``conn_id`` is null without one (``status``, ``clear --all``, a wrong command
line), ``command`` when the command line names none. The message is one line and never holds a secret
or a token. ``clear`` adds ``"removed": []``.
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
from typing import TYPE_CHECKING, Any, NoReturn

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
#: The command line is wrong (argparse's exit code; the same number as :data:`EXIT_CONFIG`).
EXIT_USAGE = 2

#: The ``error.kind`` of a JSON error, by exit code; a wrong command line is ``"usage"``.
ERROR_KINDS: dict[int, str] = {
    EXIT_FAILURE: "failure",
    EXIT_CONFIG: "config",
    EXIT_REQUEST: "request",
    EXIT_RESPONSE: "response",
    EXIT_NOT_CACHED: "not_cached",
    EXIT_INTERRUPTED: "interrupted",
}
USAGE_KIND = "usage"

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
        """Return the result as one JSON object, with ``"ok": true``."""
        return json.dumps({"ok": True, **asdict(self)})

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

    @property
    def kind(self) -> str:
        """Return the failure's ``error.kind`` in JSON (:data:`ERROR_KINDS`)."""
        return ERROR_KINDS.get(self.exit_code, ERROR_KINDS[EXIT_FAILURE])


def error_document(
    command: str | None, conn_id: str | None, kind: str, message: str, exit_code: int, **more: Any
) -> dict[str, Any]:
    """Return the JSON error object: ``ok``, ``command``, ``conn_id``, then ``more``, then ``error``."""
    return {
        "ok": False,
        "command": command,
        "conn_id": conn_id,
        **more,
        "error": {"kind": kind, "message": message, "exit_code": exit_code},
    }


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


def check(
    conn_id: str,
    cache: str = "none",
    *,
    allow_unknown_extras: bool = False,
    max_attempts: int | None = None,
    timeout: float | None = None,
) -> CheckResult:
    """
    Fetch a token through connection ``conn_id`` and describe it; raise :class:`CheckFailed` on failure.

    The connection is found wherever Airflow finds it: ``AIRFLOW_CONN_*``, a secrets backend or the
    metadata database. An extra its type does not understand is a configuration error unless
    ``allow_unknown_extras`` (then it is logged as a warning, as in a task). ``max_attempts`` replaces
    the connection's ``max_attempts`` (its ``max_retry_seconds`` still bounds the retries), ``timeout``
    its connect and read timeouts, in seconds.
    """
    try:
        from airflow_tokens.exceptions import TokenConfigError, TokenRequestError, TokenResponseError
        from airflow_tokens.hooks import get_token_hook
        from airflow_tokens.options import MAX_RETRY_SECONDS
        from airflow_tokens.retry import RetryPolicy
    except Exception as exc:
        raise CheckFailed(EXIT_FAILURE, f"cannot load Airflow: {type(exc).__name__}: {exc}") from exc

    exit_codes: tuple[tuple[type[Exception], int], ...] = (
        (TokenConfigError, EXIT_CONFIG),
        (TokenRequestError, EXIT_REQUEST),
        (TokenResponseError, EXIT_RESPONSE),
    )
    with _environ(_PROCESS_CONTEXT_VAR, "server", override=False):
        try:
            options: dict[str, Any] = {"cache": cache}
            if timeout is not None:
                options["timeout"] = timeout
            hook = get_token_hook(conn_id, **options)
            hook.strict_extras = not allow_unknown_extras
            hook.token_request  # noqa: B018 -- validate the connection before the clock starts
            hook.cache  # noqa: B018
            if max_attempts is not None:
                # The same hook with the retry policy replaced: the connection resolved above is reused.
                policy = RetryPolicy(
                    max_attempts=max_attempts, max_seconds=hook.settings.value(MAX_RETRY_SECONDS)
                )
                hook = type(hook)(retry=policy, **{**options, hook.conn_name_attr: conn_id})
                hook.strict_extras = not allow_unknown_extras
            started = time.perf_counter()
            token = hook.get_access_token()
            elapsed = time.perf_counter() - started
        except Exception as exc:
            code = next((code for kind, code in exit_codes if isinstance(exc, kind)), EXIT_FAILURE)
            message = str(exc) if code != EXIT_FAILURE else f"{type(exc).__name__}: {exc}"
            raise CheckFailed(code, _one_line(message) or type(exc).__name__) from exc
    log.debug("Checked connection %s in %.3f s", conn_id, elapsed)
    return CheckResult.of(hook, token, cache, elapsed)


def _print_json(document: Any, stdout: Any) -> None:
    """Print ``document`` as one line of JSON on ``stdout``."""
    print(json.dumps(document), file=stdout, flush=True)


def _report(failure: CheckFailed, args: argparse.Namespace, stdout: Any, **more: Any) -> int:
    """
    Report a failure; return its exit code.

    With ``--json``: the JSON error object (with ``more``) on ``stdout``; else one line on stderr. The
    traceback goes to stderr first with ``--debug``.
    """
    if getattr(args, "debug", False):
        traceback.print_exception(failure.__cause__ or failure, file=sys.stderr)
    if getattr(args, "json", False):
        conn_id = getattr(args, "conn_id", None)
        document = error_document(
            args.command, conn_id, failure.kind, failure.message, failure.exit_code, **more
        )
        _print_json(document, stdout)
    else:
        print(f"airflow-tokens: error: {failure.message}", file=sys.stderr, flush=True)
    return failure.exit_code


def _run_check(args: argparse.Namespace) -> int:
    """Run ``airflow-tokens check``; return the exit code."""
    stdout = sys.stdout
    with _quiet_airflow(args.debug):
        try:
            result = check(
                args.conn_id,
                args.cache,
                allow_unknown_extras=args.allow_unknown_extras,
                max_attempts=args.max_attempts,
                timeout=args.timeout,
            )
        except CheckFailed as failure:
            return _report(failure, args, stdout)
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
        # A token asked for per call (get_token(scope=...)) is its own entry: say what it was asked for.
        asked = ", ".join(f"{name}={value}" for name, value in sorted((item.asked or {}).items()))
        connection = f"{item.conn_id} ({asked})" if asked else item.conn_id
        rows.append(
            (connection, item.conn_type, item.vendor, expires, obtained, by, item.lease.to_text(), scope)
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
            return _report(failure, args, stdout)
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
            return _report(failure, args, stdout, removed=[])
    if removed or args.all:
        if args.json:
            _print_json({"ok": True, "removed": removed}, stdout)
        elif removed:
            print("\n".join(f"Removed {describe(key)}" for key in removed), file=stdout, flush=True)
        else:
            print("No token is cached in Airflow Variables: nothing removed.", file=stdout, flush=True)
        return EXIT_OK
    message = f"nothing is cached for connection {args.conn_id!r}"
    if args.json:
        return _report(CheckFailed(EXIT_NOT_CACHED, message), args, stdout, removed=[])
    print(f"airflow-tokens: {message}", file=sys.stderr, flush=True)
    return EXIT_NOT_CACHED


def _run_emulator(args: argparse.Namespace) -> int:
    """Run ``airflow-tokens emulator`` until SIGINT or SIGTERM; return the exit code."""
    from airflow_tokens.testing.__main__ import main as serve

    return serve(["--host", args.host, "--port", str(args.port), *(["--quiet"] if args.quiet else [])])


def _attempts(text: str) -> int:
    """Read ``--max-attempts``: a whole number, at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return value


def _seconds(text: str) -> float:
    """Read ``--timeout``: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    """
    Parse the command line; with ``json_errors``, report a wrong one as the JSON error object on stdout.

    :param json_errors: whether ``--json`` is on the command line (the exit code stays 2).
    """

    def __init__(self, *args: Any, json_errors: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.json_errors = json_errors

    def error(self, message: str) -> NoReturn:
        """Exit with code 2 after printing the usage and ``message`` (with ``json_errors``, as JSON)."""
        if not self.json_errors:
            super().error(message)
        command = self.prog.removeprefix("airflow-tokens").strip() or None
        _print_json(error_document(command, None, USAGE_KIND, _one_line(message), EXIT_USAGE), sys.stdout)
        self.exit(EXIT_USAGE)


def _wants_json(argv: Sequence[str]) -> bool:
    """Say whether ``--json`` (or an abbreviation argparse accepts) is among the options of ``argv``."""
    options = argv[: argv.index("--")] if "--" in argv else argv
    return any(len(arg) > 2 and "--json".startswith(arg) for arg in options)


def _output_options(parser: argparse.ArgumentParser, document: str) -> None:
    """Add ``--json`` (print ``document`` instead of text) and ``--debug`` to a command's parser."""
    parser.add_argument(
        "--json",
        action="store_true",
        help=f"print {document}; any error too, as one JSON object "
        '{"ok": false, "command", "conn_id", "error": {"kind", "message", "exit_code"}} on stdout',
    )
    parser.add_argument(
        "--debug", action="store_true", help="show Airflow's debug log and the traceback of an error"
    )


def _parser(*, json_errors: bool = False) -> argparse.ArgumentParser:
    """Return the command-line parser; ``json_errors``: report a wrong command line as JSON."""
    parser = _Parser(
        prog="airflow-tokens",
        description="Check airflow-tokens connections, show or clear the token cache, serve the vendor "
        "emulator.",
        json_errors=json_errors,
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
            "field, an extra the connection type does not understand; also a wrong command line), 3 the "
            "token request failed, 4 the vendor's answer held no usable token, 1 anything else."
        ),
        json_errors=json_errors,
    )
    check_parser.add_argument("conn_id", metavar="CONN_ID", help="the Airflow connection id")
    _output_options(check_parser, 'one JSON object (with "ok": true)')
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
        "--max-attempts",
        type=_attempts,
        metavar="N",
        help="send the token request at most N times (1: no retry), instead of the connection's max_attempts",
    )
    check_parser.add_argument(
        "--timeout",
        type=_seconds,
        metavar="SECONDS",
        help="connect and read timeout of each request, instead of the connection's connect_timeout and "
        "read_timeout (with --max-attempts 1, a dead host fails within about SECONDS)",
    )
    check_parser.set_defaults(run=_run_check)

    status_parser = commands.add_parser(
        "status",
        help="list the tokens cached in Airflow Variables (never the tokens)",
        description=(
            "List every connection with a token cached in Airflow Variables, read from the metadata "
            "database: connection, type and vendor, expiry, when and by which host the token was obtained, "
            "scope and refresh lease. The token itself is never shown (nor decrypted). Exit codes: 0 "
            "success (also when nothing is cached), 1 the metadata database cannot be read, 2 a wrong "
            "command line."
        ),
        json_errors=json_errors,
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
            "cannot be used, 2 a wrong command line."
        ),
        json_errors=json_errors,
    )
    target = clear_parser.add_mutually_exclusive_group(required=True)
    target.add_argument("conn_id", metavar="CONN_ID", nargs="?", help="the Airflow connection id")
    target.add_argument("--all", action="store_true", help="remove every cached token and lease")
    _output_options(clear_parser, 'one JSON object (with "ok": true and "removed")')
    clear_parser.set_defaults(run=_run_clear)

    emulator_parser = commands.add_parser(
        "emulator",
        help="serve the local emulator of every vendor's token endpoint",
        description="Serve the local emulator of every vendor's token endpoint until SIGINT or SIGTERM; on "
        "start, print its URL, credentials, an AIRFLOW_CONN_* line per connection type and its routes.",
        json_errors=json_errors,
    )
    emulator_parser.add_argument(
        "--host", default="127.0.0.1", help="interface to listen on (default: %(default)s)"
    )
    emulator_parser.add_argument(
        "--port", type=int, default=8765, help="port to listen on, 0 for a free one (default: %(default)s)"
    )
    emulator_parser.add_argument("--quiet", action="store_true", help="print only the listening line")
    emulator_parser.set_defaults(run=_run_emulator)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``airflow-tokens`` command line; return the process exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = _parser(json_errors=_wants_json(arguments)).parse_args(arguments)
    try:
        code: int = args.run(args)
    except KeyboardInterrupt as exc:
        if not getattr(args, "json", False):
            print("airflow-tokens: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        failure = CheckFailed(EXIT_INTERRUPTED, "interrupted")
        failure.__cause__ = exc
        return _report(failure, args, sys.stdout)
    except Exception as exc:
        if not getattr(args, "json", False):
            raise
        # No message: an unexpected exception's text was not written to be shown (nor redacted).
        failure = CheckFailed(EXIT_FAILURE, f"unexpected {type(exc).__name__} (--debug shows the traceback)")
        failure.__cause__ = exc
        return _report(failure, args, sys.stdout)
    return code


if __name__ == "__main__":
    sys.exit(main())

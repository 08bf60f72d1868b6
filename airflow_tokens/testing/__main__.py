"""Serve the token endpoint emulator in the foreground: ``python -m airflow_tokens.testing``.

On start it prints the line ``airflow-tokens emulator listening on URL`` then, unless ``--quiet``, what
a person needs to use it: its URL, the credentials it accepts, one ready-to-paste
``export AIRFLOW_CONN_<TYPE>_DEFAULT='...'`` line per connection type, and its routes (read from the
app), ending with the line :data:`LAST_LINE`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
from typing import TYPE_CHECKING, Any

from airflow_tokens.testing.constants import (
    CUSTOM_ENDPOINT_EXTRA,
    EMULATOR_CLIENT_ID,
    EMULATOR_CLIENT_SECRET,
)

if TYPE_CHECKING:
    from types import FrameType

    from fastapi import FastAPI

_LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
#: The emulator's name of the endpoint each connection type speaks to.
EMULATED: dict[str, str] = {
    "sirv": "sirv",
    "learning360": "learning360",
    "manis": "manis",
    "podero": "podero",
    "oauth2_client_credentials": "oauth2",
    "token_endpoint": "custom",
}
#: Addresses that listen on every interface; clients on this machine reach them over loopback.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}
#: The order HTTP methods are listed in (any other after these).
_METHOD_RANK = {method: rank for rank, method in enumerate(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"))}
#: The route groups, by the tag of their routes (the admin routes have none).
_GROUPS = (("token endpoints", "Token endpoints"), ("resources", "Resources (need a token it issued)"))
#: The banner's last line.
LAST_LINE = "Stop with Ctrl-C or SIGTERM."


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_tokens.testing",
        description="Serve a local emulator of every airflow-tokens vendor's token endpoint; on start, print "
        "its URL, credentials, an AIRFLOW_CONN_* line per connection type and its routes.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8765, help="port to listen on, 0 for a free one (default: %(default)s)"
    )
    parser.add_argument(
        "--log-level", default="warning", choices=_LOG_LEVELS, help="uvicorn log level (default: %(default)s)"
    )
    parser.add_argument("--quiet", action="store_true", help="print only the listening line")
    return parser.parse_args(argv)


def client_url(host: str, port: int) -> str:
    """Return the URL clients on this machine use: a wildcard address is reached over loopback."""
    from airflow_tokens.testing.emulator import format_url

    return format_url(_WILDCARDS.get(host, host), port)


def connections(url: str) -> dict[str, dict[str, Any]]:
    """Return a connection to the emulator at ``url`` per connection type, by its default conn id."""
    from urllib.parse import urlsplit

    from airflow_tokens.request import is_loopback
    from airflow_tokens.testing._vendors import VENDOR_TABLE
    from airflow_tokens.vendors import VENDORS

    result: dict[str, dict[str, Any]] = {}
    for conn_type, vendor in VENDORS.items():
        emulated = VENDOR_TABLE[EMULATED[conn_type]]
        extra: dict[str, Any] = dict(CUSTOM_ENDPOINT_EXTRA) if vendor.configurable else {}
        if not is_loopback(urlsplit(url).hostname):
            extra["allow_http"] = True  # plain http:// is only accepted without it to loopback
        conn: dict[str, Any] = {
            "conn_type": conn_type,
            "host": url + emulated.path if vendor.host_is_token_url else url,
            "login": EMULATOR_CLIENT_ID,
            "password": EMULATOR_CLIENT_SECRET,
        }
        if extra:
            conn["extra"] = extra
        result[vendor.default_conn_name] = conn
    return result


def export_line(conn_id: str, conn: dict[str, Any]) -> str:
    """Return the shell line that defines connection ``conn_id`` as ``conn``."""
    return f"export AIRFLOW_CONN_{conn_id.upper()}={shlex.quote(json.dumps(conn))}"


def routes(app: FastAPI) -> list[tuple[str, str, str, str]]:
    """Return the app's API routes as (group, methods, path, what it is), in the app's order."""
    from fastapi.routing import APIRoute

    from airflow_tokens.testing._vendors import VENDOR_TABLE
    from airflow_tokens.vendors import VENDORS

    by_path = {vendor.path: vendor.name for vendor in VENDOR_TABLE.values()}
    types = {name: conn_type for conn_type, name in EMULATED.items()}
    result = []
    for route in app.routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        methods = ",".join(sorted(route.methods, key=lambda m: (_METHOD_RANK.get(m, len(_METHOD_RANK)), m)))
        group = route.tags[0] if route.tags else "admin"
        if group == "token endpoints" and route.path in by_path:
            name = by_path[route.path]
            conn_type = types.get(name)
            what = f"{VENDORS[conn_type].name}: connection type {conn_type}" if conn_type else name
        else:
            lines = (route.description or "").strip().splitlines()
            what = lines[0].replace("``", "") if lines else ""
        result.append((str(group), methods, route.path, what))
    return result


def banner(url: str, app: FastAPI) -> str:
    """Return what the emulator prints after its listening line: URL, credentials, connections, routes."""
    lines = [
        f"URL:           {url}",
        f"Client ID:     {EMULATOR_CLIENT_ID}",
        f"Client secret: {EMULATOR_CLIENT_SECRET}",
        "  Every endpoint accepts this pair: Manis as merchant ID and secret (headers x-merchant-id and",
        "  x-secret), the custom endpoint as API key and secret (HTTP Basic); POST /_emulator/credentials",
        "  adds more.",
        "",
        "Connections, one per connection type (paste into the shell that runs Airflow or airflow-tokens):",
        *(export_line(conn_id, conn) for conn_id, conn in connections(url).items()),
        "Then, for example: airflow-tokens check sirv_default",
    ]
    table = routes(app)
    width = max(len(f"{methods} {path}") for _, methods, path, _ in table)
    titles = dict(_GROUPS)
    lines += ["", f"Routes (OpenAPI at {url}{app.docs_url}):" if app.docs_url else "Routes:"]
    for group in dict.fromkeys(group for group, _, _, _ in table):
        lines.append(f"  {titles.get(group, group.capitalize())}:")
        lines += [
            f"    {f'{methods} {path}':<{width}}  {what}".rstrip()
            for name, methods, path, what in table
            if name == group
        ]
    lines += ["", LAST_LINE]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Serve the emulator until SIGINT or SIGTERM; return the process exit code."""
    args = _parse_args(argv)

    import uvicorn

    from airflow_tokens.testing.emulator import bind_socket, create_app, format_url

    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:
        print(f"airflow-tokens emulator: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    app = create_app()
    config = uvicorn.Config(
        app,
        log_level=args.log_level,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if server.should_exit and signum == signal.SIGINT:
            server.force_exit = True
        server.should_exit = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        port = sock.getsockname()[1]
        print(f"airflow-tokens emulator listening on {format_url(args.host, port)}", flush=True)
        if not args.quiet:
            print(banner(client_url(args.host, port), app), flush=True)
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Serve the token endpoint emulator in the foreground: ``python -m airflow_tokens.testing``."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import FrameType

_LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_tokens.testing",
        description="Serve a local emulator of every airflow-tokens vendor's token endpoint.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8765, help="port to listen on, 0 for a free one (default: %(default)s)"
    )
    parser.add_argument(
        "--log-level", default="warning", choices=_LOG_LEVELS, help="uvicorn log level (default: %(default)s)"
    )
    return parser.parse_args(argv)


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
    config = uvicorn.Config(
        create_app(),
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
        print(
            f"airflow-tokens emulator listening on {format_url(args.host, sock.getsockname()[1])}", flush=True
        )
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

"""Emulate every vendor's token endpoint locally: a FastAPI app, its state, a server and a client.

- :class:`EmulatorState` keeps counts, the request log, fault queues, issued tokens, extra
  credentials and per-vendor configuration, behind one lock.
- :func:`create_app` builds the FastAPI app: one token route per vendor (from
  :data:`airflow_tokens.testing._vendors.VENDOR_TABLE`), two protected resources, a small job API
  (``POST /jobs``, ``GET /jobs/{id}``, bearer token required) and the admin API under ``/_emulator/``.
- :class:`EmulatorServer` runs the app with uvicorn in a daemon thread on a free local port.
- :class:`EmulatorClient` drives a running emulator through the admin API; :class:`Fault` builds
  the faults it injects.

This module never imports Airflow.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import functools
import json
import logging
import math
import random
import socket
import threading
import time
from collections import deque
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any, Final

import requests as _http
import uvicorn
from fastapi import FastAPI, HTTPException
from starlette.requests import Request  # noqa: TC002 - FastAPI resolves endpoint annotations at runtime
from starlette.responses import JSONResponse, Response

from airflow_tokens.testing._vendors import VENDOR_TABLE, Reply, TokenRequest, Vendor, VendorContext
from airflow_tokens.testing.constants import (
    EMULATOR_CLIENT_ID,
    EMULATOR_CLIENT_SECRET,
    EMULATOR_KEY_ID,
    EMULATOR_PRIVATE_KEY,
    VENDORS,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping
    from types import TracebackType

    from starlette.types import Receive, Scope, Send

    from airflow_tokens.testing._vendors import VendorConfig

__all__ = [
    "EmulatorClient",
    "EmulatorError",
    "EmulatorServer",
    "EmulatorState",
    "Fault",
    "bind_socket",
    "create_app",
    "format_url",
]

logger = logging.getLogger(__name__)

ADMIN_PREFIX: Final = "/_emulator"
_LOG_LIMIT: Final = 10_000
_TOKEN_PRUNE_THRESHOLD: Final = 10_000
_INVALID_TOKEN_BODY: Final = {
    "statusCode": 401,
    "error": "Unauthorized",
    "message": "Invalid or expired token",
}
_UVICORN_INCOMPLETE_MESSAGE: Final = "ASGI callable returned without completing response."
#: A job reports ``running`` to this many status reads, unless its ``POST /jobs`` body says otherwise.
DEFAULT_JOB_POLLS: Final = 3


class EmulatorError(RuntimeError):
    """Signal that the emulator could not start or refused an admin call."""


# ------------------------------------------------------------------------------------- faults

_FAULT_KEYS: Final = frozenset({"status", "headers", "body", "json", "delay", "reset", "patch"})


@dataclasses.dataclass(frozen=True)
class _FaultSpec:
    """Hold one validated fault (see :class:`Fault` for the meaning of each field)."""

    status: int | None
    headers: dict[str, str]
    body: str | None
    json: Any
    has_json: bool
    delay: float
    reset: bool
    patch: dict[str, Any] | None


@functools.cache
def _emulator_public_key() -> str:
    """Return the PEM public key of :data:`EMULATOR_PRIVATE_KEY`."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(EMULATOR_PRIVATE_KEY.encode(), password=None)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return public.decode()


def _parse_fault(raw: Mapping[str, Any]) -> _FaultSpec:
    """Validate a fault dict; raise :class:`ValueError` on unknown keys or wrong types."""
    if not isinstance(raw, dict):
        raise ValueError(f"a fault must be a JSON object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _FAULT_KEYS)
    if unknown:
        raise ValueError(f"unknown fault keys {unknown}; allowed: {sorted(_FAULT_KEYS)}")
    status = raw.get("status")
    if status is not None and (
        isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599
    ):
        raise ValueError(f"fault 'status' must be an integer HTTP status, got {status!r}")
    headers = raw.get("headers") or {}
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise ValueError("fault 'headers' must map header names to string values")
    body = raw.get("body")
    if body is not None and not isinstance(body, str):
        raise ValueError("fault 'body' must be a string (raw response text)")
    has_json = raw.get("json") is not None
    delay = raw.get("delay") or 0.0
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not math.isfinite(delay) or delay < 0:
        raise ValueError(f"fault 'delay' must be a non-negative number of seconds, got {delay!r}")
    reset = raw.get("reset", False)
    if not isinstance(reset, bool):
        raise ValueError("fault 'reset' must be a boolean")
    patch = raw.get("patch")
    if patch is not None and not isinstance(patch, dict):
        raise ValueError("fault 'patch' must be an object of fields to overwrite (null deletes)")
    if sum((body is not None, has_json, patch is not None)) > 1:
        raise ValueError("a fault sets at most one of 'body', 'json' and 'patch'")
    return _FaultSpec(
        status=status,
        headers={k.lower(): v for k, v in headers.items()},
        body=body,
        json=copy.deepcopy(raw.get("json")),
        has_json=has_json,
        delay=float(delay),
        reset=reset,
        patch=copy.deepcopy(patch),
    )


class Fault:
    """Build fault dicts for :meth:`EmulatorClient.inject` and :meth:`EmulatorState.inject`.

    Each well-formed token request of a vendor consumes that vendor's next queued fault; with the
    queue empty the vendor behaves normally. A request the vendor's documented shape does not
    allow is answered with the vendor's own rejection, fault or not, is logged with ``"valid":
    false`` and leaves the queue as it was. A fault is a plain dict with the keys ``status`` (default
    200), ``headers``, ``body`` (raw text), ``json``, ``delay`` (seconds before answering),
    ``reset`` (drop the connection mid-body) and ``patch`` (overwrite fields of the normal
    success body, ``None`` deleting one, a dotted name such as ``data.session.value`` reaching into
    nested objects). An error ``status`` alone answers with the vendor's own
    error body for that status. Combine faults by merging dicts, e.g.
    ``{**Fault.delay(2), **Fault.status(503)}``.
    """

    @classmethod
    def ok(cls) -> dict[str, Any]:
        """Answer normally (a no-op fault, to interleave with others)."""
        return {}

    @classmethod
    def status(cls, code: int, retry_after: float | str | datetime | None = None) -> dict[str, Any]:
        """Answer ``code`` with the vendor's error body, optionally with ``Retry-After``.

        ``retry_after`` is seconds (a number), an HTTP-date (a :class:`~datetime.datetime`), or
        the header's raw text.
        """
        fault: dict[str, Any] = {"status": code}
        if retry_after is not None:
            fault["headers"] = {"Retry-After": _retry_after_value(retry_after)}
        return fault

    @classmethod
    def delay(cls, seconds: float) -> dict[str, Any]:
        """Answer normally after ``seconds`` (without blocking other requests)."""
        return {"delay": seconds}

    @classmethod
    def html(cls, status: int = 200) -> dict[str, Any]:
        """Answer an HTML page (a proxy or maintenance page) instead of JSON."""
        page = (
            "<!DOCTYPE html>\n<html><head><title>Service maintenance</title></head>"
            "<body><h1>We'll be back soon</h1><p>The service is down for maintenance.</p></body></html>\n"
        )
        return cls.body(status, page, "text/html; charset=utf-8")

    @classmethod
    def truncated(cls) -> dict[str, Any]:
        """Answer 200 with a JSON content type and a body cut short: ``{"token": "abc``."""
        return cls.body(200, '{"token": "abc', "application/json")

    @classmethod
    def patch(cls, fields: Mapping[str, Any] | None = None, /, **more: Any) -> dict[str, Any]:
        """Answer the normal success body with ``fields`` overwritten (``None`` deletes the key)."""
        return {"patch": {**(fields or {}), **more}}

    @classmethod
    def body(cls, status: int, text: str, content_type: str = "text/plain; charset=utf-8") -> dict[str, Any]:
        """Answer ``status`` with a raw ``text`` body of the given content type."""
        return {"status": status, "headers": {"Content-Type": content_type}, "body": text}

    @classmethod
    def json(cls, status: int, value: Any) -> dict[str, Any]:
        """Answer ``status`` with ``value`` as the JSON body."""
        return {"status": status, "json": value}

    @classmethod
    def reset(cls) -> dict[str, Any]:
        """Send the status line, headers and half the body, then close the connection."""
        return {"reset": True}


def _retry_after_value(value: float | str | datetime) -> str:
    """Render a ``Retry-After`` value: delay-seconds or an HTTP-date."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return format_datetime(moment.astimezone(UTC), usegmt=True)
    if isinstance(value, str):
        return value
    return str(max(0, math.ceil(value)))


# -------------------------------------------------------------------------------------- state


@dataclasses.dataclass(frozen=True)
class _IssuedToken:
    """Remember who issued a token and until when it is valid."""

    vendor: str
    expires_at: float


@dataclasses.dataclass
class _Job:
    """A job started through ``POST /jobs``: running until enough status reads or seconds, then done."""

    job_id: str
    payload: dict[str, Any]
    polls: int
    seconds: float | None
    fail: bool
    started: float
    reads: int = 0

    def read(self, held: bool) -> dict[str, Any]:
        """Count one status read and return the job as ``GET /jobs/{id}`` shows it (running while held)."""
        self.reads += 1
        over = not held and (
            self.reads >= self.polls
            or (self.seconds is not None and time.monotonic() - self.started >= self.seconds)
        )
        status = ("failed" if self.fail else "succeeded") if over else "running"
        answer: dict[str, Any] = {"id": self.job_id, "status": status, "polls": self.reads}
        if status == "succeeded":
            answer["result"] = {"payload": self.payload}
        elif status == "failed":
            answer["error"] = "The job failed"
        return answer


def _check_polls(polls: Any) -> int:
    if isinstance(polls, bool) or not isinstance(polls, int) or polls < 1:
        raise ValueError(f"'polls' must be a positive integer, got {polls!r}")
    return polls


def _read_job_body(body: Any, default_polls: int) -> tuple[dict[str, Any], int, float | None, bool]:
    """Read a ``POST /jobs`` body: the payload and the knobs ``polls``, ``seconds`` and ``fail``."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    payload = dict(body)
    polls = _check_polls(payload.pop("polls", default_polls))
    seconds = payload.pop("seconds", None)
    fail = payload.pop("fail", False)
    if seconds is not None and (
        isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds < math.inf
    ):
        raise ValueError(f"'seconds' must be a non-negative number, got {seconds!r}")
    if not isinstance(fail, bool):
        raise ValueError(f"'fail' must be a boolean, got {fail!r}")
    return payload, polls, None if seconds is None else float(seconds), fail


def _vendor(name: str) -> Vendor:
    """Return the vendor called ``name`` or raise :class:`ValueError`."""
    try:
        return VENDOR_TABLE[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown vendor {name!r}; expected one of {list(VENDORS)}") from None


def _validate_option(name: str, value: Any) -> Any:
    """Check one ``configure`` option's value and return it normalised."""
    if name == "lifetime":
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"'lifetime' must be a non-negative integer of seconds or null, got {value!r}")
        return value
    if name == "expires_in_as_string":
        if not isinstance(value, bool):
            raise ValueError(f"'expires_in_as_string' must be a boolean, got {value!r}")
        return value
    if name == "expires_at_unit":
        if value not in ("s", "ms"):
            raise ValueError(f"'expires_at_unit' must be 's' or 'ms', got {value!r}")
        return value
    if name == "basic_auth_encoding":
        if value not in ("either", "form", "raw"):
            raise ValueError(f"'basic_auth_encoding' must be 'either', 'form' or 'raw', got {value!r}")
        return value
    raise ValueError(f"unknown option {name!r}")  # pragma: no cover - filtered by the caller


@dataclasses.dataclass
class _Chaos:
    """
    Fail a vendor's token requests at random, and all of them during outages.

    :param p503: the share of requests answered 503.
    :param p429: the share answered 429 with ``Retry-After``.
    :param retry_after: the ``Retry-After`` seconds of those 429s.
    :param outages: ``[start, end]`` epoch seconds during which every request is answered 503.
    :param seed: the random generator's seed (the same seed, the same draws).
    """

    p503: float = 0.0
    p429: float = 0.0
    retry_after: float = 1.0
    outages: list[list[float]] = dataclasses.field(default_factory=list)
    seed: int = 0
    drawn: dict[str, int] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    @classmethod
    def parse(cls, settings: Mapping[str, Any]) -> _Chaos:
        """Check the settings; raise :class:`ValueError` on anything else."""
        unknown = sorted(set(settings) - {"p503", "p429", "retry_after", "outages", "seed"})
        if unknown:
            raise ValueError(f"unknown chaos settings {unknown}")
        chaos = cls(**{key: settings[key] for key in settings})
        if not (0 <= chaos.p503 <= 1 and 0 <= chaos.p429 <= 1 and chaos.p503 + chaos.p429 <= 1):
            raise ValueError("'p503' and 'p429' are shares between 0 and 1, 1 at most together")
        if not all(isinstance(w, list) and len(w) == 2 and w[0] <= w[1] for w in chaos.outages):
            raise ValueError("'outages' is a list of [start, end] epoch seconds")
        return chaos

    def draw(self, now: float) -> _FaultSpec | None:
        """Return the fault for a request arriving at ``now``, or None to answer normally."""
        if any(start <= now < end for start, end in self.outages):
            kind, fault = "outage", Fault.status(503)
        else:
            roll = self._random.random()
            if roll < self.p503:
                kind, fault = "503", Fault.status(503)
            elif roll < self.p503 + self.p429:
                kind, fault = "429", Fault.status(429, retry_after=self.retry_after)
            else:
                return None
        self.drawn[kind] = self.drawn.get(kind, 0) + 1
        return _parse_fault(fault)


class EmulatorState:
    """Hold everything the emulator remembers; every method is thread-safe.

    The defaults after construction or :meth:`reset`: no requests counted or logged, no faults
    queued, no tokens issued, no jobs, each vendor accepting only
    (:data:`~airflow_tokens.testing.EMULATOR_CLIENT_ID`,
    :data:`~airflow_tokens.testing.EMULATOR_CLIENT_SECRET`) with its documented behaviour.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._token_requests: dict[str, int] = {}
        self._invalid_requests: dict[str, int] = {}
        self._resource_requests = 0
        self._log: deque[dict[str, Any]] = deque(maxlen=_LOG_LIMIT)
        self._api_calls: deque[dict[str, Any]] = deque(maxlen=_LOG_LIMIT)
        self._faults: dict[str, deque[_FaultSpec]] = {}
        self._tokens: dict[str, _IssuedToken] = {}
        self._issued: list[str] = []
        self._credentials: dict[str, set[tuple[str, str]]] = {}
        self._config: dict[str, VendorConfig] = {}
        self._jobs: dict[str, _Job] = {}
        self._job_requests: dict[str, int] = {}
        self._job_polls = DEFAULT_JOB_POLLS
        self._jobs_held = False
        self._chaos: dict[str, _Chaos] = {}
        self._jwt_keys: dict[str, list[tuple[str, str | None, str]]] = {}
        self._jtis: set[str] = set()
        self.reset()

    def reset(self) -> None:
        """Forget counts, the request log, faults, issued tokens, extra credentials, config and jobs."""
        with self._lock:
            self._jobs.clear()
            self._job_requests = {"start": 0, "status": 0}
            self._job_polls = DEFAULT_JOB_POLLS
            self._jobs_held = False
            self._token_requests = dict.fromkeys(VENDORS, 0)
            self._invalid_requests = dict.fromkeys(VENDORS, 0)
            self._resource_requests = 0
            self._log.clear()
            self._api_calls.clear()
            self._faults = {name: deque() for name in VENDORS}
            self._tokens.clear()
            self._issued.clear()
            self._credentials = {name: {(EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET)} for name in VENDORS}
            self._config = {name: VENDOR_TABLE[name].default_config() for name in VENDORS}
            self._chaos = {}
            self._jwt_keys = {
                name: [(EMULATOR_CLIENT_ID, EMULATOR_KEY_ID, _emulator_public_key())] for name in VENDORS
            }
            self._jtis = set()

    # -- token requests

    def begin_token_request(self, vendor: str, record: dict[str, Any]) -> _FaultSpec | None:
        """Count and log one token request; return the vendor's next queued fault if it is valid."""
        with self._lock:
            self._token_requests[vendor] += 1
            self._log.append(record)
            if not record["valid"]:
                self._invalid_requests[vendor] += 1
                return None
            queue = self._faults[vendor]
            if queue:
                return queue.popleft()
            chaos = self._chaos.get(vendor)
            return chaos.draw(time.time()) if chaos is not None else None

    def credentials_valid(self, vendor: str, client_id: str, client_secret: str) -> bool:
        """Tell whether ``vendor`` accepts this client id and secret."""
        with self._lock:
            return (client_id, client_secret) in self._credentials[_vendor(vendor).name]

    def secrets_of(self, vendor: str, client_id: str) -> list[str]:
        """Return the secrets ``vendor`` accepts from ``client_id`` (the keys of its HMAC assertions)."""
        with self._lock:
            return [secret for cid, secret in self._credentials[_vendor(vendor).name] if cid == client_id]

    def keys_of(self, vendor: str, client_id: str) -> list[tuple[str | None, str]]:
        """Return the public keys (kid, PEM) ``vendor`` accepts ``client_id``'s assertions from."""
        with self._lock:
            return [(kid, pem) for cid, kid, pem in self._jwt_keys[_vendor(vendor).name] if cid == client_id]

    def add_jwt_key(self, vendor: str, client_id: str, public_key: str, kid: str | None = None) -> None:
        """Accept ``private_key_jwt`` assertions of ``client_id`` signed with ``public_key``'s private key."""
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        try:
            load_pem_public_key(public_key.encode())
        except ValueError:
            raise ValueError("public_key is not a PEM public key (BEGIN PUBLIC KEY)") from None
        with self._lock:
            self._jwt_keys[_vendor(vendor).name].append((client_id, kid, public_key))

    def claim_jti(self, jti: str) -> bool:
        """Record an assertion ID; return False if it was seen before (a replayed assertion)."""
        with self._lock:
            if jti in self._jtis:
                return False
            self._jtis.add(jti)
            return True

    def remember_token(self, vendor: str, token: str, expires_at: float) -> None:
        """Remember a token issued by ``vendor``, valid until ``expires_at`` (epoch seconds)."""
        with self._lock:
            if len(self._tokens) >= _TOKEN_PRUNE_THRESHOLD:
                now = time.time()
                self._tokens = {k: v for k, v in self._tokens.items() if v.expires_at > now}
            self._tokens[token] = _IssuedToken(vendor, expires_at)
            self._issued.append(token)

    def context(self, vendor: Vendor) -> VendorContext:
        """Return the context a vendor route runs with."""
        name = vendor.name
        return VendorContext(
            vendor=name,
            config=self.config(name),
            default_lifetime=vendor.lifetime,
            check_credentials=lambda cid, secret: self.credentials_valid(name, cid, secret),
            register_token=lambda token, expires_at: self.remember_token(name, token, expires_at),
            secrets_of=lambda client_id: self.secrets_of(name, client_id),
            keys_of=lambda client_id: self.keys_of(name, client_id),
            claim_jti=self.claim_jti,
        )

    # -- protected resources

    def record_resource_request(self) -> None:
        """Count one request to a protected resource."""
        with self._lock:
            self._resource_requests += 1

    def record_api_call(self, request: Request) -> None:
        """Log one request to the API routes (resources, jobs): method, path, query and headers."""
        call = {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "headers": _request_headers(request),
        }
        with self._lock:
            self._api_calls.append(call)

    def api_calls(self) -> list[dict[str, Any]]:
        """Return the logged API requests, oldest first."""
        with self._lock:
            return [copy.deepcopy(call) for call in self._api_calls]

    def token_vendor(self, token: str) -> str | None:
        """Return the vendor that issued ``token`` if it is still valid, else ``None``."""
        with self._lock:
            issued = self._tokens.get(token)
        if issued is None or issued.expires_at <= time.time():
            return None
        return issued.vendor

    # -- jobs

    def count_job_request(self, kind: str) -> None:
        """Count one request to the job API (``start`` or ``status``), accepted or not."""
        with self._lock:
            self._job_requests[kind] += 1

    def configure_jobs(self, *, polls: int | None = None, hold: bool | None = None) -> dict[str, Any]:
        """Set the status reads a new job needs by default, and whether every job stays running (held)."""
        if hold is not None and not isinstance(hold, bool):
            raise ValueError(f"'hold' must be a boolean, got {hold!r}")
        with self._lock:
            if polls is not None:
                self._job_polls = _check_polls(polls)
            if hold is not None:
                self._jobs_held = hold
            return {"polls": self._job_polls, "hold": self._jobs_held}

    def jobs(self) -> list[dict[str, Any]]:
        """Return every job: its id, payload and how many status reads it had."""
        with self._lock:
            return [
                {"id": job.job_id, "payload": job.payload, "polls": job.reads} for job in self._jobs.values()
            ]

    def start_job(self, body: Any) -> dict[str, Any]:
        """Start a job from a ``POST /jobs`` body; raise :class:`ValueError` on a bad body."""
        with self._lock:
            default_polls = self._job_polls
        payload, polls, seconds, fail = _read_job_body(body, default_polls)
        with self._lock:
            job_id = f"job-{len(self._jobs) + 1}"
            self._jobs[job_id] = _Job(job_id, payload, polls, seconds, fail, time.monotonic())
        return {"id": job_id, "status": "running"}

    def read_job(self, job_id: str) -> dict[str, Any] | None:
        """Count a status read of ``job_id`` and return its state, or ``None`` for an unknown job."""
        with self._lock:
            job = self._jobs.get(job_id)
            return None if job is None else job.read(self._jobs_held)

    def revoke(self, vendor: str | None = None) -> int:
        """Invalidate every issued token (of one vendor, if given); return how many."""
        with self._lock:
            if vendor is None:
                count = len(self._tokens)
                self._tokens.clear()
                return count
            name = _vendor(vendor).name
            doomed = [token for token, issued in self._tokens.items() if issued.vendor == name]
            for token in doomed:
                del self._tokens[token]
            return len(doomed)

    # -- admin

    def stats(self) -> dict[str, Any]:
        """Return request counts: ``{"token_requests": {vendor: n}, "resource_requests": n, ...}``."""
        with self._lock:
            return {
                "token_requests": dict(self._token_requests),
                "invalid_requests": dict(self._invalid_requests),
                "resource_requests": self._resource_requests,
                "job_requests": dict(self._job_requests),
                "jobs_started": len(self._jobs),
                "faults_pending": {name: len(queue) for name, queue in self._faults.items()},
                "tokens_issued": len(self._tokens),
            }

    def requests(self, vendor: str | None = None) -> list[dict[str, Any]]:
        """Return the logged token requests, oldest first, of one vendor or of all."""
        name = None if vendor is None else _vendor(vendor).name
        with self._lock:
            return [copy.deepcopy(r) for r in self._log if name is None or r["vendor"] == name]

    def issued_tokens(self) -> list[str]:
        """Return every token value issued since the last reset, oldest first (revoked and expired too)."""
        with self._lock:
            return list(self._issued)

    def chaos(self, vendor: str, **settings: Any) -> dict[str, Any]:
        """Make ``vendor`` fail at random or for a while (:meth:`EmulatorClient.chaos`); none to stop."""
        name = _vendor(vendor).name
        with self._lock:
            if not settings:  # stop; say what was drawn
                ended = self._chaos.pop(name, None)
                return dataclasses.asdict(ended) if ended is not None else {}
            self._chaos[name] = _Chaos.parse(settings)
            return dataclasses.asdict(self._chaos[name])

    def inject(self, vendor: str, *faults: Mapping[str, Any]) -> int:
        """Queue faults for ``vendor``'s next token requests; return the queue's length."""
        name = _vendor(vendor).name
        specs = [_parse_fault(fault) for fault in faults]
        with self._lock:
            self._faults[name].extend(specs)
            return len(self._faults[name])

    def add_credentials(self, vendor: str, client_id: str, client_secret: str) -> None:
        """Make ``vendor`` also accept this client id and secret."""
        name = _vendor(vendor).name
        if not isinstance(client_id, str) or not isinstance(client_secret, str):
            raise ValueError("client_id and client_secret must be strings")
        with self._lock:
            self._credentials[name].add((client_id, client_secret))

    def config(self, vendor: str) -> VendorConfig:
        """Return ``vendor``'s current configuration."""
        name = _vendor(vendor).name
        with self._lock:
            return self._config[name]

    def configure(self, vendor: str, **options: Any) -> VendorConfig:
        """Change some of ``vendor``'s options (``lifetime=None`` restores the default lifetime)."""
        spec = _vendor(vendor)
        unknown = sorted(set(options) - spec.options)
        if unknown:
            raise ValueError(
                f"vendor {spec.name!r} has no option(s) {unknown}; it has {sorted(spec.options)}"
            )
        updates = {name: _validate_option(name, value) for name, value in options.items()}
        with self._lock:
            self._config[spec.name] = dataclasses.replace(self._config[spec.name], **updates)
            return self._config[spec.name]


# ---------------------------------------------------------------------------------------- app


class _ResetLogFilter(logging.Filter):
    """Hide uvicorn's complaint about the responses the emulator truncates on purpose."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._expected = 0

    def expect(self) -> None:
        """Announce one deliberately incomplete response."""
        with self._lock:
            self._expected += 1

    def filter(self, record: logging.LogRecord) -> bool:
        """Drop the record if it reports a deliberately incomplete response."""
        if record.msg != _UVICORN_INCOMPLETE_MESSAGE:
            return True
        with self._lock:
            if self._expected:
                self._expected -= 1
                return False
        return True


_RESET_LOG_FILTER: Final = _ResetLogFilter()


def _install_reset_log_filter() -> None:
    """Attach the reset filter to uvicorn's error logger once."""
    uvicorn_logger = logging.getLogger("uvicorn.error")
    if _RESET_LOG_FILTER not in uvicorn_logger.filters:
        uvicorn_logger.addFilter(_RESET_LOG_FILTER)


class _TruncatedResponse(Response):
    """Send the status line, headers and half the body, then return so the connection drops."""

    def __init__(self, status_code: int, headers: Mapping[str, str], content: bytes) -> None:
        super().__init__(status_code=status_code)
        self._full_headers = {k: v for k, v in headers.items() if k != "content-length"}
        self._content = content

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Announce the full length, send half, and leave the response incomplete."""
        declared = len(self._content) if self._content else 64
        raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self._full_headers.items()]
        raw_headers.append((b"content-length", str(declared).encode("ascii")))
        _RESET_LOG_FILTER.expect()
        await send({"type": "http.response.start", "status": self.status_code, "headers": raw_headers})
        await send(
            {
                "type": "http.response.body",
                "body": self._content[: len(self._content) // 2],
                "more_body": True,
            }
        )
        # Returning now leaves the response incomplete: uvicorn closes the connection.


def _request_headers(request: Request) -> dict[str, str]:
    """Return the request headers with lower-cased names, repeated ones joined by ``", "``."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in request.headers.raw:
        name = raw_name.decode("latin-1").lower()
        try:
            value = raw_value.decode("utf-8")
        except UnicodeDecodeError:
            value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


async def _pause(request: Request, seconds: float) -> bool:
    """Sleep ``seconds``; return ``False`` early if the client disconnects meanwhile."""

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(disconnected())
    try:
        done, _ = await asyncio.wait({watcher}, timeout=seconds)
        return not done
    finally:
        watcher.cancel()


def _patched(body: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``body`` with ``patch`` applied: values overwrite, ``None`` deletes, a dotted key reaches in."""
    result = copy.deepcopy(body)
    for key, value in patch.items():
        *parents, name = key.split(".")
        target: Any = result
        for parent in parents:
            target = target.get(parent) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            continue
        if value is None:
            target.pop(name, None)
        else:
            target[name] = copy.deepcopy(value)
    return result


def _serialize(reply: Reply) -> tuple[int, dict[str, str], bytes]:
    """Turn a reply into a status, headers and body bytes (JSON unless the body is ``None``)."""
    headers = dict(reply.headers)
    if reply.body is None:
        return reply.status, headers, b""
    headers.setdefault("content-type", "application/json")
    return reply.status, headers, json.dumps(reply.body, ensure_ascii=False, separators=(",", ":")).encode()


def _answer(state: EmulatorState, vendor: Vendor, request: TokenRequest, fault: _FaultSpec | None) -> Reply:
    """Compute the reply to a token request, with the fault (if any) applied."""
    if fault is None:
        return vendor.route(request, state.context(vendor))
    if fault.has_json:
        reply = Reply(fault.status or 200, fault.json)
    elif fault.patch is not None:
        reply = vendor.route(request, state.context(vendor))
        if reply.ok and isinstance(reply.body, dict):
            reply.body = _patched(reply.body, fault.patch)
        if fault.status is not None:
            reply.status = fault.status
    elif fault.status is not None and fault.status != 200:
        reply = Reply(fault.status, vendor.error_body(fault.status) if fault.status >= 400 else None)
    else:
        reply = vendor.route(request, state.context(vendor))
    reply.headers.update(fault.headers)
    return reply


def _token_endpoint(state: EmulatorState, vendor: Vendor) -> Callable[[Request], Awaitable[Response]]:
    """Build the FastAPI endpoint serving ``vendor``'s token route."""

    async def endpoint(request: Request) -> Response:
        token_request = TokenRequest(
            method=request.method,
            path=request.url.path,
            headers=_request_headers(request),
            body=await request.body(),
        )
        rejection = vendor.check(token_request)
        record = token_request.log_record(vendor.name, valid=rejection is None)
        # Where the request came from: which process sent it (e.g. one hanging on a delay) can be found.
        record["client"] = None if request.client is None else [request.client.host, request.client.port]
        fault = state.begin_token_request(vendor.name, record)
        if rejection is not None:
            status, headers, content = _serialize(rejection)
            record["status"] = status
            return Response(content, status_code=status, headers=headers)
        # The status it is answered with (the record is the one in the log): which requests got a token.
        record["status"] = (fault.status if fault is not None else None) or 200
        if fault is not None and fault.delay > 0 and not await _pause(request, fault.delay):
            return Response(status_code=499)  # the client gave up; nobody reads this
        if fault is not None and fault.body is not None:
            headers = {"content-type": "text/plain; charset=utf-8", **fault.headers}
            status, content = fault.status or 200, fault.body.encode()
        else:
            status, headers, content = _serialize(_answer(state, vendor, token_request, fault))
        if fault is not None and fault.reset:
            return _TruncatedResponse(status, headers, content)
        return Response(content, status_code=status, headers=headers)

    endpoint.__name__ = endpoint.__qualname__ = f"token_{vendor.name}"
    endpoint.__doc__ = vendor.route.__doc__
    return endpoint


def _bearer_token(authorization: str) -> str | None:
    """Return the token of an ``Authorization: Bearer <token>`` header, or ``None``."""
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _issuer(state: EmulatorState, request: Request) -> str | None:
    """Return the vendor that issued the request's valid bearer token, or ``None``."""
    token = _bearer_token(request.headers.get("authorization", ""))
    return state.token_vendor(token) if token else None


def _refused() -> Response:
    """Answer 401 to a request without a valid bearer token."""
    return JSONResponse(
        _INVALID_TOKEN_BODY, status_code=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
    )


def _resource_endpoint(state: EmulatorState, vendor: str | None) -> Callable[[Request], Awaitable[Response]]:
    """Build a protected resource accepting tokens issued by ``vendor`` (any vendor if ``None``)."""

    async def endpoint(request: Request) -> Response:
        state.record_resource_request()
        state.record_api_call(request)
        issuer = _issuer(state, request)
        if issuer is None or (vendor is not None and issuer != vendor):
            return _refused()
        return JSONResponse({"ok": True, "vendor": issuer})

    return endpoint


def _job_routes(app: FastAPI, state: EmulatorState) -> None:
    """Register the job API: start a job, read its status (a token of any vendor is accepted)."""

    @app.post("/jobs", status_code=201, tags=["jobs"], response_model=None)
    async def start_job(request: Request) -> dict[str, Any] | Response:
        """Start a job; the JSON body is its payload, with ``polls``, ``seconds`` and ``fail`` as knobs.

        The job reports ``running`` until its ``polls``-th status read (default 3) or until ``seconds``
        have passed, then ``succeeded`` (``failed`` with ``"fail": true``).
        """
        state.count_job_request("start")
        state.record_api_call(request)
        if _issuer(state, request) is None:
            return _refused()
        try:
            return state.start_job(await _json_object(request))
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None

    @app.get("/jobs/{job_id}", tags=["jobs"], response_model=None)
    async def read_job(job_id: str, request: Request) -> dict[str, Any] | Response:
        """Return the job's ``status`` (``running``, ``succeeded``, ``failed``) and its result."""
        state.count_job_request("status")
        state.record_api_call(request)
        if _issuer(state, request) is None:
            return _refused()
        job = state.read_job(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id!r}")
        return job


async def _json_object(request: Request) -> dict[str, Any]:
    """Return the request's JSON object body (empty body -> ``{}``), or fail with 400."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise HTTPException(400, "the body must be a JSON object") from None
    if not isinstance(value, dict):
        raise HTTPException(400, "the body must be a JSON object")
    return value


def _admin_routes(app: FastAPI, state: EmulatorState) -> None:
    """Register the admin API under ``/_emulator/``."""

    def bad_request(exc: ValueError) -> HTTPException:
        return HTTPException(400, str(exc))

    def text_field(payload: Mapping[str, Any], name: str) -> str:
        value = payload.get(name)
        if not isinstance(value, str):
            raise HTTPException(400, f"{name!r} must be a string")
        return value

    @app.get(f"{ADMIN_PREFIX}/health")
    async def health() -> dict[str, Any]:
        """Tell that the emulator is up and where each vendor's token endpoint is."""
        return {"status": "ok", "vendors": {name: VENDOR_TABLE[name].path for name in VENDORS}}

    @app.post(f"{ADMIN_PREFIX}/reset")
    async def reset() -> dict[str, Any]:
        """Reset counts, the request log, faults, issued tokens, extra credentials and config."""
        state.reset()
        return {"ok": True}

    @app.get(f"{ADMIN_PREFIX}/stats")
    async def stats() -> dict[str, Any]:
        """Return token request counts per vendor and the protected resource request count."""
        return state.stats()

    @app.get(f"{ADMIN_PREFIX}/requests")
    async def requests_log(vendor: str | None = None) -> list[dict[str, Any]]:
        """Return the recorded token requests (of one vendor with ``?vendor=``)."""
        try:
            return state.requests(vendor)
        except ValueError as exc:
            raise bad_request(exc) from None

    @app.get(f"{ADMIN_PREFIX}/api-calls")
    async def api_calls() -> list[dict[str, Any]]:
        """Return the recorded requests to the API routes (resources, jobs), headers included."""
        return state.api_calls()

    @app.get(f"{ADMIN_PREFIX}/issued")
    async def issued() -> list[str]:
        """Return every token value issued since the last reset, oldest first (for leak audits)."""
        return state.issued_tokens()

    @app.post(f"{ADMIN_PREFIX}/faults")
    async def faults(request: Request) -> dict[str, Any]:
        """Queue faults: ``{"vendor": name, "faults": [fault, ...]}``."""
        payload = await _json_object(request)
        items = payload.get("faults")
        if not isinstance(items, list):
            raise HTTPException(400, "'faults' must be a list of fault objects")
        try:
            return {"ok": True, "pending": state.inject(text_field(payload, "vendor"), *items)}
        except ValueError as exc:
            raise bad_request(exc) from None

    @app.post(f"{ADMIN_PREFIX}/chaos")
    async def chaos(request: Request) -> dict[str, Any]:
        """Fail at random: ``{"vendor", "p503", "p429", "retry_after", "outages", "seed"}``."""
        payload = await _json_object(request)
        settings = {key: value for key, value in payload.items() if key != "vendor"}
        try:
            return state.chaos(text_field(payload, "vendor"), **settings)
        except TypeError as exc:  # a setting of the wrong kind
            raise bad_request(ValueError(str(exc))) from None
        except ValueError as exc:
            raise bad_request(exc) from None

    @app.post(f"{ADMIN_PREFIX}/credentials")
    async def credentials(request: Request) -> dict[str, Any]:
        """Accept one more pair: ``{"vendor", "client_id", "client_secret"}``."""
        payload = await _json_object(request)
        try:
            state.add_credentials(
                text_field(payload, "vendor"),
                text_field(payload, "client_id"),
                text_field(payload, "client_secret"),
            )
        except ValueError as exc:
            raise bad_request(exc) from None
        return {"ok": True}

    @app.post(f"{ADMIN_PREFIX}/jwt-keys")
    async def jwt_keys(request: Request) -> dict[str, Any]:
        """Accept assertions signed by a key: ``{"vendor", "client_id", "public_key", "kid"}``."""
        payload = await _json_object(request)
        kid = payload.get("kid")
        try:
            state.add_jwt_key(
                text_field(payload, "vendor"),
                text_field(payload, "client_id"),
                text_field(payload, "public_key"),
                kid if isinstance(kid, str) else None,
            )
        except ValueError as exc:
            raise bad_request(exc) from None
        return {"ok": True}

    @app.post(f"{ADMIN_PREFIX}/config")
    async def configure(request: Request) -> dict[str, Any]:
        """Change a vendor's options: ``{"vendor", "lifetime", "expires_in_as_string", ...}``."""
        payload = await _json_object(request)
        vendor = text_field(payload, "vendor")
        options = {key: value for key, value in payload.items() if key != "vendor"}
        try:
            return dataclasses.asdict(state.configure(vendor, **options))
        except ValueError as exc:
            raise bad_request(exc) from None

    @app.get(f"{ADMIN_PREFIX}/config")
    async def read_config(vendor: str) -> dict[str, Any]:
        """Return a vendor's current options."""
        try:
            return dataclasses.asdict(state.config(vendor))
        except ValueError as exc:
            raise bad_request(exc) from None

    @app.post(f"{ADMIN_PREFIX}/jobs")
    async def configure_jobs(request: Request) -> dict[str, Any]:
        """Configure the job API: ``{"polls": n, "hold": bool}`` (both optional); return the settings."""
        payload = await _json_object(request)
        unknown = sorted(set(payload) - {"polls", "hold"})
        if unknown:
            raise HTTPException(400, f"unknown job settings {unknown}; allowed: ['hold', 'polls']")
        try:
            return state.configure_jobs(**payload)
        except ValueError as exc:
            raise bad_request(exc) from None

    @app.get(f"{ADMIN_PREFIX}/jobs")
    async def list_jobs() -> list[dict[str, Any]]:
        """Return every job with its payload and the number of status reads it had."""
        return state.jobs()

    @app.post(f"{ADMIN_PREFIX}/revoke")
    async def revoke(request: Request) -> dict[str, Any]:
        """Invalidate every issued token (or only one vendor's, with ``{"vendor": name}``)."""
        payload = await _json_object(request)
        vendor = text_field(payload, "vendor") if payload.get("vendor") is not None else None
        try:
            return {"ok": True, "revoked": state.revoke(vendor)}
        except ValueError as exc:
            raise bad_request(exc) from None


def create_app(state: EmulatorState | None = None) -> FastAPI:
    """Build the emulator's FastAPI app around ``state`` (a new one by default)."""
    state = state if state is not None else EmulatorState()
    _install_reset_log_filter()
    app = FastAPI(
        title="airflow-tokens vendor token emulator",
        description="Local emulator of the token endpoints of the vendors supported by airflow-tokens.",
        redirect_slashes=False,
    )
    app.state.emulator = state
    for name in VENDORS:
        spec = VENDOR_TABLE[name]
        app.add_api_route(spec.path, _token_endpoint(state, spec), methods=["POST"], tags=["token endpoints"])
    app.add_api_route("/v2/account", _resource_endpoint(state, "sirv"), methods=["GET"], tags=["resources"])
    app.add_api_route(
        "/protected",
        _resource_endpoint(state, None),
        methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        tags=["resources"],
    )
    _job_routes(app, state)
    _admin_routes(app, state)
    return app


# ------------------------------------------------------------------------------------- server


def format_url(host: str, port: int) -> str:
    """Return ``http://host:port``, bracketing IPv6 hosts."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind and listen on ``host:port`` (``port=0``: the OS chooses a free port)."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    return socket.create_server((host, port), family=family, backlog=128)


class EmulatorServer:
    """Run the emulator with uvicorn in a daemon thread.

    Use it as a context manager or call :meth:`start` and :meth:`stop`. The state is kept
    across restarts; the port is chosen again on each start unless given.

    :param host: the interface to listen on.
    :param port: the port to listen on; 0 lets the OS choose a free one.
    :param state: the state to serve (a new :class:`EmulatorState` by default).
    :param log_level: uvicorn's log level (uvicorn's loggers propagate to the host's logging).
    :param startup_timeout: seconds to wait for the server to accept connections.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        state: EmulatorState | None = None,
        log_level: str = "warning",
        startup_timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.state = state if state is not None else EmulatorState()
        self.app = create_app(self.state)
        self._requested_port = port
        self._log_level = log_level
        self._startup_timeout = startup_timeout
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self._socket: socket.socket | None = None

    @property
    def running(self) -> bool:
        """Tell whether the server thread is serving."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def port(self) -> int:
        """Return the port the server listens on."""
        if self._port is None:
            raise EmulatorError("the emulator server is not started")
        return self._port

    @property
    def url(self) -> str:
        """Return the base URL, e.g. ``http://127.0.0.1:54321``."""
        return format_url(self.host, self.port)

    @property
    def client(self) -> EmulatorClient:
        """Return an admin client for this server."""
        return EmulatorClient(self.url)

    def token_url(self, vendor: str) -> str:
        """Return the full URL of ``vendor``'s token endpoint."""
        return self.url + _vendor(vendor).path

    def start(self) -> EmulatorServer:
        """Start serving (no-op if already running) and wait until connections are accepted."""
        with self._lock:
            if self.running:
                return self
            sock = bind_socket(self.host, self._requested_port)
            config = uvicorn.Config(
                self.app,
                log_level=self._log_level,
                log_config=None,
                access_log=False,
                lifespan="off",
                timeout_graceful_shutdown=2,
            )
            server = uvicorn.Server(config)
            port = int(sock.getsockname()[1])
            thread = threading.Thread(
                target=server.run,
                kwargs={"sockets": [sock]},
                name=f"airflow-tokens-emulator-{port}",
                daemon=True,
            )
            thread.start()
            deadline = time.monotonic() + self._startup_timeout
            while not server.started:
                if not thread.is_alive() or time.monotonic() > deadline:
                    server.should_exit = True
                    thread.join(self._startup_timeout)
                    sock.close()
                    raise EmulatorError(f"the emulator server did not start on {format_url(self.host, port)}")
                time.sleep(0.005)
            self._server, self._thread, self._port, self._socket = server, thread, port, sock
        logger.debug("Token emulator listening on %s", self.url)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the server down cleanly and join its thread (no-op if not running)."""
        with self._lock:
            server, thread, sock = self._server, self._thread, self._socket
            self._server, self._thread, self._socket = None, None, None
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():
            logger.warning("Token emulator on port %s did not stop in %ss; forcing it", self._port, timeout)
            server.force_exit = True
            thread.join(timeout)
        if sock is not None:
            sock.close()
        logger.debug("Token emulator on port %s stopped", self._port)

    def __enter__(self) -> EmulatorServer:
        """Start the server."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()

    def __repr__(self) -> str:
        """Show where the server listens."""
        where = self.url if self._port is not None and self.running else "stopped"
        return f"{type(self).__name__}({where})"


# ------------------------------------------------------------------------------------- client


class EmulatorClient:
    """Drive a running emulator through its admin API (``/_emulator/...``).

    :param url: the emulator's base URL, e.g. ``http://127.0.0.1:8765``.
    :param timeout: seconds to wait for each admin call.
    """

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def __repr__(self) -> str:
        """Show which emulator the client drives."""
        return f"{type(self).__name__}({self.url!r})"

    def _call(
        self, method: str, path: str, *, body: Any = None, params: Mapping[str, str] | None = None
    ) -> Any:
        """Call one admin endpoint and return its JSON answer; raise :class:`EmulatorError`."""
        response = _http.request(
            method,
            f"{self.url}{ADMIN_PREFIX}/{path}",
            json=body,
            params=params,
            timeout=self.timeout,
        )
        if not response.ok:
            raise EmulatorError(
                f"{method} {ADMIN_PREFIX}/{path} failed: {response.status_code} {response.text}"
            )
        return response.json()

    def token_url(self, vendor: str) -> str:
        """Return the full URL of ``vendor``'s token endpoint."""
        return self.url + _vendor(vendor).path

    def health(self) -> dict[str, Any]:
        """Return ``{"status": "ok", "vendors": {name: token path}}``."""
        result: dict[str, Any] = self._call("GET", "health")
        return result

    def reset(self) -> None:
        """Reset counts, the request log, faults, issued tokens, extra credentials and config."""
        self._call("POST", "reset")

    def stats(self) -> dict[str, Any]:
        """Return ``{"token_requests": {vendor: n}, "resource_requests": n, ...}``."""
        result: dict[str, Any] = self._call("GET", "stats")
        return result

    def token_requests(self, vendor: str) -> int:
        """Return how many token requests ``vendor``'s endpoint received."""
        return int(self.stats()["token_requests"][vendor])

    def invalid_requests(self, vendor: str) -> int:
        """Return how many of them the vendor's documented shape does not allow (rejected, fault or not)."""
        return int(self.stats()["invalid_requests"][vendor])

    def resource_requests(self) -> int:
        """Return how many protected resource requests were received."""
        return int(self.stats()["resource_requests"])

    def api_calls(self) -> list[dict[str, Any]]:
        """Return every request to the API routes (resources, jobs): method, path, query, headers."""
        result: list[dict[str, Any]] = self._call("GET", "api-calls")
        return result

    def job_requests(self) -> dict[str, int]:
        """Return how many job API requests were received: ``{"start": n, "status": n}``."""
        result: dict[str, int] = self.stats()["job_requests"]
        return result

    def jobs(self) -> list[dict[str, Any]]:
        """Return every job started: ``{"id", "payload", "polls"}`` (status reads so far)."""
        result: list[dict[str, Any]] = self._call("GET", "jobs")
        return result

    def configure_jobs(self, *, polls: int | None = None, hold: bool | None = None) -> dict[str, Any]:
        """Set the status reads a new job needs by default (3), and whether every job stays running."""
        body = {name: value for name, value in (("polls", polls), ("hold", hold)) if value is not None}
        result: dict[str, Any] = self._call("POST", "jobs", body=body)
        return result

    def requests(self, vendor: str | None = None) -> list[dict[str, Any]]:
        """Return the recorded token requests (time, method, path, headers, body, json, form, client)."""
        result: list[dict[str, Any]] = self._call(
            "GET", "requests", params=None if vendor is None else {"vendor": vendor}
        )
        return result

    def issued_tokens(self) -> list[str]:
        """Return every token value the emulator issued since the last reset, oldest first."""
        result: list[str] = self._call("GET", "issued")
        return result

    def inject(self, vendor: str, *faults: Mapping[str, Any]) -> None:
        """Queue faults (see :class:`Fault`) for ``vendor``'s next token requests, in order."""
        self._call("POST", "faults", body={"vendor": vendor, "faults": [dict(fault) for fault in faults]})

    def chaos(self, vendor: str, **settings: Any) -> dict[str, Any]:
        """
        Make ``vendor``'s token endpoint fail when no fault is queued; with no settings, stop.

        ``p503`` and ``p429`` are the shares of requests answered 503 and 429 (with ``Retry-After:
        retry_after`` seconds); ``outages`` lists ``[start, end]`` epoch seconds during which every
        request is answered 503; ``seed`` makes the draws repeatable. Returns the settings, with
        ``drawn``: how many of each kind were answered (when stopping: in all).
        """
        result: dict[str, Any] = self._call("POST", "chaos", body={"vendor": vendor, **settings})
        return result

    def add_credentials(self, vendor: str, client_id: str, client_secret: str) -> None:
        """Make ``vendor`` also accept this client id and secret."""
        self._call(
            "POST",
            "credentials",
            body={"vendor": vendor, "client_id": client_id, "client_secret": client_secret},
        )

    def add_jwt_key(self, vendor: str, client_id: str, public_key: str, kid: str | None = None) -> None:
        """Make ``vendor`` accept ``private_key_jwt`` assertions of ``client_id`` signed by this key's owner.

        ``public_key`` is PEM (``BEGIN PUBLIC KEY``); ``kid``, if given, must match the assertion's.
        """
        self._call(
            "POST",
            "jwt-keys",
            body={"vendor": vendor, "client_id": client_id, "public_key": public_key, "kid": kid},
        )

    def configure(self, vendor: str, **options: Any) -> dict[str, Any]:
        """Set ``vendor``'s options (``lifetime``, ``expires_in_as_string``, ``expires_at_unit``, ...)."""
        result: dict[str, Any] = self._call("POST", "config", body={"vendor": vendor, **options})
        return result

    def config(self, vendor: str) -> dict[str, Any]:
        """Return ``vendor``'s current options."""
        result: dict[str, Any] = self._call("GET", "config", params={"vendor": vendor})
        return result

    def revoke(self, vendor: str | None = None) -> int:
        """Invalidate every issued token (only ``vendor``'s, if given); return how many."""
        body = {} if vendor is None else {"vendor": vendor}
        return int(self._call("POST", "revoke", body=body)["revoked"])

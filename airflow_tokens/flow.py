"""Run the package's sans-IO flows: one sync driver and one async driver, and nothing else differs.

A flow is a generator that yields effects (:class:`Send` a token request, :class:`Sleep`, :class:`Call`
a blocking function such as a Variable read) and receives their results. The token core (request,
response reading, retry decisions, cache policy, encryption, cross-host lease) is written once as
flows; :func:`run` performs the effects with ``requests`` and ``time.sleep``, :func:`arun` with
``httpx`` and ``asyncio.sleep`` and runs blocking calls off the event loop. This is the shape of
httpx's ``Auth.auth_flow``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import urlsplit

from airflow_tokens.body import ACCEPT_ENCODING, BodyReader
from airflow_tokens.request import is_loopback

if TYPE_CHECKING:
    import ssl

    from airflow_tokens.request import ClientCertificate, TokenRequest, Transport

_T = TypeVar("_T")
#: TLS contexts by ``verify`` setting and client certificate files: loading CA certificates takes tens
#: of milliseconds, done once.
_TLS_CONTEXTS: dict[tuple[bool | str, tuple[str, str] | None], ssl.SSLContext] = {}
#: What the async path imports on first use: the core's lazy imports (file lock, encryption, the async
#: session), asgiref for blocking calls, httpx's network backend and what ``BaseHook.aget_connection``
#: loads. :func:`prepare` imports them in a worker thread, where they cannot stall the event loop.
_ASYNC_IMPORTS = (
    "airflow_tokens.session",
    "asgiref.sync",
    "filelock",
    "cryptography.exceptions",
    "cryptography.hazmat.primitives.hashes",
    "cryptography.hazmat.primitives.ciphers.aead",
    "cryptography.hazmat.primitives.kdf.hkdf",
    "anyio._backends._asyncio",
    "anyio._core._sockets",
    "anyio.streams.tls",
    "airflow.sdk.definitions.connection",
    "airflow.sdk.execution_time.cache",
    "airflow.sdk.execution_time.supervisor",
)


@dataclass(frozen=True, slots=True)
class Send:
    """
    Ask the driver to send a token request once.

    :param request: the request to send.
    :param transport: the session, timeouts and TLS settings to send it with.
    """

    request: TokenRequest
    transport: Transport


@dataclass(frozen=True, slots=True)
class Sleep:
    """
    Ask the driver to wait.

    :param seconds: how long.
    """

    seconds: float


@dataclass(frozen=True, slots=True)
class Call:
    """
    Ask the driver to call a blocking function (a store read or write, a lock attempt) and return its result.

    :param fn: the function.
    :param args: its arguments.
    """

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()


Effect = Send | Sleep | Call
Flow = Generator[Effect, Any, _T]


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """
    Carry what a flow reads of an HTTP answer, whichever library received it.

    :param status: the HTTP status code.
    :param headers: the response headers (case-insensitive mapping).
    :param text: the decoded body.
    """

    status: int
    headers: Mapping[str, str] = field(repr=False)
    text: str = field(repr=False)


class SendFailed(Exception):
    """
    Report that no HTTP answer arrived (connection refused, timeout, TLS failure...).

    :param kind: the name of the transport error, for messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        super().__init__(kind)


class _Steps(Generic[_T]):
    """
    Step a flow for a driver: hand out each effect, resume the flow with its result or error.

    The driver only performs each effect, inside :meth:`performing`, and sets :attr:`result`; an
    exception there goes back into the flow. Once the flow returns, :attr:`value` is its return value.
    """

    def __init__(self, flow: Flow[_T]) -> None:
        self.flow = flow
        self.result: Any = None
        self.error: Exception | None = None
        self.value: _T

    def __iter__(self) -> Iterator[Effect]:
        while True:
            try:
                if self.error is not None:
                    effect = self.flow.throw(self.error)
                else:
                    effect = self.flow.send(self.result)
            except StopIteration as stop:
                self.value = stop.value
                return
            self.result, self.error = None, None
            yield effect

    @contextlib.contextmanager
    def performing(self) -> Iterator[None]:
        """Catch what performing the effect raises, for the flow to receive."""
        try:
            yield
        except Exception as exc:
            self.error = exc


#: Every proxy a request would otherwise take from the environment, turned off (loopback requests).
_NO_PROXIES: dict[str, str | None] = {"http": None, "https": None, "all": None}
_CHUNK = 65536


def _headers(request: TokenRequest) -> dict[str, str]:
    """Return the request's headers with the encodings the body reader undoes."""
    return {"Accept-Encoding": ACCEPT_ENCODING, **request.headers}


def _deadline_passed(transport: Transport) -> SendFailed:
    """Return the failure of an answer not read in full within ``read_timeout``: a read timeout too."""
    return SendFailed("ReadTimeout")


def _receive(
    transport: Transport, request: TokenRequest, deadline: float, stop: threading.Event
) -> HttpResponse:
    """Send once with requests and read the answer chunk by chunk, within the size limit and deadline."""
    import requests
    import urllib3

    try:
        response = transport.requests_session.request(
            request.method,
            request.url,
            headers=_headers(request),
            json=request.json,
            data=request.data,
            # RFC 7617: Basic credentials are UTF-8 (requests would encode str as Latin-1).
            auth=tuple(part.encode() for part in request.auth) if request.auth else None,  # type: ignore[arg-type]
            timeout=transport.timeout,
            verify=transport.verify,
            cert=(request.cert.cert_file, request.cert.key_file) if request.cert else None,
            allow_redirects=False,
            stream=True,
            proxies=_NO_PROXIES if is_loopback(urlsplit(request.url).hostname) else transport.proxies,  # type: ignore[arg-type]
        )
    except requests.RequestException as exc:
        raise SendFailed(type(exc).__name__) from None
    try:
        body = BodyReader(response.headers, transport.max_body)
        while chunk := response.raw.read1(_CHUNK, decode_content=False):
            body.feed(chunk)
            if stop.is_set() or time.monotonic() > deadline:
                raise _deadline_passed(transport)
        return HttpResponse(response.status_code, response.headers, body.text())
    except urllib3.exceptions.ReadTimeoutError:
        raise SendFailed("ReadTimeout") from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise SendFailed(type(exc).__name__) from None
    finally:
        response.close()


def _send(transport: Transport, request: TokenRequest) -> HttpResponse:
    """Send once and return the answer, or raise, within ``read_timeout`` in all.

    The socket timeouts bound each read, not the answer: a server that drips its answer would hold
    the caller for as long as it likes. The request runs in a worker thread the caller waits for until
    the deadline; past it the worker is told to stop at its next read (a read waits ``read_timeout``
    at most) and the caller gets a timeout.
    """
    deadline = time.monotonic() + transport.timeout[1]
    stop = threading.Event()
    outcome: list[HttpResponse | BaseException] = []

    def attempt() -> None:
        try:
            outcome.append(_receive(transport, request, deadline, stop))
        except BaseException as exc:  # handed to the caller's thread
            outcome.append(exc)

    worker = threading.Thread(target=attempt, name="airflow-tokens-request", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()))
    if not outcome:
        stop.set()
        raise _deadline_passed(transport)
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result


def run(flow: Flow[_T]) -> _T:
    """Drive ``flow`` in this thread: requests for HTTP, ``time.sleep`` for waits."""
    steps = _Steps(flow)
    for effect in steps:
        with steps.performing():
            if isinstance(effect, Send):
                steps.result = _send(effect.transport, effect.request)
            elif isinstance(effect, Sleep):
                time.sleep(effect.seconds)
            else:
                steps.result = effect.fn(*effect.args)
    return steps.value


def _load(verify: bool | str, cert: tuple[str, str] | None) -> ssl.SSLContext:
    """Import what the async path needs and build the TLS context for ``verify`` (in a worker thread)."""
    import ssl

    import httpx

    for name in _ASYNC_IMPORTS:
        with contextlib.suppress(ImportError):  # a library that moved a module only costs a slower start
            importlib.import_module(name)
    if verify is True:
        context = httpx.create_ssl_context()  # certifi's CAs, or SSL_CERT_FILE / SSL_CERT_DIR
    else:
        path = str(verify)
        context = (
            ssl.create_default_context(capath=path)
            if os.path.isdir(path)
            else ssl.create_default_context(cafile=path)
        )
    if cert is not None:
        context.load_cert_chain(*cert)
    return context


async def prepare(verify: bool | str = True, cert: ClientCertificate | None = None) -> ssl.SSLContext:
    """
    Return the TLS context for ``verify`` (True or a CA bundle path) and a client certificate, built once.

    Loading CA certificates (which every new httpx client would do) and importing modules take tens of
    milliseconds, hundreds without bytecode: in the event loop's thread they would stall every coroutine.
    The first call per setting does both in a worker thread; later calls return at once.
    """
    files = (cert.cert_file, cert.key_file) if cert is not None else None
    context = _TLS_CONTEXTS.get((verify, files))
    if context is None:
        context = _TLS_CONTEXTS[verify, files] = await asyncio.to_thread(_load, verify, files)
    return context


async def _asend(transport: Transport, request: TokenRequest) -> HttpResponse:
    """Send once with httpx and read the answer within the size limit, all within ``read_timeout``."""
    import httpx

    connect, read = transport.timeout
    loopback = is_loopback(urlsplit(request.url).hostname)
    # httpx sends header values as ASCII; Latin-1 ones are sent as their bytes, as requests sends them.
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in _headers(request).items()]
    try:
        async with (
            asyncio.timeout(read),
            httpx.AsyncClient(
                verify=await prepare(transport.verify, request.cert),
                timeout=httpx.Timeout(read, connect=connect),
                follow_redirects=False,
                proxy=None if loopback else transport.proxy_for(request.url),
                trust_env=not loopback,
            ) as client,
            client.stream(
                request.method,
                request.url,
                headers=headers,
                json=request.json,
                data=request.data,
                # httpx encodes Basic credentials as UTF-8 (RFC 7617), like the sync path.
                auth=request.auth,
            ) as response,
        ):
            body = BodyReader(response.headers, transport.max_body)
            async for chunk in response.aiter_raw(_CHUNK):
                body.feed(chunk)
            return HttpResponse(response.status_code, response.headers, body.text())
    except TimeoutError:
        raise _deadline_passed(transport) from None
    except (httpx.HTTPError, httpx.InvalidURL, UnicodeError) as exc:
        raise SendFailed(type(exc).__name__) from None


async def arun(flow: Flow[_T]) -> _T:
    """Drive ``flow`` on the event loop: httpx for HTTP, ``asyncio.sleep``, blocking calls in a thread."""
    from asgiref.sync import sync_to_async

    steps = _Steps(flow)
    for effect in steps:
        with steps.performing():
            if isinstance(effect, Send):
                steps.result = await _asend(effect.transport, effect.request)
            elif isinstance(effect, Sleep):
                await asyncio.sleep(effect.seconds)
            else:
                steps.result = await sync_to_async(effect.fn)(*effect.args)
    return steps.value

"""What one token request is: its URL, headers, body and credentials, and the HTTP settings it is sent with.

Vendors build a :class:`TokenRequest` (see :mod:`airflow_tokens.endpoint`); the drivers in
:mod:`airflow_tokens.flow` send it with a :class:`Transport`. Nothing here sends anything.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from airflow_tokens.options import CONNECT_TIMEOUT, MAX_RESPONSE_BYTES, READ_TIMEOUT, default

if TYPE_CHECKING:
    import requests


class Assertion(Protocol):
    """Sign a JWT client assertion for each attempt (see :mod:`airflow_tokens.assertion`)."""

    def form_fields(self) -> dict[str, str]:
        """Return ``client_assertion_type`` and a newly signed ``client_assertion``."""

    def material(self) -> list[str]:
        """Return what of the assertion decides the token (its key as a digest)."""


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    """
    Name the files of a client certificate and its key, as both HTTP clients read them (RFC 8705).

    :param cert_file: the PEM certificate (chain).
    :param key_file: the PEM private key.
    :param digest: a digest of both, part of what decides the cache key and the sealing key.
    """

    cert_file: str
    key_file: str
    digest: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """
    Describe one token request; vendors build it, the drivers send it.

    :param url: the token endpoint.
    :param secrets: the credential values to keep out of every message (never sent by themselves).
    :param method: the HTTP method.
    :param headers: request headers.
    :param json: a JSON body, if any.
    :param data: a form body, if any.
    :param auth: HTTP Basic credentials, if any.
    :param assertion: the signer of a JWT client assertion (RFC 7523), sent fresh with every attempt.
    :param cert: the client certificate presented in the TLS handshake (RFC 8705), if any.
    """

    url: str
    secrets: tuple[str, ...] = field(repr=False)
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    json: dict[str, Any] | None = field(default=None, repr=False)
    data: dict[str, str] | None = field(default=None, repr=False)
    auth: tuple[str, str] | None = field(default=None, repr=False)
    assertion: Assertion | None = field(default=None, repr=False)
    cert: ClientCertificate | None = field(default=None, repr=False)

    def material(self) -> bytes:
        """Return everything that decides which token the vendor issues, credentials included."""
        parts: list[Any] = [self.method, self.url, self.headers, self.json, self.data, self.auth]
        if self.assertion is not None:  # its key's digest: a rotated key is another token
            parts.append(self.assertion.material())
        if self.cert is not None:
            parts.append(self.cert.digest)
        return json.dumps(parts, sort_keys=True, ensure_ascii=False).encode()

    def ready(self) -> TokenRequest:
        """Return the request as one attempt sends it: with a new client assertion, if it signs one."""
        if self.assertion is None:
            return self
        fields = self.assertion.form_fields()
        data = {**(self.data or {}), **fields}
        return dataclasses.replace(self, data=data, secrets=(*self.secrets, fields["client_assertion"]))

    def fingerprint(self) -> str:
        """Return a digest of :meth:`material`; a changed credential gives another fingerprint."""
        return hashlib.sha256(b"airflow-tokens/v1\0" + self.material()).hexdigest()[:32]


@dataclass(frozen=True)
class Transport:
    """
    Carry the HTTP settings of a hook.

    :param session: the requests session that sends sync token requests (one is made when needed).
    :param timeout: connect and read timeouts in seconds.
    :param verify: True, or the path of a CA bundle; TLS verification is never off.
    :param max_body: the most bytes of a decoded answer accepted.
    :param proxies: the proxies of the token request by scheme (``http``, ``https``, ``all``); None
        takes them from the environment (``HTTPS_PROXY``, ``NO_PROXY``...). Loopback is never proxied.
    """

    session: requests.Session | None = None
    timeout: tuple[float, float] = (default(CONNECT_TIMEOUT), default(READ_TIMEOUT))
    verify: bool | str = True
    max_body: int = int(default(MAX_RESPONSE_BYTES))
    proxies: dict[str, str] | None = None

    def proxy_for(self, url: str) -> str | None:
        """Return the configured proxy of ``url``'s scheme, if any (the environment's are the client's)."""
        if not self.proxies:
            return None
        return self.proxies.get(urlsplit(url).scheme) or self.proxies.get("all")

    @cached_property
    def requests_session(self) -> requests.Session:
        """Return the given session, or a new one made on the first sync request."""
        if self.session is not None:
            return self.session
        import requests  # only a fetch needs it: a task served from a cache never imports it

        return requests.Session()


def is_loopback(hostname: str | None) -> bool:
    """Say whether ``hostname`` names this machine (``localhost`` or a loopback address)."""
    if hostname is None:
        return False
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname.strip("[]")).is_loopback
    except ValueError:
        return False

"""What one token request is: its URL, headers, body and credentials, and the HTTP settings it is sent with.

Vendors build a :class:`TokenRequest` (see :mod:`airflow_tokens.endpoint`); the drivers in
:mod:`airflow_tokens.flow` send it with a :class:`Transport`. Nothing here sends anything.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_tokens.options import CONNECT_TIMEOUT, MAX_RESPONSE_BYTES, READ_TIMEOUT, default

if TYPE_CHECKING:
    import requests


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
    """

    url: str
    secrets: tuple[str, ...] = field(repr=False)
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    json: dict[str, Any] | None = field(default=None, repr=False)
    data: dict[str, str] | None = field(default=None, repr=False)
    auth: tuple[str, str] | None = field(default=None, repr=False)

    def material(self) -> bytes:
        """Return everything that decides which token the vendor issues, credentials included."""
        return json.dumps(
            [self.method, self.url, self.headers, self.json, self.data, self.auth],
            sort_keys=True,
            ensure_ascii=False,
        ).encode()

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
    """

    session: requests.Session | None = None
    timeout: tuple[float, float] = (default(CONNECT_TIMEOUT), default(READ_TIMEOUT))
    verify: bool | str = True
    max_body: int = int(default(MAX_RESPONSE_BYTES))

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

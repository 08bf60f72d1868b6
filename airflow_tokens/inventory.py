"""What the Variable cache holds: read and cleared straight in Airflow's metadata database.

Tasks write cache entries and refresh leases through the task SDK; ``airflow-tokens status`` and
``airflow-tokens clear`` run outside any task, so they read the ``variable`` table as Airflow's own CLI
does. Entries are described from their clear fields only: the sealed token is never decrypted.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow_tokens.sealing import OLD_FORMATS, READABLE_FORMATS
from airflow_tokens.stores import Lease, VariableStore

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: The Variable key prefixes of cache entries and of refresh leases.
ENTRY_PREFIX = VariableStore.variable_key("")
LEASE_PREFIX = VariableStore.lease_key("")


@dataclass(frozen=True, slots=True)
class LeaseState:
    """
    Describe the refresh lease of one connection.

    :param state: ``none``, ``held`` (someone refreshes now), ``backing off`` (after a failed refresh,
        no attempt before it ends) or ``lapsed`` (left behind).
    :param holder: ``host:pid:nonce`` of the process that took it.
    :param seconds: seconds left while held, seconds since it lapsed once lapsed.
    :param failure: while ``backing off`` after a failed refresh, what failed (``HTTP 503``).
    """

    state: str
    holder: str | None = None
    seconds: int | None = None
    failure: str | None = None

    @classmethod
    def of(cls, raw: str | None, now: float) -> LeaseState:
        """Return the state of a lease Variable's value (None: no lease)."""
        if raw is None:
            return cls("none")
        lease = Lease.from_json(raw)
        if lease is None:
            return cls("unreadable")
        if lease.until > now and lease.failure is not None:
            return cls("backing off", lease.holder, round(lease.until - now), lease.failure)
        if lease.until > now:
            return cls("held", lease.holder, round(lease.until - now))
        return cls("lapsed", lease.holder, round(now - lease.until))

    def to_text(self) -> str:
        """Return the state for people."""
        if self.state == "held":
            return f"held by {self.holder} for {self.seconds} s"
        if self.state == "lapsed":
            return f"lapsed {self.seconds} s ago ({self.holder})"
        if self.state == "backing off":
            return f"backing off for {self.seconds} s after {self.failure}"
        return self.state


@dataclass(frozen=True, slots=True)
class CachedToken:
    """
    Describe one connection's cache entry (never its token), and its refresh lease.

    :param conn_id: the connection.
    :param conn_type: its connection type.
    :param vendor: the vendor's name, or the connection type when it is not one of this package's.
    :param token_type: the token's scheme, usually ``Bearer``.
    :param expires_at: when the token expires (UTC ISO 8601).
    :param expires_in: seconds until then; 0 or less once expired.
    :param expired: whether the token has expired.
    :param obtained_at: when the token was obtained (UTC ISO 8601).
    :param obtained_by: the host whose process fetched it.
    :param scope: the granted scopes, or None when the vendor does not say.
    :param asked: what the token was asked for per call (``{"scope": "read"}``), None for the
        connection's own token.
    :param lease: the refresh lease.
    :param problem: why the entry cannot be described (none cached, unreadable, older format), or None.
    :param variables: the Variable keys that hold the entry and the lease.
    """

    conn_id: str
    conn_type: str
    vendor: str
    token_type: str | None
    expires_at: str | None
    expires_in: int | None
    expired: bool | None
    obtained_at: str | None
    obtained_by: str | None
    scope: list[str] | None
    lease: LeaseState
    problem: str | None
    variables: list[str]
    asked: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the description as plain JSON-ready data."""
        return asdict(self)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _vendor(conn_type: str) -> str:
    from airflow_tokens.vendors import VENDORS

    vendor = VENDORS.get(conn_type)
    return vendor.name if vendor is not None else conn_type


_ENTRY_FIELDS = ("token_type", "expires_at", "expires_in", "expired", "obtained_at", "obtained_by", "scope")


def _undescribed(problem: str) -> dict[str, Any]:
    """Return entry fields that say only ``problem``."""
    return {**dict.fromkeys(_ENTRY_FIELDS), "problem": problem}


def _entry_fields(raw: str | None, now: float) -> dict[str, Any]:
    """Return the clear fields of a stored entry (``raw`` is None when Airflow cannot decrypt it)."""
    if raw is None:
        return _undescribed("cannot be read (encrypted with another Fernet key?)")
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    fmt = data.get("format") if isinstance(data, dict) else None
    if not isinstance(data, dict) or fmt not in READABLE_FORMATS:
        problem = f"written by an older airflow-tokens ({fmt})" if fmt in OLD_FORMATS else "not a cache entry"
        return _undescribed(problem + "; the next task replaces it")
    try:
        expires_at = float(data["expires_at"])
        obtained_at = float(data["obtained_at"])
    except (KeyError, TypeError, ValueError):
        return _undescribed("expiry or obtained time missing; the next task replaces it")
    scope, asked = data.get("scope"), data.get("asked")
    return {
        "asked": {str(k): str(v) for k, v in asked.items()} if isinstance(asked, dict) else None,
        "token_type": str(data.get("token_type") or ""),
        "expires_at": _iso(expires_at),
        "expires_in": int(expires_at - now),
        "expired": expires_at <= now,
        "obtained_at": _iso(obtained_at),
        "obtained_by": str(data.get("obtained_by") or "") or None,
        "scope": [str(item) for item in scope] if isinstance(scope, list) else None,
        "problem": None,
    }


def _rows(session: Session) -> list[Any]:
    """Return every Variable row of this package's cache (entries and leases)."""
    from airflow.models.variable import Variable
    from sqlalchemy import or_, select

    query = select(Variable).where(
        or_(
            Variable.key.startswith(ENTRY_PREFIX, autoescape=True),
            Variable.key.startswith(LEASE_PREFIX, autoescape=True),
        )
    )
    return list(session.scalars(query))


def _split(key: str) -> tuple[str, str, str, str] | None:
    """Return (kind, conn_type, conn_id, variant) of a cache Variable key, or None for another key.

    ``variant`` tells apart the tokens one connection was asked for per call (``@`` and a digest of
    the scope or audience asked for; a connection id has no ``@``); empty for the connection's own.
    """
    for kind, prefix in (("entry", ENTRY_PREFIX), ("lease", LEASE_PREFIX)):
        if key.startswith(prefix):
            conn_type, dot, rest = key[len(prefix) :].partition(".")
            conn_id, _, variant = rest.partition("@")
            if dot and conn_type and conn_id:
                return kind, conn_type, conn_id, variant
    return None


def describe(key: str) -> str:
    """Say what a cache Variable holds, for a message."""
    parts = _split(key)
    if parts is None:
        return f"Variable {key}"
    kind, _, conn_id, _ = parts
    what = "cached token" if kind == "entry" else "refresh lease"
    return f"the {what} of connection {conn_id} (Variable {key})"


def cached_tokens(session: Session, now: float | None = None) -> list[CachedToken]:
    """Return every connection with a cache entry or a refresh lease, sorted by connection id."""
    now = time.time() if now is None else now
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    for row in _rows(session):
        parts = _split(row.key)
        if parts is None:
            continue
        kind, conn_type, conn_id, variant = parts
        slot = found.setdefault((conn_id, variant, conn_type), {"variables": []})
        slot["variables"].append(row.key)
        slot[kind] = row.val
    tokens = []
    for (conn_id, _, conn_type), slot in sorted(found.items()):
        fields = _entry_fields(slot["entry"], now) if "entry" in slot else _undescribed("no token cached")
        tokens.append(
            CachedToken(
                conn_id=conn_id,
                conn_type=conn_type,
                vendor=_vendor(conn_type),
                lease=LeaseState.of(slot.get("lease"), now),
                variables=sorted(slot["variables"]),
                **fields,
            )
        )
    return tokens


def clear(session: Session, conn_id: str | None) -> list[str]:
    """Delete the cache entries and leases of ``conn_id`` (every connection if None); return their keys."""
    from airflow.models.variable import Variable
    from sqlalchemy import delete

    keys = sorted(
        row.key
        for row in _rows(session)
        if (parts := _split(row.key)) is not None and conn_id in (None, parts[2])
    )
    if keys:
        session.execute(delete(Variable).where(Variable.key.in_(keys)))
    return keys

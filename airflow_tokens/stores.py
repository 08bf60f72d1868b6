"""Where processes of a deployment share tokens: the Variable and XCom stores, and the lease record.

A :class:`SharedStore` keeps one sealed entry per cache key (see :mod:`airflow_tokens.sealing`); one
whose ``leases`` is True also keeps a :class:`Lease` beside it, saying which process refreshes the
token for the whole deployment. A store that keeps no lease says ``leases = False`` and has no lease
methods. Every call may fail; the cache policy (:mod:`airflow_tokens.cache`) decides what follows.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

log = logging.getLogger(__name__)

#: This host's name, recorded in every entry and lease it writes.
HOSTNAME = socket.gethostname()


@dataclass(frozen=True, slots=True)
class Lease:
    """
    Say which process refreshes a token for the whole deployment, and until when; or, after a failed
    refresh, that the deployment backs off until then.

    :param holder: ``host:pid:nonce`` of the process that refreshes (or that failed to).
    :param until: epoch second at which the lease lapses, whether or not a token was stored.
    :param failure: after a failed refresh, what failed (``HTTP 503``); the lease is then a back-off note.
    :param failures: how many refreshes in a row failed (the back-off grows with it).
    """

    holder: str
    until: float
    failure: str | None = None
    failures: int = 0

    def to_json(self) -> str:
        """Serialise for a store (no secret in it)."""
        data: dict[str, Any] = {"holder": self.holder, "until": self.until}
        if self.failure is not None:
            data.update(failure=self.failure, failures=self.failures)
        return json.dumps(data)

    @classmethod
    def from_json(cls, raw: Any) -> Lease | None:
        """Parse :meth:`to_json` output; None for anything else."""
        try:
            data = json.loads(raw) if isinstance(raw, str | bytes) else raw
            failure = data.get("failure")
            return cls(
                str(data["holder"]),
                float(data["until"]),
                str(failure)[:200] if failure is not None else None,
                max(0, int(data.get("failures") or 0)),
            )
        except (TypeError, ValueError, KeyError, AttributeError):
            return None


class SharedStore(Protocol):
    """A store that several processes share; every method may fail and must not be trusted blindly."""

    name: str
    #: Whether the store keeps a lease beside the entry (deployment-wide single flight): only such a
    #: store is a :class:`LeasingStore`.
    leases: bool

    def available(self) -> bool:
        """Say whether the store can be used in this process."""

    def load(self, key: str) -> Any:
        """Return the stored (sealed) value, or None when there is none."""

    def save(self, key: str, value: dict[str, Any]) -> None:
        """Store the sealed value, replacing any other."""


class LeasingStore(SharedStore, Protocol):
    """A shared store that also keeps the refresh lease of each key (``leases = True``)."""

    def load_lease(self, key: str) -> Lease | None:
        """Return the lease on ``key``, or None."""

    def save_lease(self, key: str, lease: Lease) -> None:
        """Write the lease on ``key``, replacing any other."""

    def clear_lease(self, key: str) -> None:
        """Remove the lease on ``key``."""


def in_task() -> bool:
    """Say whether this process runs Airflow tasks or triggers (Variables and XCom reachable)."""
    runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    return getattr(runner, "SUPERVISOR_COMMS", None) is not None


class VariableStore:
    """Keep the sealed token in an Airflow Variable, and the refresh lease in another."""

    name = "variable"
    leases = True
    DESCRIPTION: ClassVar[str] = (
        "Access token cached by airflow-tokens, encrypted with a key derived from the connection's secret "
        "(replaced automatically before expiry)."
    )

    def available(self) -> bool:
        """Say whether Variables can be read and written (only inside a task or trigger)."""
        return in_task()

    @staticmethod
    def variable_key(key: str) -> str:
        """Return the Variable key for a cache key; it contains ``token`` so Airflow masks its value."""
        return f"airflow_tokens.access_token.{key}"

    @staticmethod
    def lease_key(key: str) -> str:
        """Return the Variable key of the refresh lease for a cache key."""
        return f"airflow_tokens.lease.{key}"

    def load(self, key: str) -> Any:
        """Return the sealed entry in the Variable, or None."""
        from airflow.sdk import Variable

        return Variable.get(self.variable_key(key), default=None)

    def save(self, key: str, value: dict[str, Any]) -> None:
        """Write the sealed entry to the Variable."""
        from airflow.sdk import Variable

        Variable.set(self.variable_key(key), json.dumps(value), description=self.DESCRIPTION)

    def load_lease(self, key: str) -> Lease | None:
        """Return the lease Variable's lease, or None."""
        from airflow.sdk import Variable

        return Lease.from_json(Variable.get(self.lease_key(key), default=None))

    def save_lease(self, key: str, lease: Lease) -> None:
        """Write the lease Variable."""
        from airflow.sdk import Variable

        Variable.set(self.lease_key(key), lease.to_json(), description="airflow-tokens refresh lease")

    def clear_lease(self, key: str) -> None:
        """Delete the lease Variable."""
        from airflow.sdk import Variable

        Variable.delete(self.lease_key(key))


class XComStore:
    """
    Read the sealed token a :class:`~airflow_tokens.operators.token.FetchTokenOperator` pushed, in this run.

    :param task_id: the producing task.
    :param conn_id: the connection (for messages).
    """

    name = "xcom"
    leases = False  # written by its producer task only

    def __init__(self, task_id: str, conn_id: str) -> None:
        self.task_id = task_id
        self.conn_id = conn_id

    def available(self) -> bool:
        """Say whether XCom can be read (only inside a task)."""
        return in_task()

    def load(self, key: str) -> Any:
        """Return the producer's envelope, or None."""
        from airflow.sdk import get_current_context

        value = get_current_context()["ti"].xcom_pull(task_ids=self.task_id)
        if value is None:
            log.warning("Task %s pushed no token envelope; fetching a token", self.task_id)
        return value

    def save(self, key: str, value: dict[str, Any]) -> None:
        """Keep a token fetched here in this process only: only the producer task pushes to XCom."""

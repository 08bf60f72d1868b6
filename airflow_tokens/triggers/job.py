"""A trigger that polls a job on a vendor's API, with the connection's token, in the triggerer's loop."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from airflow_tokens.hooks.base import TokenHook


class JobStatusTrigger(BaseTrigger):
    """
    Read a job's status until it is final; every request carries the connection's token.

    The token comes from ``hook.aget_conn()`` (``aget_access_token`` underneath): one request for all
    the triggers of a deployment that use the connection, renewed once if the API answers 401, and
    nothing blocks the event loop the triggerer shares between its triggers.

    :param conn_id: any airflow-tokens connection; its hook supplies the token.
    :param conn_type: the connection's type, which picks the hook (the connection itself is read when
        polling starts).
    :param status_url: the job's status URL.
    :param poll_interval: seconds between two status reads.
    :param status_field: the field of the status answer that holds the job's state.
    :param success: the states that mean the job succeeded.
    :param failure: the states that mean the job failed.
    """

    def __init__(
        self,
        *,
        conn_id: str,
        conn_type: str,
        status_url: str,
        poll_interval: float = 10.0,
        status_field: str = "status",
        success: tuple[str, ...] | list[str] = ("succeeded",),
        failure: tuple[str, ...] | list[str] = ("failed",),
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.conn_id = conn_id
        self.conn_type = conn_type
        self.status_url = status_url
        self.poll_interval = poll_interval
        self.status_field = status_field
        self.success = tuple(success)
        self.failure = tuple(failure)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the class path and the arguments that rebuild this trigger in the triggerer."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "conn_id": self.conn_id,
                "conn_type": self.conn_type,
                "status_url": self.status_url,
                "poll_interval": self.poll_interval,
                "status_field": self.status_field,
                "success": list(self.success),
                "failure": list(self.failure),
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until the job's state is final, then fire one event: ``success``, ``failed`` or ``error``."""
        import httpx

        from airflow_tokens.exceptions import TokenError

        try:
            hook = await asyncio.to_thread(self._hook)
            async with await hook.aget_conn() as client:
                while True:
                    response = await client.get(self.status_url)
                    if response.is_error:
                        yield self._event("error", f"HTTP {response.status_code} from {self.status_url}")
                        return
                    job = response.json()
                    state = job.get(self.status_field) if isinstance(job, dict) else None
                    if state in self.success or state in self.failure:
                        outcome = "success" if state in self.success else "failed"
                        yield self._event(outcome, f"the job's status is {state!r}", job)
                        return
                    self.log.debug("Job at %s is %s", self.status_url, state)
                    await asyncio.sleep(self.poll_interval)
        except TokenError as exc:
            yield self._event("error", str(exc))
        except httpx.HTTPError as exc:
            yield self._event("error", f"{type(exc).__name__} from {self.status_url}")
        except ValueError:
            yield self._event("error", f"the answer of {self.status_url} is not JSON")

    def _hook(self) -> TokenHook:
        """Return the connection's hook; run in a thread, as the hook's modules are imported here."""
        from airflow_tokens.exceptions import TokenConfigError
        from airflow_tokens.hooks import hook_class_for

        hook_class = hook_class_for(self.conn_type)
        if hook_class is None:
            problem = f"{self.conn_type!r} is not an airflow-tokens connection type"
            raise TokenConfigError(self.conn_id, "conn_type", problem)
        options: dict[str, Any] = {hook_class.conn_name_attr: self.conn_id}
        return hook_class(**options)

    def _event(self, status: str, message: str, job: Any = None) -> TriggerEvent:
        return TriggerEvent(  # type: ignore[no-untyped-call]
            {"status": status, "message": message, "job": job, "status_url": self.status_url}
        )

"""A deferrable operator: start a job on a vendor's API, then wait for it in the triggerer."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context


class RunJobOperator(BaseOperator):
    """
    Start a job with ``POST {base URL}{endpoint}`` and defer until ``GET .../{id}`` reports it final.

    The worker only starts the job (with ``hook.get_conn()``); the wait runs in the triggerer as a
    :class:`~airflow_tokens.triggers.job.JobStatusTrigger`, which gets its token with ``aget_token``.
    The task's return value (XCom) is the job's final status answer.

    :param conn_id: any airflow-tokens connection; its hook supplies the token and the API base URL.
    :param endpoint: the path below the base URL that starts a job; a job's status is at ``{endpoint}/{id}``.
    :param payload: the JSON body that describes the job.
    :param id_field: the field of the start answer that holds the job id.
    :param poll_interval: seconds between two status reads in the triggerer.
    :param timeout: how long to wait for the job before the task fails.
    """

    template_fields: Sequence[str] = ("conn_id", "endpoint", "payload")
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        conn_id: str,
        endpoint: str,
        payload: dict[str, Any] | None = None,
        id_field: str = "id",
        poll_interval: float = 10.0,
        timeout: timedelta = timedelta(hours=1),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.endpoint = endpoint
        self.payload = payload
        self.id_field = id_field
        self.poll_interval = poll_interval
        self.timeout = timeout

    def execute(self, context: Context) -> None:
        """Start the job and defer to the trigger that waits for it."""
        # Imported here, not at the top: a DAG file that builds this operator parses without them.
        from airflow_tokens.hooks import get_token_hook
        from airflow_tokens.triggers.job import JobStatusTrigger

        hook = get_token_hook(self.conn_id)
        url = hook.base_url + self.endpoint
        response = hook.get_conn().post(url, json=self.payload or {}, timeout=30)
        if not response.ok:
            raise AirflowException(f"Starting a job at {url} answered HTTP {response.status_code}")
        job_id = response.json()[self.id_field]
        self.log.info("Started job %s; waiting for it in the triggerer", job_id)
        self.defer(
            trigger=JobStatusTrigger(
                conn_id=self.conn_id,
                conn_type=hook.conn_type,
                status_url=f"{url}/{job_id}",
                poll_interval=self.poll_interval,
            ),
            method_name="execute_complete",
            timeout=self.timeout,
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Return the job's final status answer; fail the task if the job failed or could not be read."""
        if event["status"] != "success":
            raise AirflowException(f"Job at {event['status_url']}: {event['message']}")
        self.log.info("Job at %s: %s", event["status_url"], event["message"])
        return event["job"]

"""Test DAG: a task runs its own event loop and gets the Sirv token with ``await aget_token()``.

Eight coroutines ask at once through the Variable cache; the task returns how many distinct tokens
they got (one). Used by ``tests/integration/test_async.py``.
"""

from __future__ import annotations

import asyncio

from airflow.sdk import dag, task

COROUTINES = 8


@task
def gather_tokens() -> int:
    """Ask for the token from eight coroutines on one loop; return the number of distinct tokens."""
    from airflow_tokens.hooks.sirv import SirvTokenHook

    async def ask() -> list[str]:
        return await asyncio.gather(*(SirvTokenHook().aget_token() for _ in range(COROUTINES)))

    return len(set(asyncio.run(ask())))


@dag(schedule=None, catchup=False, tags=["airflow-tokens", "test"])
def async_token_in_task() -> None:
    """One task, one event loop, eight coroutines, one token."""
    gather_tokens()


async_token_in_task()

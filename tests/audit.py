"""Leak audits of a real deployment: what must never appear in clear, and where it is looked for."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from tests.harness.deployment import AirflowDeployment

#: The renderings of an XCom entry the REST API offers, by name in the answers.
XCOM_RENDERINGS: dict[str, dict[str, str]] = {
    "plain": {},
    "deserialize": {"deserialize": "true"},
    "stringify": {"stringify": "true"},
}


def needles(client_secrets: Iterable[str], issued: Iterable[str]) -> dict[str, str]:
    """Return what must never appear in clear: each client secret, every token, every JWT signature."""
    found = {f"client secret {number}": secret for number, secret in enumerate(client_secrets, 1)}
    for number, token in enumerate(issued, 1):
        found[f"token {number}"] = token
        if token.count(".") == 2:
            found[f"signature of token {number}"] = token.rsplit(".", 1)[1]
    return found


def leaks(text: str, needles: dict[str, str]) -> list[str]:
    """Return the names of the needles found in ``text`` (also hex-encoded, as database dumps show bytes)."""
    lowered = text.lower()
    return [name for name, value in needles.items() if value in text or value.encode().hex() in lowered]


def leaks_by_line(text: str, needles: dict[str, str]) -> dict[str, list[str]]:
    """Name the lines of ``text`` (their first 60 characters, e.g. a table row) that hold a needle."""
    return {line[:60]: what for line in text.splitlines() if (what := leaks(line, needles))}


def _pages(airflow: AirflowDeployment, path: str, items: str) -> tuple[list[str], list[dict[str, Any]]]:
    """Read every page of a REST API listing; return each page's text and all the items together."""
    texts: list[str] = []
    found: list[dict[str, Any]] = []
    while True:
        page = airflow.read(path, params={"limit": 100, "offset": len(found)})
        body = page.json()
        texts.append(page.text)
        found.extend(body[items])
        if not body[items] or len(found) >= body["total_entries"]:
            return texts, found


def api_answers(
    airflow: AirflowDeployment,
    runs: Mapping[str, Iterable[str]],
    renderings: Mapping[str, dict[str, str]] = XCOM_RENDERINGS,
) -> dict[str, str]:
    """
    Read every XCom entry of the given runs and every Variable through the REST API, as a user could.

    :param airflow: the running deployment.
    :param runs: the run ids of each DAG id.
    :param renderings: the renderings of each XCom entry to read (default: all of them).
    :returns: each answer's text by name: ``xcom list <run> <page>``, ``xcom <run> <task> <key>
        <rendering>``, ``xcom list of every run <page>``, ``variables <page>`` and ``variable <key>``.
    """
    answers: dict[str, str] = {}
    for dag_id, run_ids in runs.items():
        for run_id in run_ids:
            base = f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}/taskInstances"
            pages, entries = _pages(airflow, f"{base}/~/xcomEntries", "xcom_entries")
            answers.update((f"xcom list {run_id} {number}", text) for number, text in enumerate(pages, 1))
            for entry in entries:
                task_id, key = entry["task_id"], entry["key"]
                for rendering, params in renderings.items():
                    answer = airflow.read(
                        f"{base}/{quote(task_id, safe='')}/xcomEntries/{quote(key, safe='')}",
                        params={**params, "map_index": entry.get("map_index", -1)},
                    )
                    answers[f"xcom {run_id} {task_id} {key} {rendering}"] = answer.text
    pages, _ = _pages(airflow, "/api/v2/dags/~/dagRuns/~/taskInstances/~/xcomEntries", "xcom_entries")
    answers.update((f"xcom list of every run {number}", text) for number, text in enumerate(pages, 1))
    pages, variables = _pages(airflow, "/api/v2/variables", "variables")
    answers.update((f"variables {number}", text) for number, text in enumerate(pages, 1))
    for item in variables:
        answers[f"variable {item['key']}"] = airflow.read(
            f"/api/v2/variables/{quote(item['key'], safe='')}"
        ).text
    return answers


def task_spans(instances: Iterable[dict[str, Any]]) -> dict[str, tuple[datetime, datetime]]:
    """Return the start and end of each finished task instance, from the REST API's task instances."""
    return {
        ti["task_id"]: (datetime.fromisoformat(ti["start_date"]), datetime.fromisoformat(ti["end_date"]))
        for ti in instances
        if ti["start_date"] and ti["end_date"]
    }


def peak_concurrency(spans: Iterable[tuple[datetime, datetime]]) -> int:
    """Return how many of the (start, end) spans were open at the same moment, at most."""
    spans = list(spans)
    return max((sum(start <= moment < end for start, end in spans) for moment, _ in spans), default=0)

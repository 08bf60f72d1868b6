"""airflow-tokens: vendor API access tokens for Apache Airflow, fetched once and reused until expiry."""

from __future__ import annotations

__version__ = "0.2.0"

"""Operators of airflow-tokens."""

from __future__ import annotations

"""Benchmarks of airflow-tokens: ``make bench`` runs ``bench/run.py`` (see docs/benchmarks.md)."""

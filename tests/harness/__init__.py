"""Deployments of real Airflow for the tests and benchmarks: one host (standalone) and many (Celery)."""

"""Triggers that run in Airflow's triggerer and get their tokens with ``await hook.aget_token()``."""

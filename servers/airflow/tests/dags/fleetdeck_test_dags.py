# mypy: ignore-errors
"""Test DAGs for the Airflow server's integration tests (parsed by the test Airflow, not by pytest)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from airflow.sdk import DAG, task

START = datetime(2026, 1, 1)


@task
def say_hello() -> str:
    print("hello from the ads team")
    return "ok"


@task
def load_customers() -> None:
    print("connecting with password=hunter2-very-secret to the warehouse")
    print("loaded 10 rows")
    raise ValueError("customer table has 3 duplicate keys: expected unique customer_id")


@task(retries=1, retry_delay=timedelta(seconds=1))
def flaky_call() -> None:
    print("calling the partner API")
    raise ConnectionError("partner API refused the connection")


@task
def extract() -> None:
    raise FileNotFoundError("s3://landing/orders/2026-01-01.csv does not exist")


@task
def transform() -> None:
    print("transforming")


@task
def load() -> None:
    print("loading")


@task
def sleep_a_while(seconds: int = 120) -> None:
    for _ in range(seconds):
        time.sleep(1)


with DAG("fd_success", start_date=START, schedule=None, tags=["ads"], default_args={"owner": "ads-team"}):
    say_hello() >> say_hello.override(task_id="say_goodbye")()

with DAG(
    "fd_fails", start_date=START, schedule=None, tags=["finance"], default_args={"owner": "finance-team"}
):
    load_customers()

with DAG("fd_retries", start_date=START, schedule=None, tags=["ads"], default_args={"owner": "ads-team"}):
    flaky_call()

with DAG(
    "fd_chain", start_date=START, schedule=None, tags=["finance"], default_args={"owner": "finance-team"}
):
    extract() >> transform() >> load()

with DAG("fd_slow", start_date=START, schedule=None, tags=["ads"], default_args={"owner": "ads-team"}):
    sleep_a_while()

# mypy: ignore-errors
"""The diagnose_dag_run benchmark DAG: 200 task instances and about 50 MB of logs.

Ten root tasks each write ``lines`` log lines (dag-run conf, default 25 000) and then fail; each
has a chain of downstream tasks (19, the last one 18), which end ``upstream_failed`` without
running; one small task (``hello``) succeeds. So a run has 200 task instances, 10 long failed logs
and 10 blocked chains, at the cost of 11 task executions.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, get_current_context, task

ROOTS = 10
CHAIN = 19
LINES = 25_000


@task
def chatty(index: int) -> None:
    conf = get_current_context()["dag_run"].conf or {}
    lines = int(conf.get("lines", LINES))
    for line in range(lines):
        print(f"root {index:02d} line {line:06d} processing partition {line % 97} " + "x" * 60)
    raise RuntimeError(f"partition {index} checksum mismatch after {lines} lines")


@task
def hello() -> None:
    print("hello from the benchmark")


@task
def step() -> None:
    print("never runs: its upstream failed")


with DAG("fd_bench_200", start_date=datetime(2026, 1, 1), schedule=None, tags=["bench"], max_active_tasks=4):
    hello()
    for root in range(ROOTS):
        previous = chatty.override(task_id=f"root_{root:02d}")(index=root)
        for position in range(CHAIN if root < ROOTS - 1 else CHAIN - 1):
            current = step.override(task_id=f"root_{root:02d}_step_{position:02d}")()
            previous >> current
            previous = current

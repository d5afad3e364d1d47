"""Generate real Spark event logs, one application per scenario (run inside the pyspark venv).

Usage: ``python spark_scenarios.py OUT_DIR (main|oom) (folder|plain)...``. ``main`` runs every scenario
that the default driver memory allows in ONE JVM (a new SparkContext, hence a new application, per
scenario); ``oom`` needs its own JVM with ``spark.driver.memory=512m``. Each application id is
appended to ``OUT_DIR/apps.jsonl`` as ``{"form": ..., "scenario": ..., "app_id": ...}``. Folder-form
logs go to ``OUT_DIR/folders`` (Spark 4's default: ``eventlog_v2_<appId>/`` with zstd), plain-form
logs to ``OUT_DIR/plain`` (one uncompressed JSON-lines file). This module must only import pyspark
and the standard library.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession  # type: ignore[import-not-found, unused-ignore]
from pyspark.sql import functions as F  # type: ignore[import-not-found, unused-ignore]

SpCallable = Callable[[Any], None]


def _builder(out: Path, form: str, name: str, conf: dict[str, str]) -> Any:
    log_dir = out / ("folders" if form == "folder" else "plain")
    log_dir.mkdir(parents=True, exist_ok=True)
    builder = (
        SparkSession.builder.master("local[2]")
        .appName(name)
        .config("spark.eventLog.enabled", "true")
        .config("spark.eventLog.dir", log_dir.resolve().as_uri())
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.executorEnv.PIPELINE_DB_PASSWORD", "s3cr3t-pa55")
        .config("spark.fleetdeck.sink.url", "jdbc:postgresql://etl_user:hunter2@warehouse.internal:5432/dw")
    )
    if form == "plain":
        builder = builder.config("spark.eventLog.rolling.enabled", "false").config(
            "spark.eventLog.compress", "false"
        )
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder


def success(spark: Any) -> None:
    df = spark.range(0, 200_000, numPartitions=4).selectExpr("id % 10 AS k", "id AS v")
    df.groupBy("k").agg(F.sum("v").alias("total")).collect()
    spark.sql("SELECT count(*) FROM range(1000)").collect()


def udf_error(spark: Any) -> None:
    @F.udf("string")  # type: ignore[untyped-decorator, unused-ignore]
    def region_of(customer_id: int) -> str:
        if customer_id == 4242:
            raise ValueError(f"customer {customer_id} has no region in the lookup table")
        return "emea"

    spark.range(0, 10_000, numPartitions=2).select(region_of("id").alias("region")).collect()


def result_size(spark: Any) -> None:
    spark.range(0, 400_000, numPartitions=4).selectExpr("id", "repeat('x', 40) AS pad").collect()


def python_memory(spark: Any) -> None:
    @F.udf("int")  # type: ignore[untyped-decorator, unused-ignore]
    def hungry(value: int) -> int:
        blob = bytearray(900 * 1024 * 1024)
        return len(blob) + value

    spark.range(0, 4, numPartitions=1).select(hungry("id")).collect()


def skewed_join(spark: Any) -> None:
    left = spark.range(0, 3_000_000, numPartitions=4).selectExpr(
        "CASE WHEN id % 100 < 95 THEN 7 ELSE id % 1000 END AS k", "id AS v"
    )
    right = spark.range(0, 1000, numPartitions=2).selectExpr("id AS k", "id * 2 AS w")
    left.join(right, "k").groupBy("w").agg(F.sum("v")).collect()


def missing_input(spark: Any) -> None:
    folder = Path(tempfile.mkdtemp(prefix="fleetdeck-missing-")) / "orders"
    try:
        spark.range(0, 1000, numPartitions=2).write.parquet(str(folder))
        orders = spark.read.parquet(str(folder))
        for part in folder.glob("part-*"):
            part.unlink()
        orders.selectExpr("sum(id)").collect()
    finally:
        shutil.rmtree(folder.parent, ignore_errors=True)


def cancelled(spark: Any) -> None:
    context = spark.sparkContext

    def slow(_: int) -> int:
        time.sleep(0.5)
        return 1

    def cancel_when_running() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not context.statusTracker().getActiveJobsIds():
            time.sleep(0.1)
        time.sleep(1.0)
        context.cancelAllJobs()

    canceller = threading.Thread(target=cancel_when_running, daemon=True)
    canceller.start()
    try:
        context.parallelize(range(400), 4).map(slow).sum()
    finally:
        canceller.join(timeout=60)


def driver_oom(spark: Any) -> None:
    # 64 KiB strings gathered into one list: the 512 MB heap runs out after a few thousand rows
    rows = spark.range(0, 20_000, numPartitions=1).selectExpr(
        "0 AS k", "repeat('x', 65536 + CAST(id * 0 AS INT)) AS s"
    )
    rows.groupBy("k").agg(F.collect_list("s").alias("all")).collect()


MAIN: dict[str, tuple[SpCallable, dict[str, str]]] = {
    "success": (success, {}),
    "udf_error": (udf_error, {}),
    "result_size": (result_size, {"spark.driver.maxResultSize": "1m"}),
    "python_memory": (python_memory, {"spark.executor.pyspark.memory": "300m"}),
    "skewed_join": (
        skewed_join,
        {
            "spark.sql.adaptive.enabled": "false",
            "spark.sql.autoBroadcastJoinThreshold": "-1",
            "spark.sql.shuffle.partitions": "8",
        },
    ),
    "missing_input": (missing_input, {}),
    "cancelled": (cancelled, {}),
}
OOM: dict[str, tuple[SpCallable, dict[str, str]]] = {
    "driver_oom": (
        driver_oom,
        {
            "spark.driver.memory": "512m",
            "spark.sql.shuffle.partitions": "1",
            # the task fails with the OutOfMemoryError instead of the JVM exiting mid-write of the log
            "spark.executor.killOnFatalError.depth": "0",
        },
    ),
}


def run(out: Path, scenarios: dict[str, tuple[SpCallable, dict[str, str]]], forms: list[str]) -> None:
    for form in forms:
        for name, (body, conf) in scenarios.items():
            spark = _builder(out, form, f"fleetdeck-{name}", conf).getOrCreate()
            app_id = spark.sparkContext.applicationId
            with (out / "apps.jsonl").open("a", encoding="utf-8") as apps:
                apps.write(json.dumps({"form": form, "scenario": name, "app_id": app_id}) + "\n")
            try:
                body(spark)
            except Exception as exc:  # noqa: BLE001 - the failure is the point of the scenario
                print(f"{form}/{name}: {type(exc).__name__}: {str(exc)[:300]}", file=sys.stderr)
            try:
                spark.stop()
            except Exception as exc:  # noqa: BLE001 - the JVM may be gone after an error
                print(f"{form}/{name}: stop failed: {type(exc).__name__}", file=sys.stderr)
                return


def main() -> None:
    out, group, forms = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    run(out, MAIN if group == "main" else OOM, forms)


if __name__ == "__main__":
    main()

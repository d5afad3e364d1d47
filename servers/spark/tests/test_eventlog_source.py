"""The event-log source reads every form Spark writes, streaming, into the same application model."""

from __future__ import annotations

from pathlib import Path

import pytest
import zstandard
from servers.spark.tests.spark_helpers import (
    START_MS,
    application_events,
    encode,
    lz4_block_stream,
    snappy_stream,
    task_end,
    write_folder,
)

from fleetdeck.errors import InvalidInputError, NotFoundError
from fleetdeck_spark.eventlog import EventLogSource
from fleetdeck_spark.model import Application
from fleetdeck_spark.replay import ApplicationBuilder
from fleetdeck_spark.source import AppQuery

APP = "app-20260101-0042"


def comparable(app: Application) -> dict[str, object]:
    return app.model_dump(exclude={"summary": {"source"}})


@pytest.fixture
def reference() -> Application:
    builder = ApplicationBuilder(APP)
    for line in encode(application_events(APP, fail=True)).splitlines():
        builder.feed(line)
    return builder.build("completed")


def parse_only(root: Path) -> Application:
    source = EventLogSource(str(root))
    (entry,) = source.entries()
    return source.parse(entry)


def test_a_plain_file_gives_jobs_stages_quantiles_and_grouped_failures(tmp_path: Path) -> None:
    (tmp_path / APP).write_bytes(encode(application_events(APP, fail=True)))
    app = parse_only(tmp_path)
    assert (app.summary.name, app.summary.user, app.summary.status) == ("nightly-etl", "etl", "completed")
    assert app.summary.duration_ms == 6_000
    assert [(j.job_id, j.status, j.sql_execution_id) for j in app.jobs] == [(0, "FAILED", 0)]
    stage = app.stages[0]
    assert (stage.status, stage.completed_tasks, stage.failed_tasks) == ("FAILED", 3, 1)
    assert stage.quantiles is not None
    assert stage.quantiles.duration_ms == [100.0, 100.0, 110.0, 120.0, 120.0]
    (failure,) = app.failures
    assert failure.python_error == "ValueError: bad row 7"
    assert failure.frames[0] == "etl.py:12 in enrich"
    assert failure.task_ids == [3]
    assert app.sql[0].status == "FAILED"


@pytest.mark.parametrize("form", ["zstd-rolling-folder", "zstd-file", "lz4-file", "snappy-file"])
def test_every_compressed_form_gives_the_same_model_as_the_plain_file(
    tmp_path: Path, reference: Application, form: str
) -> None:
    data = encode(application_events(APP, fail=True))
    if form == "zstd-rolling-folder":
        write_folder(tmp_path, APP, data, parts=3)
    elif form == "zstd-file":
        (tmp_path / f"{APP}.zstd").write_bytes(zstandard.ZstdCompressor().compress(data))
    elif form == "lz4-file":
        (tmp_path / f"{APP}.lz4").write_bytes(lz4_block_stream(data, block=512))
    else:
        (tmp_path / f"{APP}.snappy").write_bytes(snappy_stream(data, block=512))
    assert comparable(parse_only(tmp_path)) == comparable(reference)


def test_an_in_progress_folder_with_a_half_written_line_reads_as_running(tmp_path: Path) -> None:
    events = application_events(APP)[:-4]  # no stage end, job end or application end yet
    data = encode(events) + b'{"Event":"SparkListenerTaskEnd","Stage ID":0,"Task'
    write_folder(tmp_path, APP, data, parts=2, in_progress=True)
    app = parse_only(tmp_path)
    assert app.summary.status == "running"
    assert app.summary.end_ms is None
    assert app.stages[0].status == "ACTIVE"
    assert app.stages[0].quantiles is not None  # running stages show their partial distribution
    assert app.notes == ["1 unreadable line(s) skipped"]


def test_an_in_progress_plain_file_is_listed_as_running(tmp_path: Path) -> None:
    (tmp_path / f"{APP}.inprogress").write_bytes(encode(application_events(APP)[:6]))
    listing = EventLogSource(str(tmp_path))._list(AppQuery(status="running"))
    assert [a.app_id for a in listing] == [APP]


def test_an_unfinished_zstd_frame_yields_every_flushed_block(tmp_path: Path) -> None:
    compressor = zstandard.ZstdCompressor().compressobj()
    data = b""
    for line in encode(application_events(APP)).splitlines(keepends=True):
        data += compressor.compress(line) + compressor.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
    (tmp_path / f"{APP}.zstd").write_bytes(data + b"\x00\x01")  # no end of frame, a torn block header
    app = parse_only(tmp_path)
    assert app.summary.name == "nightly-etl"
    assert app.summary.end_ms == START_MS + 6_000


def test_stage_samples_are_released_when_the_stage_completes() -> None:
    builder = ApplicationBuilder(APP)
    for line in encode(application_events(APP)).splitlines():
        builder.feed(line)
    assert builder.stats == {}


def test_quantiles_of_a_huge_stage_stay_bounded_and_close() -> None:
    builder = ApplicationBuilder(APP)
    head = application_events(APP, durations=())
    for line in encode(head[:7]).splitlines():
        builder.feed(line)
    for task in range(20_000):
        builder.feed(encode([task_end(0, task, 100 + task % 1000)]).strip())
    stats = builder.stats[(0, 0)]
    assert all(len(column) == 4096 for column in stats._samples)
    quantiles = stats.quantiles()
    assert quantiles is not None
    assert quantiles.duration_ms[0] >= 100
    assert quantiles.duration_ms[4] <= 1099
    assert abs(quantiles.duration_ms[2] - 600) < 60
    assert [t.duration_ms for t in stats.slowest()] == [1099] * 5


def test_listing_filters_by_status_name_user_and_start_time(log_dir: Path) -> None:
    source = EventLogSource(str(log_dir))
    everything = source._list(AppQuery())
    assert {a.app_id for a in everything} == {"app-20260101-0001", "app-20260101-0002", "app-20260101-0003"}
    assert source._list(AppQuery(name_contains="NIGHTLY", user="etl", limit=2)).__len__() == 2
    assert source._list(AppQuery(user="someone-else")) == []
    assert source._list(AppQuery(started_after_ms=START_MS + 1)) == []
    assert source._list(AppQuery(status="running")) == []


def test_an_unknown_application_is_not_found_and_a_path_is_refused(log_dir: Path) -> None:
    source = EventLogSource(str(log_dir))
    with pytest.raises(NotFoundError):
        source.find("app-20990101-0000")
    with pytest.raises(InvalidInputError):
        source.find("../../etc/passwd")


def test_secrets_in_the_configuration_are_redacted(log_dir: Path) -> None:
    app = EventLogSource(str(log_dir)).parse(EventLogSource(str(log_dir)).find("app-20260101-0002"))
    assert app.config["spark.hadoop.fs.s3a.secret.key"] == "*********(redacted)"
    assert "hunter2" not in app.config["spark.sink.url"]
    assert app.config["spark.executor.memory"] == "4g"


def test_any_fsspec_filesystem_works(tmp_path: Path) -> None:
    import fsspec

    memory = fsspec.filesystem("memory")
    with memory.open(f"/spark-events/{APP}", "wb") as handle:
        handle.write(encode(application_events(APP)))
    source = EventLogSource("memory://spark-events")
    assert source.parse(source.find(APP)).summary.name == "nightly-etl"

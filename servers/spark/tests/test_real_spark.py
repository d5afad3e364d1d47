"""Real Spark: generated event logs of every scenario, read directly and through a real History Server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from servers.spark.tests.spark_helpers import make_server

from fleetdeck.settings import FleetdeckSettings
from fleetdeck_spark.diagnosis import diagnose
from fleetdeck_spark.eventlog import EventLogSource
from fleetdeck_spark.history import HistoryServerSource
from fleetdeck_spark.source import SparkSource
from fleetdeck_testkit.spark import FORMS, SCENARIOS, HistoryServer, SparkLogs

pytestmark = pytest.mark.spark

EXPECTED = {
    "success": "unknown",
    "udf_error": "python_exception",
    "result_size": "result_size_limit",
    "python_memory": "executor_oom",
    "skewed_join": "data_skew",
    "missing_input": "missing_input",
    "cancelled": "cancelled",
    "driver_oom": "driver_oom",
}


def test_every_scenario_has_an_expected_category() -> None:
    assert set(EXPECTED) == set(SCENARIOS)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_every_generated_run_gets_the_right_category_from_its_event_log(
    spark_logs: SparkLogs, form: str, scenario: str
) -> None:
    app = await EventLogSource(str(spark_logs.directory(form))).get_application(
        spark_logs.apps[form][scenario]
    )
    result = diagnose(app)
    assert result.category == EXPECTED[scenario], result.headline
    assert result.outcome == ("succeeded" if scenario in ("success", "skewed_join") else "failed")
    assert "hunter2" not in app.model_dump_json()
    assert "s3cr3t-pa55" not in app.model_dump_json()


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_the_history_server_yields_the_same_diagnosis(
    spark_logs: SparkLogs, history_server: HistoryServer, form: str, scenario: str
) -> None:
    app_id = spark_logs.apps[form][scenario]
    direct = diagnose(await EventLogSource(str(spark_logs.directory(form))).get_application(app_id))
    served = diagnose(await HistoryServerSource([history_server.url]).get_application(app_id))
    assert served.model_dump() == direct.model_dump()


@pytest.fixture(params=["eventlog", "history"])
def source(request: pytest.FixtureRequest, all_logs_dir: Path) -> SparkSource:
    if request.param == "eventlog":
        return EventLogSource(str(all_logs_dir))
    history: HistoryServer = request.getfixturevalue("history_server")
    return HistoryServerSource([history.url, "http://127.0.0.1:9"], timeout_s=10, retries=0)


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    content: dict[str, Any] = result.structured_content
    return content


async def test_every_tool_works_on_both_sources(
    settings: FleetdeckSettings, spark_logs: SparkLogs, source: SparkSource
) -> None:
    apps = spark_logs.apps["folder"]
    server = make_server(settings, source)
    async with server.running(), Client(server.mcp) as client:
        listed = await call(client, "list_applications", {"name_contains": "fleetdeck-", "limit": 100})
        assert {a["app_id"] for a in listed["applications"]} >= set(apps.values())

        view = await call(client, "get_application", {"app_id": apps["udf_error"]})
        assert view["failures"][0]["python_error"].startswith("ValueError: customer 4242")
        assert view["notable_config"]

        skew = await call(client, "diagnose_application", {"app_id": apps["skewed_join"]})
        stage_id = skew["evidence"]["stages"][0]
        stage = await call(client, "get_stage", {"app_id": apps["skewed_join"], "stage_id": stage_id})
        assert stage["quantiles"]["duration_ms"][4] >= 5 * stage["quantiles"]["duration_ms"][2]
        assert stage["slowest_tasks"]

        compared = await call(
            client,
            "compare_applications",
            {"before_app_id": apps["success"], "after_app_id": apps["skewed_join"]},
        )
        assert {c["key"] for c in compared["config_changes"]} >= {"spark.sql.adaptive.enabled"}

        recorded = await call(
            client,
            "record_rca",
            {"app_id": apps["driver_oom"], "title": "collect_list over one key", "root_cause": "driver heap",
             "remediation": "aggregate first"},
        )  # fmt: skip
        assert recorded["category"] == "driver_oom"
        found = await call(client, "find_rcas", {"category": "driver_oom"})
        assert recorded["rca_id"] in {r["rca_id"] for r in found["rcas"]}

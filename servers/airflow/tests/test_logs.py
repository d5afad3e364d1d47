"""Log rendering, bounded tails and root-error extraction (no Airflow needed)."""

from __future__ import annotations

import json
from typing import Any

from fleetdeck_airflow.logs import LogScanner, render, split_lines


def structured(event: str, **fields: Any) -> str:
    return json.dumps({"timestamp": "2026-01-01T00:00:00Z", "level": "info", "event": event, **fields})


def failure(*chain: tuple[str, str]) -> str:
    detail = [
        {
            "exc_type": kind,
            "exc_value": message,
            "frames": [{"filename": "/dags/etl.py", "lineno": 10 + i, "name": "load"}],
        }
        for i, (kind, message) in enumerate(chain)
    ]
    return structured("Task failed with exception", level="error", error_detail=detail)


def test_the_root_cause_of_a_chained_exception_is_reported() -> None:
    text, error = render(
        failure(("RuntimeError", "load failed"), ("KeyError", "'customer_id' with token=abc123"))
    )
    assert error is not None
    assert (error.error_type, error.location) == ("KeyError", "/dags/etl.py:11 in load")
    assert error.raised == "RuntimeError: load failed"
    assert "abc123" not in error.message
    assert text is not None
    assert "ERROR Task failed with exception | KeyError" in text


def test_airflow_framing_lines_are_not_shown() -> None:
    assert render(json.dumps({"timestamp": None, "event": "/tmp/logs/attempt=1.log"}))[0] is None
    assert render(structured("::group::Pre Execute"))[0] is None


def test_plain_text_tracebacks_yield_the_final_exception_line() -> None:
    scanner = LogScanner(max_lines=50, max_bytes=10_000)
    for line in [
        "Traceback (most recent call last):",
        '  File "x.py", line 3',
        "ZeroDivisionError: division by zero",
    ]:
        scanner.feed(line)
    assert scanner.error is not None
    assert (scanner.error.error_type, scanner.error.message) == ("ZeroDivisionError", "division by zero")


def test_a_huge_log_keeps_only_a_bounded_tail_and_finds_the_error_anywhere() -> None:
    scanner = LogScanner(max_lines=20, max_bytes=2_000)
    for i in range(50_000):
        scanner.feed(structured(f"row {i} " + "x" * 80))
        if i == 10_000:
            scanner.feed(failure(("ValueError", "bad row 10000")))
    result = scanner.result()
    assert len(result.lines) <= 20
    assert sum(len(line) for line in result.lines) <= 2_000
    assert result.truncated is True
    assert result.total_lines == 50_001
    assert result.total_bytes > 5_000_000
    assert result.error is not None
    assert result.error.message == "bad row 10000"
    assert any("bad row 10000" in line for line in scanner.context)
    assert len(scanner.context) <= 25


def test_the_structured_failure_wins_over_an_earlier_plain_error_line() -> None:
    scanner = LogScanner(max_lines=5, max_bytes=10_000)
    scanner.feed(structured("requests.exceptions.ConnectionError: retrying"))
    scanner.feed("TimeoutError: first attempt")
    scanner.feed(failure(("ValueError", "schema mismatch")))
    scanner.feed("OSError: cleanup failed")
    assert scanner.error is not None
    assert scanner.error.message == "schema mismatch"


def test_overlong_lines_are_cut() -> None:
    text, _ = render("y" * 100_000)
    assert text is not None
    assert len(text) < 2_100


def test_a_streamed_body_is_split_into_lines_across_chunks() -> None:
    lines: list[str] = []
    split_lines([b"first li", b"ne\nsecond\n", b"x" * 50, b"y" * 50 + b"\nlast"], lines.append, max_line=60)
    assert lines == ["first line", "second", "x" * 50 + "y" * 10, "last"]


def test_splitting_fifty_megabytes_is_linear() -> None:
    chunk = (b'{"timestamp":"t","event":"' + b"z" * 150 + b'"}\n') * 400
    count = 0

    def sink(line: str) -> None:
        nonlocal count
        count += 1

    split_lines((chunk for _ in range(700)), sink)
    assert count == 400 * 700

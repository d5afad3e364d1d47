"""Task logs: redact secrets, render Airflow's structured (NDJSON) lines, keep a bounded tail, find the error.

:class:`LogScanner` is fed one raw line at a time (never the whole log), so memory stays bounded by
the tail it keeps, whatever the size of the log.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from fleetdeck.redaction import redact_text
from fleetdeck_airflow.models import ErrorReport, LogTail

MAX_LINE_CHARS = 2000
MAX_RAW_CHARS = 16_000
MAX_RAW_LINE_BYTES = 65_536
AFTER_ERROR = 5
_PLAIN_ERROR = re.compile(
    r"^(?:[\w.]+\.)?(?P<type>[A-Z]\w*(?:Error|Exception|Exit|Interrupt|Failure|Timeout))(?::\s*(?P<msg>.*))?$"
)


_FRAMING = ("::group::", "::endgroup::")


def _cut(text: str, limit: int = MAX_LINE_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + f" ...[{len(text) - limit} more chars]"


def _error_from_detail(detail: Any) -> ErrorReport | None:
    """Airflow's ``error_detail``: a list of exceptions, the raised one first and its causes after."""
    if not isinstance(detail, list) or not detail:
        return None
    chain = [d for d in detail if isinstance(d, dict) and d.get("exc_type")]
    if not chain:
        return None
    root, raised = chain[-1], chain[0]
    location = None
    frames = root.get("frames")
    if isinstance(frames, list) and frames and isinstance(frames[-1], dict):
        frame = frames[-1]
        location = f"{frame.get('filename')}:{frame.get('lineno')} in {frame.get('name')}"
    raised_text = None
    if raised is not root:
        raised_text = _cut(redact_text(f"{raised.get('exc_type')}: {raised.get('exc_value')}"), 500)
    return ErrorReport(
        error_type=str(root.get("exc_type"))[:200],
        message=_cut(redact_text(str(root.get("exc_value") or "")), 1000),
        location=_cut(str(location), 500) if location else None,
        raised=raised_text,
    )


def _structured(raw: str) -> dict[str, Any] | None:
    if not raw.startswith("{"):
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _plain_error(text: str) -> ErrorReport | None:
    match = _PLAIN_ERROR.match(text.strip()[:MAX_LINE_CHARS])
    if match is None:
        return None
    return ErrorReport(error_type=match["type"], message=_cut(redact_text(match["msg"] or ""), 1000))


def render(raw: str) -> tuple[str | None, ErrorReport | None]:
    """One raw log line (NDJSON or plain text) as display text, and the error it reports, if any.

    Airflow's own framing (``::group::`` markers, the log-source header) renders as ``None``.
    """
    record = _structured(raw.strip())
    if record is None:
        text = redact_text(_cut(raw.strip()))
        return text, _plain_error(text)
    stamp = record.get("timestamp") or ""
    level = str(record.get("level") or "").upper()
    event = str(record.get("event") or "")
    if not stamp or event.startswith(_FRAMING):
        return None, None
    text = " ".join(part for part in (str(stamp), level, _cut(event)) if part)
    error = _error_from_detail(record.get("error_detail")) or _plain_error(event)
    if error is not None and record.get("error_detail"):
        text += f" | {error.error_type}: {error.message}"
    return redact_text(text), error


def _is_framing(raw: str) -> bool:
    return (
        raw.startswith('{"timestamp":null') or '"event":"::group::' in raw or '"event":"::endgroup::' in raw
    )


def _may_report_error(raw: str) -> bool:
    """Cheap pre-check: only these lines are parsed for an error while scanning."""
    return '"error_detail"' in raw or "Error" in raw or "Exception" in raw or "Exit" in raw


class LogScanner:
    """Consumes a log line by line; keeps the last ``max_lines`` (and at most ``max_bytes``) raw lines.

    Only kept lines are rendered and redacted (at :meth:`result`); every line is checked for an
    error with cheap tests first. ``error`` ends as the last structured error of the log
    (Airflow's "Task failed with exception" record) or, without one, the last ``SomeError: message``.
    """

    def __init__(self, max_lines: int, max_bytes: int) -> None:
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self._tail: deque[str] = deque()
        self._tail_bytes = 0
        self._dropped = 0
        self._context: list[str] = []
        self._after = 0
        self.total_lines = 0
        self.total_bytes = 0
        self._structured: ErrorReport | None = None
        self._plain: ErrorReport | None = None

    def feed(self, raw: str) -> None:
        """Take one raw line (without its newline)."""
        self.total_lines += 1
        self.total_bytes += len(raw) + 1
        raw = raw.strip()
        if not raw or _is_framing(raw):
            return
        raw = raw[:MAX_RAW_CHARS]
        if self._after > 0:
            self._context.append(raw)
            self._after -= 1
        self._tail.append(raw)
        self._tail_bytes += len(raw)
        while len(self._tail) > self.max_lines or (self._tail_bytes > self.max_bytes and len(self._tail) > 1):
            self._tail_bytes -= len(self._tail.popleft())
            self._dropped += 1
        if _may_report_error(raw):
            self._check(raw)

    def _check(self, raw: str) -> None:
        record = _structured(raw)
        if record is not None and record.get("error_detail"):
            error = _error_from_detail(record["error_detail"])
            if error is not None:
                self._structured = error
                self._context, self._after = list(self._tail), AFTER_ERROR
            return
        plain = _plain_error(str(record.get("event") or "") if record is not None else raw)
        if plain is not None:
            self._plain = plain
            if self._structured is None:
                self._context, self._after = list(self._tail), AFTER_ERROR

    @property
    def error(self) -> ErrorReport | None:
        """The error the log reports (structured preferred)."""
        return self._structured or self._plain

    @property
    def context(self) -> list[str]:
        """Rendered lines before the line reporting :attr:`error`, it, and up to ``AFTER_ERROR`` after."""
        return _rendered(self._context)

    def result(self) -> LogTail:
        """The tail (rendered, redacted) and what the scan found."""
        return LogTail(
            lines=_rendered(self._tail),
            total_lines=self.total_lines,
            total_bytes=self.total_bytes,
            truncated=self._dropped > 0,
            error=self.error,
        )


def _rendered(raws: Iterable[str]) -> list[str]:
    return [text for text in (render(raw)[0] for raw in raws) if text is not None]


def split_lines(
    chunks: Iterable[bytes], sink: Callable[[str], None], max_line: int = MAX_RAW_LINE_BYTES
) -> None:
    """Feed ``sink`` the lines of a streamed body; a line longer than ``max_line`` bytes is cut there.

    Linear in the body size, and holds at most one chunk plus one partial line.
    """
    pending = b""
    skipping = False  # inside an overlong line whose head was already sent
    for chunk in chunks:
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        for line in lines:
            if skipping:
                skipping = False
                continue
            sink(line[:max_line].decode("utf-8", errors="replace"))
        if len(pending) > max_line:
            if not skipping:
                sink(pending[:max_line].decode("utf-8", errors="replace"))
            skipping = True
            pending = b""
    if pending and not skipping:
        sink(pending.decode("utf-8", errors="replace"))

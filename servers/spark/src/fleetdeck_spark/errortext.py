"""Read Spark error text (task errors, stage failure reasons, SQL errors) into its parts.

Both sources carry the same strings (the History Server shows what the event log holds), so one
parser gives both the same exception class, message, Python error and top frames.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from fleetdeck_spark.redaction import clip

MESSAGE_LIMIT = 400
FRAME_LIMIT = 8
EXCEPTION_HEAD = re.compile(
    r"^\s*([A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+|[A-Z]\w*(?:Error|Exception)):\s?(.*)$"
)
LOST_TASK = re.compile(r"Lost task [\d.]+ in stage [\d.]+ \(TID \d+\) \([^)]*\): ")
PY_FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+), in (\S+)')
PY_ERROR = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)\b.*|[A-Za-z_][\w.]*Error)$")
NUMBERS = re.compile(r"\d+")
INTERNAL_PY = ("/pyspark/", "site-packages", "<frozen")


@dataclass(slots=True)
class ParsedError:
    """The parts of one error text."""

    exception: str | None
    message: str
    python_error: str | None = None
    frames: list[str] = field(default_factory=list)
    causes: list[str] = field(default_factory=list)

    @property
    def signature(self) -> str:
        """A key that groups errors with the same cause (numbers stripped)."""
        head = self.python_error or self.message
        return NUMBERS.sub("#", f"{self.exception}|{head}")[:300]


def _python_part(lines: list[str]) -> tuple[str | None, list[str]]:
    if not any("Traceback (most recent call last)" in line for line in lines):
        return None, []
    frames: list[str] = []
    error: str | None = None
    for line in lines:
        if line.startswith("\tat ") or line.startswith("Caused by"):
            break
        frame = PY_FRAME.match(line)
        if frame:
            path, number, func = frame.groups()
            if not any(marker in path for marker in INTERNAL_PY):
                frames.append(f"{path.rsplit('/', 1)[-1]}:{number} in {func}")
        elif PY_ERROR.match(line.strip()) and not line.startswith(" "):
            error = line.strip()
    return error, frames[-3:]


def parse_error(text: str | None) -> ParsedError:
    """Split an error text into exception class, first-line message, Python error and top frames."""
    if not text:
        return ParsedError(exception=None, message="")
    body = LOST_TASK.split(text, maxsplit=1)[-1] if "Lost task" in text else text
    lines = body.splitlines()
    first = lines[0] if lines else ""
    head = EXCEPTION_HEAD.match(first)
    exception, message = (head.group(1), head.group(2)) if head else (None, first)
    python_error, py_frames = _python_part(lines)
    frames: list[str] = []
    causes: list[str] = []
    seen: set[str] = set()
    for line in lines[1:]:
        stripped = line.strip()
        if stripped.startswith("at ") and len(frames) < FRAME_LIMIT - len(py_frames):
            frame = stripped[3:]
            if frame not in seen:
                seen.add(frame)
                frames.append(frame)
        elif stripped.startswith("Caused by: ") and len(causes) < 3:
            causes.append(clip(stripped[len("Caused by: ") :], MESSAGE_LIMIT) or "")
    return ParsedError(
        exception=exception,
        message=clip(message.strip(), MESSAGE_LIMIT) or "",
        python_error=clip(python_error, MESSAGE_LIMIT),
        frames=py_frames + frames,
        causes=causes,
    )

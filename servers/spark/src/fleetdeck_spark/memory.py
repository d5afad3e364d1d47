"""Spark memory sizes: read ``512m`` / ``4g`` / bytes, suggest a bigger one, and show byte counts."""

from __future__ import annotations

import re

UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)


def parse_memory(value: str, default_unit: str = "m") -> int | None:
    """Bytes in a Spark memory setting, or None when it is not a size."""
    match = SIZE.match(value)
    if match is None:
        return None
    unit = match.group(2).lower() or (default_unit if "." not in match.group(1) else "")
    return int(float(match.group(1)) * UNITS[unit])


def format_memory(size: int) -> str:
    """A size in Spark's setting syntax (``2g``, ``768m``)."""
    if size >= UNITS["g"] and size % UNITS["g"] == 0:
        return f"{size // UNITS['g']}g"
    return f"{max(1, size // UNITS['m'])}m"


def double_memory(value: str, minimum: str = "0m") -> str:
    """Twice ``value`` (at least ``minimum``), as a Spark setting."""
    size = parse_memory(value) or 0
    floor = parse_memory(minimum) or 0
    return format_memory(max(2 * size, floor))


def format_bytes(size: float) -> str:
    """A byte count for people (``1.5 GiB``)."""
    amount = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024:
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TiB"

"""The ROI report: invocations, monthly active users and hours saved per month, server, tool and team.

Definitions (DESIGN §5):

- *invocations* count every recorded ``tools/call``, whatever its outcome; *successful* counts those
  whose outcome is :attr:`Outcome.OK <fleetdeck.errors.Outcome.OK>`;
- *monthly active users* (MAU) are the distinct non-null pseudonymous ``user_hash`` values with at
  least one invocation in the month, counted exactly at every level: a user of three tools of one
  server is one user of that server, of its team and of the month;
- *hours saved* = Σ ``minutes_saved`` of the successful invocations / 60.

How it is computed: from the rollup the store maintains as it writes (``invocation_rollup``, see
:mod:`fleetdeck.telemetry.store`), one row per (month, server, tool, team, user_key) carrying the
invocations, successes and minutes saved of that key, so the report never reads the raw events. Per
month, it sums the rollup rows per tool, per server, per team and for the month, with the exact
``COUNT(DISTINCT user_key)`` (anonymous ``''`` excluded) at every level: one statement answers all
months at once (each level grouped by ``month`` first, the rollup's key prefix; one month is a key
range). It is plain SQLAlchemy Core and runs unchanged on SQLite and PostgreSQL. The cost grows with
the (month, tool, team, user) keys, not with the events: about 600k keys for the 10M-event
benchmark (``bench/bench_report.py``). A database written before the rollup existed is migrated
(the rollup filled from ``invocations``) the first time it is reported on.

A tool or server reported under more than one team in a month (an ownership change) is shown with
the greatest team name; the per-team breakdown still splits its numbers exactly.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from fleetdeck.errors import InvalidInputError, TelemetryError
from fleetdeck.telemetry.store import (
    EventStore,
    ensure_schema,
    invocation_rollup,
    invocations,
    rollup_is_stale,
)

#: Called as each month is assembled with (month, months done so far, months in the report).
ProgressCallback = Callable[[str, int, int], None]

_MONTH = re.compile(r"(\d{4})-(\d{2})")
# COUNT(DISTINCT) and GROUP BY build temporary B-trees: in memory, not in temp files (1.9x faster).
_SQLITE_READ_PRAGMAS = ("PRAGMA temp_store=MEMORY", "PRAGMA cache_size=-65536")


def validate_month(value: str) -> str:
    """Return ``value`` if it is a real ``YYYY-MM`` month, else raise :class:`InvalidInputError`."""
    match = _MONTH.fullmatch(value.strip())
    if match is None or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1970:
        raise InvalidInputError(f"month must be a real month written YYYY-MM (e.g. 2025-03), got {value!r}")
    return match.group(0)


@dataclass(frozen=True, slots=True)
class RoiFigures:
    """The numbers every row of the report carries."""

    invocations: int = 0
    successful: int = 0
    monthly_active_users: int = 0
    minutes_saved: float = 0.0

    @property
    def failed(self) -> int:
        """Invocations whose outcome was not OK."""
        return self.invocations - self.successful

    @property
    def hours_saved(self) -> float:
        """Σ minutes saved of successful invocations / 60."""
        return self.minutes_saved / 60.0


@dataclass(frozen=True, slots=True)
class ServerRoi:
    """One server's month."""

    server: str
    team: str
    figures: RoiFigures


@dataclass(frozen=True, slots=True)
class ToolRoi:
    """One tool's month; a tool is identified by (server, tool)."""

    server: str
    tool: str
    team: str
    figures: RoiFigures


@dataclass(frozen=True, slots=True)
class TeamRoi:
    """One owning team's month, across all its servers."""

    team: str
    figures: RoiFigures


@dataclass(frozen=True, slots=True)
class MonthRoi:
    """Everything the report says about one month; breakdowns sorted by hours saved, most first."""

    month: str
    totals: RoiFigures
    by_server: tuple[ServerRoi, ...] = ()
    by_tool: tuple[ToolRoi, ...] = ()
    by_team: tuple[TeamRoi, ...] = ()


@dataclass(frozen=True, slots=True)
class RoiReport:
    """The ROI report: one entry per month, newest first."""

    months: tuple[MonthRoi, ...]
    requested_month: str | None = None
    servers: tuple[str, ...] = field(default=())

    @property
    def is_empty(self) -> bool:
        """True when no invocation was recorded in the months asked for."""
        return not self.months

    @property
    def month_range(self) -> tuple[str, str] | None:
        """(oldest, newest) month covered, or None for an empty report."""
        if not self.months:
            return None
        return self.months[-1].month, self.months[0].month


def build_report(
    source: Engine | EventStore,
    month: str | None = None,
    progress: ProgressCallback | None = None,
) -> RoiReport:
    """Query the ROI report for one ``month`` (``YYYY-MM``) or, when None, every month present.

    One statement over the rollup answers every month at once; ``progress`` is called as each month
    is assembled, newest first. Raises :class:`InvalidInputError` for a malformed month and
    :class:`TelemetryError` when the store cannot be read. A store without the ``invocations``
    table is an empty report (and is left untouched); a store written before the rollup existed
    gets its rollup built first (once).
    """
    requested = validate_month(month) if month is not None else None
    engine = source.engine if isinstance(source, EventStore) else source
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(invocations.name):
                return RoiReport(months=(), requested_month=requested)
            stale = rollup_is_stale(conn)
        if stale:
            ensure_schema(engine)
        with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                for pragma in _SQLITE_READ_PRAGMAS:
                    conn.exec_driver_sql(pragma)
            rows = conn.execute(_statement(requested)).all()
    except SQLAlchemyError as exc:
        raise TelemetryError(f"cannot read the telemetry store: {type(exc).__name__}") from exc
    by_month: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_month[str(row[0])].append(row[1:])
    names = sorted(by_month, reverse=True)
    results = []
    for done, name in enumerate(names):
        if progress is not None:
            progress(name, done, len(names))
        result = _month_roi(name, by_month[name])
        if result is not None:
            results.append(result)
    servers = sorted({row.server for result in results for row in result.by_server})
    return RoiReport(months=tuple(results), requested_month=requested, servers=tuple(servers))


def _statement(month: str | None) -> sa.CompoundSelect[Any]:
    """Every level of every month (or of ``month``) in one pass over the rollup.

    Each level groups by ``month`` first, the rollup's primary-key prefix, so the month's rows are
    read in key order and a single month is a key range.
    """
    r = invocation_rollup.c
    figures = (
        sa.func.sum(r.invocations),
        sa.func.sum(r.successes),
        sa.func.count(sa.distinct(sa.func.nullif(r.user_key, ""))),
        sa.func.sum(r.minutes_saved),
    )
    empty = sa.literal("")

    def level(name: str, server: Any, tool: Any, team: Any, *group: Any) -> sa.Select[Any]:
        query = sa.select(r.month, sa.literal(name), server, tool, team, *figures)
        if month is not None:
            query = query.where(r.month == month)
        return query.group_by(r.month, *group)

    return sa.union_all(
        level("tool", r.server, r.tool, sa.func.max(r.team), r.server, r.tool),
        level("server", r.server, empty, sa.func.max(r.team), r.server),
        level("team", empty, empty, r.team, r.team),
        level("total", empty, empty, empty),
    )


def _month_roi(month: str, rows: list[Any]) -> MonthRoi | None:
    totals: RoiFigures | None = None
    servers: list[ServerRoi] = []
    tools: list[ToolRoi] = []
    teams: list[TeamRoi] = []
    for kind, server, tool, team, count, successful, users, minutes in rows:
        figures = RoiFigures(int(count or 0), int(successful or 0), int(users or 0), float(minutes or 0.0))
        if kind == "tool":
            tools.append(ToolRoi(str(server), str(tool), str(team), figures))
        elif kind == "server":
            servers.append(ServerRoi(str(server), str(team), figures))
        elif kind == "team":
            teams.append(TeamRoi(str(team), figures))
        else:
            totals = figures
    if totals is None or totals.invocations == 0:
        return None
    return MonthRoi(
        month=month,
        totals=totals,
        by_server=tuple(sorted(servers, key=lambda r: _rank(r.figures, r.server))),
        by_tool=tuple(sorted(tools, key=lambda r: _rank(r.figures, r.server, r.tool))),
        by_team=tuple(sorted(teams, key=lambda r: _rank(r.figures, r.team))),
    )


def _rank(figures: RoiFigures, *names: str) -> tuple[Any, ...]:
    return (-figures.minutes_saved, -figures.invocations, *names)

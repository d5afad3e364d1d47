"""The ROI report: invocations, monthly active users and hours saved per month, server, tool and team.

Definitions (DESIGN §5):

- *invocations* count every recorded ``tools/call``, whatever its outcome; *successful* counts those
  whose outcome is :attr:`Outcome.OK <fleetdeck.errors.Outcome.OK>`;
- *monthly active users* (MAU) are the distinct non-null pseudonymous ``user_hash`` values with at
  least one invocation in the month, counted exactly at every level: a user of three tools of one
  server is one user of that server, of its team and of the month;
- *hours saved* = Σ ``minutes_saved`` of the successful invocations / 60.

How it is computed: one grouped pass per month over the ``invocations`` rows of that month, served
entirely by the covering index ``ix_invocations_report`` (month, server, tool, team, user_hash,
outcome, minutes_saved) in index order, so no sort and no table access. (``user_hash`` comes before
``outcome`` on purpose: with the opposite order the grouping needs a temporary B-tree, measured 2x
slower.) The pass reduces the month to one row per (server, tool, team, user) — tens of thousands of
rows for a million events — which the database materialises once; the per-tool, per-server,
per-team and month totals, with their exact ``COUNT(DISTINCT)`` of users, are then taken over that
small set in the same statement. The statement is plain SQLAlchemy Core and runs unchanged on SQLite
and PostgreSQL. Months are discovered newest first with one index lookup each
(``MAX(month) WHERE month < ?``) instead of a scan, and are queried concurrently on separate
connections (the database works outside the GIL). The cost is about 0.65 microseconds of database
CPU per event on the 2-vCPU benchmark VM; see ``bench/bench_report.py``.

A tool or server reported under more than one team in a month (an ownership change) is shown with
the greatest team name; the per-team breakdown still splits its numbers exactly.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from fleetdeck.errors import InvalidInputError, Outcome, TelemetryError
from fleetdeck.telemetry.store import EventStore, invocations

#: Called before each month is queried with (month, months done so far, months in the report).
ProgressCallback = Callable[[str, int, int], None]

_MONTH = re.compile(r"(\d{4})-(\d{2})")
_SQLITE_READ_PRAGMAS = ("PRAGMA temp_store=MEMORY", "PRAGMA mmap_size=8589934592")


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
    *,
    workers: int | None = None,
) -> RoiReport:
    """Query the ROI report for one ``month`` (``YYYY-MM``) or, when None, every month present.

    Months are independent, so several are queried at once on separate connections (``workers``,
    default: one per CPU, at most 4; the database does the work, outside the GIL). ``progress`` is
    called as each month starts. Raises :class:`InvalidInputError` for a malformed month and
    :class:`TelemetryError` when the store cannot be read. A store without the ``invocations``
    table is an empty report.
    """
    requested = validate_month(month) if month is not None else None
    engine = source.engine if isinstance(source, EventStore) else source
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(invocations.name):
                return RoiReport(months=(), requested_month=requested)
            months = [requested] if requested is not None else _months_present(conn)
        results = _query_months(engine, months, progress, workers or min(4, os.cpu_count() or 1))
    except SQLAlchemyError as exc:
        raise TelemetryError(f"cannot read the telemetry store: {type(exc).__name__}") from exc
    found = tuple(result for result in results if result is not None)
    servers = sorted({row.server for result in found for row in result.by_server})
    return RoiReport(months=found, requested_month=requested, servers=tuple(servers))


def _query_months(
    engine: Engine, months: list[str], progress: ProgressCallback | None, workers: int
) -> list[MonthRoi | None]:
    """Each month's figures, in the order given; up to ``workers`` months at a time."""
    lock = threading.Lock()
    done = 0

    def one(name: str) -> MonthRoi | None:
        nonlocal done
        if progress is not None:
            with lock:
                progress(name, done, len(months))
        with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                for pragma in _SQLITE_READ_PRAGMAS:
                    conn.exec_driver_sql(pragma)
            result = _query_month(conn, name)
        with lock:
            done += 1
        return result

    if workers <= 1 or len(months) <= 1:
        return [one(name) for name in months]
    with ThreadPoolExecutor(max_workers=min(workers, len(months)), thread_name_prefix="roi") as pool:
        return list(pool.map(one, months))


def _months_present(conn: Connection) -> list[str]:
    """Every month with events, newest first: one MAX() index lookup per month, never a scan."""
    months: list[str] = []
    column = invocations.c.month
    while True:
        query = sa.select(sa.func.max(column))
        if months:
            query = query.where(column < months[-1])
        newest = conn.execute(query).scalar_one_or_none()
        if newest is None:
            return months
        months.append(str(newest))


def _month_statement(month: str) -> sa.Select[Any]:
    c = invocations.c
    ok = c.outcome == str(Outcome.OK)
    per_user = (
        sa.select(
            c.server,
            c.tool,
            c.team,
            c.user_hash,
            sa.func.count().label("invocations"),
            sa.func.sum(sa.case((ok, 1), else_=0)).label("successful"),
            sa.func.sum(sa.case((ok, c.minutes_saved), else_=0.0)).label("minutes"),
        )
        .where(c.month == month)
        .group_by(c.server, c.tool, c.team, c.user_hash)
        .cte("per_user")
        .prefix_with("MATERIALIZED")
    )
    g = per_user.c
    figures = (
        sa.func.sum(g.invocations),
        sa.func.sum(g.successful),
        sa.func.count(sa.distinct(g.user_hash)),
        sa.func.sum(g.minutes),
    )
    empty = sa.literal("")

    def level(name: str, server: Any, tool: Any, team: Any, *group: Any) -> sa.Select[Any]:
        query = sa.select(sa.literal(name), server, tool, team, *figures).select_from(per_user)
        return query.group_by(*group) if group else query

    return sa.union_all(
        level("tool", g.server, g.tool, sa.func.max(g.team), g.server, g.tool),
        level("server", g.server, empty, sa.func.max(g.team), g.server),
        level("team", empty, empty, g.team, g.team),
        level("total", empty, empty, empty),
    )  # type: ignore[return-value]


def _query_month(conn: Connection, month: str) -> MonthRoi | None:
    totals: RoiFigures | None = None
    servers: list[ServerRoi] = []
    tools: list[ToolRoi] = []
    teams: list[TeamRoi] = []
    for kind, server, tool, team, count, successful, users, minutes in conn.execute(_month_statement(month)):
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

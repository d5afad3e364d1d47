"""``fleetdeck report``: render the ROI report as a table, CSV, JSON or a slide-ready PNG chart.

The numbers come from :func:`fleetdeck.telemetry.roi.build_report`; this module only presents them.

JSON (``--format json``) is a stable contract; keys are only ever added::

    {
      "schema": "fleetdeck.roi-report/v1",
      "month": "2025-03" | null,          # the --month asked for, null for all months
      "generated_at": "2025-04-01T09:00:00+00:00",
      "months": [                          # newest first
        {
          "month": "2025-03",
          "totals":    {FIGURES},
          "by_server": [{"server": str, "team": str, FIGURES...}],
          "by_tool":   [{"server": str, "tool": str, "team": str, FIGURES...}],
          "by_team":   [{"team": str, FIGURES...}]
        }
      ]
    }

where FIGURES are ``invocations`` (every call), ``successful`` (outcome ok), ``failed``,
``monthly_active_users`` (distinct pseudonymous users, exact at every level), ``minutes_saved``
(Σ over successful calls, exact) and ``hours_saved`` (``minutes_saved / 60``). Breakdowns are sorted
by hours saved, most first.

CSV (``--format csv``) is one flat table for spreadsheets, one row per month and level, with the
columns of :data:`CSV_COLUMNS`; ``level`` is ``total``, ``server``, ``tool`` or ``team`` and the
name columns that do not apply to a level are empty. ``hours_saved`` is rounded to 4 decimals.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from fleetdeck.errors import FleetdeckError, InvalidInputError
from fleetdeck.settings import FleetdeckSettings
from fleetdeck.telemetry.roi import MonthRoi, RoiFigures, RoiReport, build_report, validate_month
from fleetdeck.telemetry.store import EventStore

JSON_SCHEMA = "fleetdeck.roi-report/v1"
CSV_COLUMNS = (
    "month",
    "level",
    "server",
    "tool",
    "team",
    "invocations",
    "successful",
    "failed",
    "monthly_active_users",
    "minutes_saved",
    "hours_saved",
)
NO_DATA = "no invocations recorded"
_MAX_CHART_SERVERS = 8
_PALETTE = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C")


class ReportFormat(StrEnum):
    """What ``fleetdeck report`` writes."""

    TABLE = "table"
    CSV = "csv"
    JSON = "json"
    PNG = "png"


def _figures(figures: RoiFigures) -> dict[str, Any]:
    return {
        "invocations": figures.invocations,
        "successful": figures.successful,
        "failed": figures.failed,
        "monthly_active_users": figures.monthly_active_users,
        "minutes_saved": figures.minutes_saved,
        "hours_saved": figures.hours_saved,
    }


def report_to_dict(report: RoiReport) -> dict[str, Any]:
    """The JSON document described in this module's docstring."""
    return {
        "schema": JSON_SCHEMA,
        "month": report.requested_month,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "months": [
            {
                "month": entry.month,
                "totals": _figures(entry.totals),
                "by_server": [
                    {"server": r.server, "team": r.team, **_figures(r.figures)} for r in entry.by_server
                ],
                "by_tool": [
                    {"server": r.server, "tool": r.tool, "team": r.team, **_figures(r.figures)}
                    for r in entry.by_tool
                ],
                "by_team": [{"team": r.team, **_figures(r.figures)} for r in entry.by_team],
            }
            for entry in report.months
        ],
    }


def render_json(report: RoiReport) -> str:
    """The report as indented JSON (see the module docstring for the keys)."""
    return json.dumps(report_to_dict(report), indent=2) + "\n"


def _csv_rows(entry: MonthRoi) -> Iterator[tuple[str, str, str, str, RoiFigures]]:
    yield "total", "", "", "", entry.totals
    for server in entry.by_server:
        yield "server", server.server, "", server.team, server.figures
    for tool in entry.by_tool:
        yield "tool", tool.server, tool.tool, tool.team, tool.figures
    for team in entry.by_team:
        yield "team", "", "", team.team, team.figures


def _plain(value: float) -> str:
    """A number as spreadsheets read it: no exponent, no trailing ``.0``."""
    return str(int(value)) if value.is_integer() else repr(value)


def render_csv(report: RoiReport) -> str:
    """The report as CSV with a header row (see :data:`CSV_COLUMNS`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for entry in report.months:
        for level, server, tool, team, f in _csv_rows(entry):
            writer.writerow(
                [
                    entry.month,
                    level,
                    server,
                    tool,
                    team,
                    f.invocations,
                    f.successful,
                    f.failed,
                    f.monthly_active_users,
                    _plain(f.minutes_saved),
                    _plain(round(f.hours_saved, 4)),
                ]
            )
    return buffer.getvalue()


def _numbers(figures: RoiFigures) -> list[str]:
    return [
        f"{figures.invocations:,}",
        f"{figures.successful / figures.invocations:.1%}" if figures.invocations else "-",
        f"{figures.monthly_active_users:,}",
        f"{figures.hours_saved:,.1f}",
    ]


def _table(title: str, names: list[str], rows: list[tuple[list[str], RoiFigures]]) -> Table:
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for name in names:
        table.add_column(name, overflow="fold")
    for column in ("Invocations", "Success", "MAU", "Hours saved"):
        table.add_column(column, justify="right", no_wrap=True)
    for labels, figures in rows:
        table.add_row(*[label or "-" for label in labels], *_numbers(figures))
    return table


def render_table(report: RoiReport, console: Console) -> None:
    """Print the report as rich tables, one block per month."""
    for entry in report.months:
        t = entry.totals
        console.rule(f"[bold]{entry.month}[/bold]")
        console.print(
            f"[bold]{t.invocations:,}[/bold] invocations ({t.successful:,} successful) · "
            f"[bold]{t.monthly_active_users:,}[/bold] monthly active users · "
            f"[bold]{t.hours_saved:,.1f}[/bold] hours saved"
        )
        console.print(_table("By team", ["Team"], [([r.team], r.figures) for r in entry.by_team]))
        console.print(
            _table(
                "By server", ["Server", "Team"], [([r.server, r.team], r.figures) for r in entry.by_server]
            )
        )
        console.print(
            _table("By tool", ["Server", "Tool"], [([r.server, r.tool], r.figures) for r in entry.by_tool])
        )


def _chart_series(report: RoiReport) -> tuple[list[str], dict[str, list[float]]]:
    """Months oldest first, and hours saved per server per month (small servers folded into 'other')."""
    months = [entry.month for entry in reversed(report.months)]
    totals: dict[str, float] = {}
    for entry in report.months:
        for row in entry.by_server:
            totals[row.server] = totals.get(row.server, 0.0) + row.figures.hours_saved
    ranked = sorted(totals, key=lambda name: (-totals[name], name))
    keep = ranked if len(ranked) <= _MAX_CHART_SERVERS else ranked[: _MAX_CHART_SERVERS - 1]
    series: dict[str, list[float]] = {name: [0.0] * len(months) for name in keep}
    if len(keep) < len(ranked):
        series["other"] = [0.0] * len(months)
    for index, entry in enumerate(reversed(report.months)):
        for row in entry.by_server:
            name = row.server if row.server in keep else "other"
            series[name][index] += row.figures.hours_saved
    return months, series


def render_png(report: RoiReport, path: Path) -> Path:
    """Write a 16:9 slide-ready chart of hours saved by server per month to ``path`` and return it."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    if report.month_range is None:
        raise InvalidInputError("the report is empty; there is nothing to chart")
    oldest, newest = report.month_range
    months, series = _chart_series(report)
    span = oldest if oldest == newest else f"{oldest} to {newest}"
    invocations = sum(entry.totals.invocations for entry in report.months)
    hours = sum(entry.totals.hours_saved for entry in report.months)
    latest = report.months[0]
    headline = (
        f"{hours:,.0f} hours saved   ·   {invocations:,} invocations   ·   "
        f"{latest.totals.monthly_active_users:,} monthly active users ({latest.month})"
    )
    fig, ax = plt.subplots(figsize=(16, 9), dpi=125)
    try:
        fig.subplots_adjust(left=0.08, right=0.82 if len(months) > 1 else 0.92, top=0.80, bottom=0.12)
        fig.suptitle(
            f"Hours saved by Fleetdeck MCP servers, {span}",
            x=0.08,
            y=0.95,
            ha="left",
            fontsize=26,
            weight="bold",
        )
        fig.text(0.08, 0.86, headline, ha="left", fontsize=18, color="#333333")
        if len(months) == 1:
            _plot_one_month(ax, series)
        else:
            _plot_months(ax, months, series)
        ax.tick_params(labelsize=15)
        ax.spines[["top", "right"]].set_visible(False)
        ax.set_axisbelow(True)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path


def _thousands(value: float, _position: int) -> str:
    return f"{value:,.0f}"


def _plot_months(ax: Any, months: list[str], series: dict[str, list[float]]) -> None:
    """Stacked bars: one per month, one segment per server, the month's total on top."""
    from matplotlib.ticker import FuncFormatter

    positions = list(range(len(months)))
    bottom = [0.0] * len(months)
    for index, (name, values) in enumerate(series.items()):
        colour = _PALETTE[index % len(_PALETTE)]
        ax.bar(positions, values, bottom=bottom, width=0.7, label=name, color=colour)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    for x, total in zip(positions, bottom, strict=True):
        ax.annotate(
            f"{total:,.0f}", (x, total), textcoords="offset points", xytext=(0, 4), ha="center", fontsize=14
        )
    ax.set_xticks(positions, months, rotation=45 if len(months) > 8 else 0)
    ax.yaxis.set_major_formatter(FuncFormatter(_thousands))
    ax.set_xlabel("Month", fontsize=17)
    ax.set_ylabel("Hours saved (successful calls)", fontsize=17)
    ax.set_ylim(0, max(bottom) * 1.12 or 1)
    ax.grid(axis="y", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(
        handles[::-1],
        labels[::-1],
        title="Server",
        fontsize=15,
        title_fontsize=16,
        frameon=False,
        loc="upper left",
        bbox_to_anchor=(1.01, 1),
    )


def _plot_one_month(ax: Any, series: dict[str, list[float]]) -> None:
    """Horizontal bars: one per server, largest on top, each labelled with its hours."""
    from matplotlib.ticker import FuncFormatter

    names = list(series)[::-1]
    values = [series[name][0] for name in names]
    colours = [_PALETTE[(len(names) - 1 - i) % len(_PALETTE)] for i in range(len(names))]
    ax.barh(names, values, height=0.6, color=colours)
    for y, value in enumerate(values):
        ax.annotate(
            f"{value:,.0f}", (value, y), textcoords="offset points", xytext=(6, 0), va="center", fontsize=15
        )
    ax.xaxis.set_major_formatter(FuncFormatter(_thousands))
    ax.set_xlabel("Hours saved (successful calls)", fontsize=17)
    ax.set_ylabel("Server", fontsize=17)
    ax.set_xlim(0, max(values, default=0.0) * 1.12 or 1)
    ax.grid(axis="x", alpha=0.3)


def _sqlite_file_missing(url: str) -> Path | None:
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        path = Path(parsed.database)
        return None if path.exists() else path
    return None


def _check_month(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return validate_month(value)
    except InvalidInputError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _query(url: str, month: str | None, console: Console) -> RoiReport:
    store = EventStore(url)
    try:
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("finding months", total=None)

            def advance(name: str, done: int, total: int) -> None:
                progress.update(task, description=f"querying {name}", completed=done, total=total)

            report = build_report(store, month, advance)
            progress.update(task, completed=len(report.months) or 1, total=len(report.months) or 1)
        return report
    finally:
        store.dispose()


def report_command(
    month: Annotated[
        str | None,
        typer.Option(
            "--month", help="One month, YYYY-MM (default: every month recorded).", callback=_check_month
        ),
    ] = None,
    format: Annotated[ReportFormat, typer.Option("--format", help="Output format.")] = ReportFormat.TABLE,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write here (PNG default: fleetdeck-report-<month|all>.png)."),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="Fleetdeck TOML configuration file.")
    ] = None,
) -> None:
    """Report invocations, monthly active users and hours saved by server, tool and team."""
    err = Console(stderr=True)
    try:
        settings = FleetdeckSettings.load(config)
        url = settings.telemetry_url()
        missing = _sqlite_file_missing(url)
        report = RoiReport(months=(), requested_month=month) if missing else _query(url, month, err)
    except FleetdeckError as exc:
        err.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(1) from exc
    if report.is_empty:
        where = f" for {month}" if month else ""
        typer.echo(f"{NO_DATA}{where} (telemetry store: {_describe_store(url)})")
        return
    if format is ReportFormat.PNG:
        target = render_png(report, output or Path(f"fleetdeck-report-{month or 'all'}.png"))
        typer.echo(f"wrote {target}")
        return
    if format is ReportFormat.TABLE:
        if output is not None:
            with output.open("w", encoding="utf-8") as handle:
                render_table(report, Console(file=handle, width=120))
        else:
            render_table(report, Console())
        return
    text = render_json(report) if format is ReportFormat.JSON else render_csv(report)
    if output is not None:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}")
    else:
        typer.echo(text, nl=False)


def _describe_store(url: str) -> str:
    """The store URL without its password, for messages."""
    return sa.engine.make_url(url).render_as_string(hide_password=True)

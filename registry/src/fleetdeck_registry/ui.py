"""The web UI for people: server-rendered Jinja2 pages, no script and no build step.

``/`` searchable catalog, ``/servers/{key}`` a server, ``/reviews`` the review queue, ``/drift``
drift alerts with the diff, ``/roi`` the ROI dashboard with charts, and a feedback form per tool
("this tool saved me N minutes"). With ``ui_access = "open"`` the pages read without a token (behind
the company's SSO proxy); with ``"token"`` they need the bearer token; unset, they are open only in
development on a loopback address (the local fleet) and need the token everywhere else.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from fleetdeck.errors import FleetdeckError
from fleetdeck.settings import is_loopback_host
from fleetdeck.telemetry.events import pseudonymise
from fleetdeck_registry.charts import Bar, bar_chart

if TYPE_CHECKING:
    from fleetdeck_registry.server import RegistryServer

MAX_FEEDBACK_MINUTES = 480


class Ui:
    """Page handlers bound to one registry server."""

    def __init__(self, server: RegistryServer) -> None:
        self.server = server
        self.state = server.state
        self.env = Environment(
            loader=PackageLoader("fleetdeck_registry", "templates"),
            autoescape=select_autoescape(default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def render(self, request: Request, template: str, code: int = 200, **context: Any) -> HTMLResponse:
        body = self.env.get_template(template).render(
            request=request, health=self.state.health(), degraded=self.state.degraded, **context
        )
        headers = {
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
            "form-action 'self'; frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff",
        }
        return HTMLResponse(body, status_code=code, headers=headers)

    @property
    def open_access(self) -> bool:
        """Whether pages read without a token (see ``RegistrySettings.ui_access``)."""
        chosen = self.server.registry_settings.ui_access
        if chosen is not None:
            return chosen == "open"
        settings = self.server.settings
        return settings.environment == "development" and is_loopback_host(settings.http.host)

    def refused(self, request: Request) -> Response | None:
        if not self.open_access and self.server.principal_of(request).is_anonymous:
            return HTMLResponse("<h1>Sign-in required</h1><p>Send your bearer token.</p>", status_code=401)
        return None

    def entry_view(self, key: str) -> dict[str, Any]:
        entry = self.state.current.catalog.by_key[key]
        status = self.state.status(key)
        return {
            "entry": entry,
            "status": status,
            "drift": self.state.drift(key),
            "agent": self.state.in_agent_catalog(entry),
        }

    async def catalog(self, request: Request) -> Response:
        if (refusal := self.refused(request)) is not None:
            return refusal
        query = request.query_params.get("q", "").strip()[:200]
        snapshot = self.state.current
        tool_hits: list[Any] = []
        if query:
            hits = snapshot.index.search(query, limit=50)
            keys = list(dict.fromkeys(hit.server for hit in hits))
            tool_hits = [(snapshot.catalog.by_key[h.server], h.tool) for h in hits if h.tool][:20]
        else:
            keys = [entry.key for entry in snapshot.catalog.entries][:500]
        servers = [self.entry_view(key) for key in keys]
        return self.render(
            request,
            "catalog.html",
            query=query,
            servers=servers,
            tool_hits=tool_hits,
            total=len(snapshot.catalog.entries),
        )

    async def server_page(self, request: Request) -> Response:
        if (refusal := self.refused(request)) is not None:
            return refusal
        key = request.path_params["key"]
        if key not in self.state.current.catalog.by_key:
            return self.render(request, "missing.html", code=404, key=key)
        view = self.entry_view(key)
        try:
            history = await anyio.to_thread.run_sync(self.server.history.history, key, 20)
            calibration = {
                c.tool: c for c in await anyio.to_thread.run_sync(self.server.history.calibration, key)
            }
        except (FleetdeckError, OSError):
            history, calibration = [], {}
        roi = await self._tool_hours(key)
        return self.render(
            request,
            "server.html",
            history=history,
            calibration=calibration,
            roi=roi,
            thanks=request.query_params.get("thanks"),
            **view,
        )

    async def _tool_hours(self, key: str) -> dict[str, float]:
        try:
            report = await self.server.roi_report()
        except FleetdeckError:
            return {}
        hours: dict[str, float] = {}
        for month in report.months:
            for tool in month.by_tool:
                if tool.server == key:
                    hours[tool.tool] = round(hours.get(tool.tool, 0.0) + tool.figures.hours_saved, 2)
        return hours

    async def reviews(self, request: Request) -> Response:
        if (refusal := self.refused(request)) is not None:
            return refusal
        queue = [self.entry_view(e.key) for e in self.state.current.catalog.entries if not e.approved]
        return self.render(request, "reviews.html", queue=queue)

    async def drift(self, request: Request) -> Response:
        if (refusal := self.refused(request)) is not None:
            return refusal
        alerts = [
            self.entry_view(e.key) for e in self.state.current.catalog.entries if self.state.drift(e.key)
        ]
        return self.render(request, "drift.html", alerts=alerts)

    async def roi(self, request: Request) -> Response:
        if (refusal := self.refused(request)) is not None:
            return refusal
        try:
            report = await self.server.roi_report()
            calibration = await anyio.to_thread.run_sync(self.server.history.calibration, None)
        except FleetdeckError as exc:
            return self.render(request, "roi.html", error=str(exc), charts=[], months=[], calibration=[])
        months = list(reversed(report.months))[-12:]
        latest = report.months[0] if report.months else None
        charts = [
            bar_chart(
                "Hours saved by month", [Bar(m.month, round(m.totals.hours_saved, 1)) for m in months], "h"
            ),
            bar_chart("Invocations by month", [Bar(m.month, m.totals.invocations) for m in months], "calls"),
            bar_chart(
                "Monthly active users", [Bar(m.month, m.totals.monthly_active_users) for m in months], "users"
            ),
        ]
        if latest is not None:
            charts += [
                bar_chart(
                    f"Hours saved by server, {latest.month}",
                    [Bar(s.server, round(s.figures.hours_saved, 1)) for s in latest.by_server[:15]],
                    "h",
                ),
                bar_chart(
                    f"Hours saved by tool, {latest.month}",
                    [
                        Bar(f"{t.server}.{t.tool}", round(t.figures.hours_saved, 1))
                        for t in latest.by_tool[:15]
                    ],
                    "h",
                ),
                bar_chart(
                    f"Hours saved by team, {latest.month}",
                    [Bar(t.team or "-", round(t.figures.hours_saved, 1)) for t in latest.by_team[:15]],
                    "h",
                ),
            ]
        return self.render(
            request,
            "roi.html",
            error=None,
            charts=[Markup(c) for c in charts],  # noqa: S704 - escaped SVG
            months=report.months,
            calibration=calibration,
        )

    async def feedback(self, request: Request) -> Response:
        if (refusal := self.refused(request)) is not None:
            return refusal
        key = request.path_params["key"]
        entry = self.state.current.catalog.by_key.get(key)
        origin = request.headers.get("origin")
        if origin is not None and urlsplit(origin).netloc != request.url.netloc:
            return HTMLResponse("<h1>Refused</h1><p>Cross-site form posts are refused.</p>", status_code=403)
        form = await request.form(max_files=0, max_fields=10)
        tool, minutes_text = str(form.get("tool", "")), str(form.get("minutes", ""))
        try:
            minutes = float(minutes_text)
        except ValueError:
            minutes = -1.0
        if entry is None or entry.tool(tool) is None or not 0 <= minutes <= MAX_FEEDBACK_MINUTES:
            return HTMLResponse(
                f"<h1>Invalid feedback</h1><p>Minutes must be 0-{MAX_FEEDBACK_MINUTES} for a "
                "tool of this server.</p>",
                status_code=400,
            )
        principal = self.server.principal_of(request)
        user = principal.user.subject if principal.user else None
        user_hash = pseudonymise(user, self.server.settings.pseudonym_key()) if user else None
        comment = str(form.get("comment", ""))[:500]
        await anyio.to_thread.run_sync(
            self.server.history.add_feedback, key, tool, minutes, user_hash, comment
        )
        return RedirectResponse(f"/servers/{key}?thanks={tool}#tools", status_code=303)


def _date(value: dt.date | None) -> str:
    return value.isoformat() if value else "—"


def ui_routes(server: RegistryServer) -> list[BaseRoute]:
    """The UI's routes, bound to ``server``."""
    ui = Ui(server)
    ui.env.filters["date"] = _date
    return [
        Route("/", ui.catalog, methods=["GET"]),
        Route("/servers/{key}", ui.server_page, methods=["GET"]),
        Route("/servers/{key}/feedback", ui.feedback, methods=["POST"]),
        Route("/reviews", ui.reviews, methods=["GET"]),
        Route("/drift", ui.drift, methods=["GET"]),
        Route("/roi", ui.roi, methods=["GET"]),
    ]

"""Review records (``registry-manifests/<server>/reviews.yaml``): three tracks bound to a digest.

A server is in the agent catalog only while ``security``, ``legal-privacy`` and ``genai`` all
approve its current tool-surface digest and none has expired. Humans edit this file, and so does
``fleetdeck reviews approve``; both go through the strict loader, and the command writes it back in
one deterministic, readable layout (free text is quoted; comments are not preserved)::

    server: presto
    tracks:
      security:
        status: approved
        reviewer: alice@example.com
        ticket: SEC-1234
        date: 2026-01-15
        expires: 2027-01-15
        digest: sha256:...
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import unicodedata
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from fleetdeck.errors import InvalidInputError, ManifestError
from fleetdeck.manifest.digest import DIGEST_PATTERN, short
from fleetdeck.manifest.strict_yaml import (
    MAX_YAML_BYTES,
    load_yaml,
    parse_yaml,
    plain_scalar_is_string,
    validate,
)

Track = Literal["security", "legal-privacy", "genai"]
TRACKS: tuple[Track, ...] = ("security", "legal-privacy", "genai")
Status = Literal["approved", "rejected", "pending", "changes-requested"]
REVIEWS_FILE = "reviews.yaml"


def _iso_date(value: Any) -> Any:
    """Dates are written ``YYYY-MM-DD``; nothing else (no timestamps, no numbers) becomes a date."""
    if isinstance(value, dt.datetime):
        raise ValueError("must be a date (YYYY-MM-DD), not a timestamp")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a calendar date") from exc
    raise ValueError("must be a date written YYYY-MM-DD")


IsoDate = Annotated[dt.date, BeforeValidator(_iso_date)]


class ReviewRecord(BaseModel):
    """One track's decision."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    status: Status
    reviewer: str = Field(min_length=1, max_length=200)
    ticket: str = Field(min_length=1, max_length=200)
    date: IsoDate
    expires: IsoDate | None = None
    digest: str | None = Field(default=None, pattern=DIGEST_PATTERN)
    notes: str = Field(default="", max_length=4000)

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        if self.status == "approved" and self.digest is None:
            raise ValueError("an approval must name the digest it approved")
        if self.expires is not None and self.expires <= self.date:
            raise ValueError("expires must be after date")
        return self


class Reviews(BaseModel):
    """All review tracks of one server."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    server: str = Field(pattern=r"^[a-z][a-z0-9-]*$", max_length=64)
    tracks: dict[Track, ReviewRecord] = Field(default_factory=dict)


def load_reviews(path: Path) -> Reviews:
    """Load ``reviews.yaml`` strictly; a :class:`ManifestError` names the file and line."""
    return validate(load_yaml(path), Reviews)


def review_state(reviews: Reviews | None, digest: str, today: dt.date) -> tuple[bool, list[str]]:
    """Whether every track approves ``digest`` today, and if not, one reason per failing track."""
    reasons: list[str] = []
    for track in TRACKS:
        record = reviews.tracks.get(track) if reviews is not None else None
        if record is None:
            reasons.append(f"{track}: missing")
            continue
        if record.status != "approved":
            reasons.append(f"{track}: status is {record.status} (ticket {record.ticket})")
            continue
        if record.digest != digest:
            reasons.append(
                f"{track}: approved digest {short(record.digest or '')} is not the current {short(digest)}"
            )
        if record.expires is not None and today >= record.expires:
            reasons.append(f"{track}: expired on {record.expires.isoformat()}")
    return not reasons, reasons


def _quote(text: str) -> str:
    """A YAML double-quoted string; control, format and separator characters escaped visibly."""
    out = []
    for char in json.dumps(text, ensure_ascii=False)[1:-1]:
        if unicodedata.category(char) in ("Cc", "Cf", "Co", "Cs", "Zl", "Zp") or (
            unicodedata.category(char) == "Zs" and char != " "
        ):
            code = ord(char)
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


_PLAIN_SAFE = re.compile(r"[A-Za-z_][A-Za-z0-9_.@/+-]*(?::[A-Za-z0-9]+)?")


def _scalar(text: str) -> str:
    if _PLAIN_SAFE.fullmatch(text) and plain_scalar_is_string(text):
        return text
    return _quote(text)


def dump_reviews(reviews: Reviews) -> str:
    """The deterministic YAML text of ``reviews`` (tracks in canonical order)."""
    lines = [
        f"# Review records for {reviews.server}: edited by reviewers or `fleetdeck reviews approve`.",
        "# Each approval is bound to the tool-surface digest in server.json. Quote free text.",
        f"server: {_scalar(reviews.server)}",
    ]
    if not reviews.tracks:
        lines.append("tracks: {}")
    else:
        lines.append("tracks:")
    for track in TRACKS:
        record = reviews.tracks.get(track)
        if record is None:
            continue
        lines += [
            f"  {track}:",
            f"    status: {record.status}",
            f"    reviewer: {_scalar(record.reviewer)}",
            f"    ticket: {_scalar(record.ticket)}",
            f"    date: {record.date.isoformat()}",
        ]
        if record.expires is not None:
            lines.append(f"    expires: {record.expires.isoformat()}")
        if record.digest is not None:
            lines.append(f"    digest: {record.digest}")
        if record.notes:
            lines.append(f"    notes: {_quote(record.notes)}")
    return "\n".join(lines) + "\n"


def write_reviews(path: Path, reviews: Reviews) -> None:
    """Write ``reviews`` atomically, after checking the text reads back to the same records."""
    text = dump_reviews(reviews)
    if len(text.encode()) > MAX_YAML_BYTES or validate(parse_yaml(text, path), Reviews) != reviews:
        raise ManifestError(f"{path}: refusing to write review records that would not read back identically")
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    scratch.write_text(text, encoding="utf-8")
    os.replace(scratch, path)


def approve(
    path: Path,
    track: Track,
    reviewer: str,
    ticket: str,
    digest: str,
    expires: dt.date | None,
    today: dt.date,
    *,
    server: str | None = None,
    notes: str = "",
) -> Reviews:
    """Record ``track``'s approval of ``digest`` in ``path`` (created if missing); returns the records."""
    if track not in TRACKS:
        raise InvalidInputError(f"unknown review track {track!r}; tracks: {', '.join(TRACKS)}")
    if not reviewer.strip() or not ticket.strip():
        raise InvalidInputError("reviewer and ticket must not be empty")
    if expires is not None and expires <= today:
        raise InvalidInputError(f"expiry {expires.isoformat()} must be after today ({today.isoformat()})")
    name = server or path.parent.name
    current = load_reviews(path) if path.exists() or path.is_symlink() else Reviews(server=name)
    if current.server != name:
        raise ManifestError(f"{path}:1:1: records are for server {current.server!r}, not {name!r}")
    try:
        record = ReviewRecord(
            status="approved",
            reviewer=reviewer.strip(),
            ticket=ticket.strip(),
            date=today,
            expires=expires,
            digest=digest,
            notes=notes,
        )
    except ValueError as exc:
        raise InvalidInputError(f"invalid approval: {exc}") from exc
    updated = Reviews(server=current.server, tracks={**current.tracks, track: record})
    write_reviews(path, updated)
    return updated

"""Reading Airflow's HTTP answers: a body that raises on errors, an error's detail, a token's expiry."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import urllib3
from airflow_client.client.exceptions import ApiException


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` of a JWT, read without verifying it (only to know when to fetch a new one)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


def error_detail(exc: ApiException) -> str:
    """Airflow's ``detail`` from an error body, short."""
    body = exc.body
    try:
        document = json.loads(body) if isinstance(body, str | bytes) else None
    except ValueError:
        document = None
    detail = document.get("detail") if isinstance(document, dict) else None
    text = json.dumps(detail) if detail is not None and not isinstance(detail, str) else detail
    return (text or exc.reason or "")[:300]


def raw_body(fn: Callable[..., urllib3.BaseHTTPResponse]) -> Callable[..., bytes]:
    """A client method's ``*_without_preload_content`` variant that raises on errors; the body's bytes."""

    def call(*args: Any, **kwargs: Any) -> bytes:
        response = fn(*args, **kwargs)
        try:
            body = response.read()
        finally:
            response.release_conn()
        if response.status >= 300:
            raise ApiException(
                status=response.status, reason=response.reason, body=body.decode(errors="replace")
            )
        return body

    return call

"""The launcher rule: a backend that cannot start skips by hand and fails under CI=true."""

from __future__ import annotations

import socket

import pytest

from fleetdeck_testkit.backends import backend_unavailable, ci_required, free_port


def test_by_hand_an_unavailable_backend_skips_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no initdb found"):
        backend_unavailable("no initdb found")


@pytest.mark.parametrize("value", ["true", "TRUE", "1"])
def test_under_ci_an_unavailable_backend_fails(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    assert ci_required()
    with pytest.raises(pytest.fail.Exception, match="no initdb found"):
        backend_unavailable("no initdb found")


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))

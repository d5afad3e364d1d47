"""The principal: who is calling — an optional human and an optional workload — and how each was proven.

Tools and policies see only this object, never tokens or headers.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Literal

UserProof = Literal["bearer-jwt", "local-process"]
WorkloadProof = Literal["mtls", "xfcc", "jwt-svid"]


@dataclass(frozen=True, slots=True)
class User:
    """A human, as the company identity provider vouched for them."""

    subject: str
    issuer: str
    proven_by: UserProof
    email: str | None = None
    groups: frozenset[str] = field(default_factory=frozenset)
    roles: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class Workload:
    """A calling service, as its SPIFFE identity was proven."""

    spiffe_id: str
    proven_by: WorkloadProof


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request. ``surface`` is the client surface or channel the call comes from."""

    user: User | None = None
    workload: Workload | None = None
    surface: str | None = None

    @property
    def is_anonymous(self) -> bool:
        """Neither a user nor a workload was proven."""
        return self.user is None and self.workload is None

    def describe(self) -> str:
        """A short, log-safe description (``alice via spiffe://…``)."""
        who = self.user.subject if self.user else "no user"
        via = f" via {self.workload.spiffe_id}" if self.workload else ""
        return f"{who}{via}"


ANONYMOUS = Principal()
current_principal: ContextVar[Principal] = ContextVar("fleetdeck_principal", default=ANONYMOUS)

"""The one table of what a cluster runs. A new role is a row here and a `boltlink worker ROLE` entry."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Role:
    name: str
    # Serves HTTP on the master's socket: gets the socket, scales, and is
    # replaced start-first (new worker ready before the old one drains).
    serves_http: bool
    # Instances when the cluster starts; None means "as many as -i says".
    fixed_instances: int | None

    def instances(self, api_instances: int) -> int:
        return api_instances if self.fixed_instances is None else self.fixed_instances


ROLES: tuple[Role, ...] = (
    Role("api", serves_http=True, fixed_instances=None),
    # One per deployment: it alone commits click counters (see workers/aggregator.py).
    Role("aggregator", serves_http=False, fixed_instances=1),
    Role("analytics", serves_http=False, fixed_instances=1),
)


def role_named(name: str) -> Role | None:
    return next((role for role in ROLES if role.name == name), None)

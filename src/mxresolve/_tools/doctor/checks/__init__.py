"""The checks, one module per area. Each is ``async def run(ctx) -> list[Check]``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..codes import Area
from ..context import Context
from ..report import Check
from . import client, connection, endpoints, name, resilience, srv, wellknown

__all__ = ["CHECKS"]

CHECKS: tuple[tuple[Area, Callable[[Context], Awaitable[list[Check]]]], ...] = (
    (Area.NAME, name.run),
    (Area.WELL_KNOWN, wellknown.run),
    (Area.RESILIENCE, resilience.run),
    (Area.SRV, srv.run),
    (Area.CONNECTION, connection.run),
    (Area.FEDERATION, endpoints.run),
    (Area.CLIENT, client.run),
)

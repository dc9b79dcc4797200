"""The server name itself."""

from __future__ import annotations

from ..codes import Area
from ..context import Context
from ..report import Check


async def run(ctx: Context) -> list[Check]:
    name = ctx.server_name
    check = Check(name="server name", area=Area.NAME, where=name.text)
    if name.is_ip_literal:
        check.problem(
            "name-ip-literal",
            f"{name.text} is an IP address: it can never be delegated (no well-known, no SRV), "
            "and the server's certificate must be issued for that IP address",
            "Use a DNS name as the server name for a new server. For this one, keep a "
            "certificate valid for the IP address on the federation port.",
        )
    else:
        check.detail = f"a DNS name{f' with port {name.port}' if name.port else ''}"
    return [check]

"""One A/B process (see ab.py): imports mxresolve from the ``src`` it is given, times cold rounds.

Reads ``{"src", "world", "names", "rounds"}`` as JSON on stdin and prints one JSON object:
which ``mxresolve`` it imported, and the seconds of each timed round, async and sync.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

payload = json.load(sys.stdin)
sys.path.insert(0, payload["src"])  # before anything imports mxresolve
sys.path.insert(1, str(Path(__file__).resolve().parent))

from _measure import WorldConfig, async_cold_round, sync_cold_round  # noqa: E402

import mxresolve  # noqa: E402

world = WorldConfig(
    payload["world"]["nameserver"], payload["world"]["cafile"], tuple(payload["world"]["allow_ips"])
)
names = payload["names"]
rounds = int(payload["rounds"])

asyncio.run(async_cold_round(world, names))  # untimed: imports and lazy set-up
sync_cold_round(world, names)
async_seconds = [asyncio.run(async_cold_round(world, names))[0] for _ in range(rounds)]
sync_seconds = [sync_cold_round(world, names)[0] for _ in range(rounds)]
json.dump(
    {"mxresolve": mxresolve.__file__, "async": async_seconds, "sync": sync_seconds}, sys.stdout
)

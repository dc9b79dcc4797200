"""The federation endpoints on each target: version and the server's signing keys."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

from ...._core.events import HttpsFailure, HttpsResponse, Resolution, Target
from ..codes import Area
from ..context import EXTRA_HINT, Context, have
from ..probe import Probe
from ..report import Check

VERSION_PATH = "/_matrix/federation/v1/version"
KEYS_PATH = "/_matrix/key/v2/server"


def version_ok(response: HttpsResponse | HttpsFailure | None) -> bool:
    if not isinstance(response, HttpsResponse) or response.status != 200:
        return False
    document = _json(response)
    return isinstance(document, dict) and isinstance(document.get("server"), dict)


def describe_failure(p: Probe) -> str:
    if not p.connected:
        return f"no connection: {p.connect_error}"
    if p.tls_failure is not None:
        return f"TLS: {p.tls_error}"
    r = p.response
    if isinstance(r, HttpsFailure):
        return str(r)
    if isinstance(r, HttpsResponse):
        return f"HTTP {r.status}" if r.status != 200 else "not a version response"
    return "no answer"


def _json(response: HttpsResponse) -> Any:
    try:
        return json.loads(response.body)
    except (ValueError, RecursionError):
        return None


def _url(target: Target, address: str, path: str) -> str:
    at = f"[{address}]" if ":" in address else address
    return f"https://{at}:{target.port}{path} (Host: {target.host_header})"


async def _endpoints(ctx: Context, target: Target, address: str) -> tuple[Check, Check, bool]:
    version = Check(
        name=f"version on {address}:{target.port}",
        area=Area.FEDERATION,
        where=_url(target, address, VERSION_PATH),
    )
    keys = Check(
        name=f"keys on {address}:{target.port}",
        area=Area.FEDERATION,
        where=_url(target, address, KEYS_PATH),
    )
    verified = await ctx.probe(
        address,
        target.port,
        target.tls_server_name,
        path=VERSION_PATH,
        host_header=target.host_header,
    )
    if not verified.connected or verified.tls_failure in ("handshake", "timeout"):
        for c in (version, keys):
            c.skip("no TLS session (see the connection checks)")
        return version, keys, False
    # TLS problems are the connection checks'; look past them to say what else is wrong.
    trusted = verified.tls_failure is None
    answered = (
        verified
        if trusted
        else await ctx.probe(
            address,
            target.port,
            target.tls_server_name,
            verify=False,
            path=VERSION_PATH,
            host_header=target.host_header,
        )
    )
    if version_ok(answered.response):
        document = _json(answered.response)  # type: ignore[arg-type]
        server = document["server"]
        version.detail = f"{server.get('name', '?')} {server.get('version', '?')}"
    else:
        version.problem(
            "version-failed",
            f"GET {VERSION_PATH} on {address}:{target.port} failed: {describe_failure(answered)}",
            "Route /_matrix/federation/* on this host and port to the homeserver (a reverse "
            "proxy that forwards only /_matrix/client/* causes this), and check the homeserver "
            "listens for federation there.",
        )
    fetched = await ctx.probe(
        address,
        target.port,
        target.tls_server_name,
        verify=trusted,
        path=KEYS_PATH,
        host_header=target.host_header,
    )
    keys_ok = _check_keys(ctx, keys, fetched, address, target)
    return version, keys, trusted and version_ok(answered.response) and keys_ok


def _check_keys(ctx: Context, check: Check, fetched: Probe, address: str, target: Target) -> bool:
    response = fetched.response
    if not isinstance(response, HttpsResponse) or response.status != 200:
        check.problem(
            "keys-unreachable",
            f"GET {KEYS_PATH} on {address}:{target.port} failed: {describe_failure(fetched)}; "
            "no server can check this server's signatures",
            "Route /_matrix/key/* to the homeserver, like /_matrix/federation/*.",
        )
        return False
    document = _json(response)
    name = ctx.server_name.text
    problems: list[str] = []
    if not isinstance(document, dict):
        problems.append("the body is not a JSON object")
        document = {}
    if document and document.get("server_name") != name:
        problems.append(
            f"server_name is {document.get('server_name')!r}, not {name!r} (is this the right "
            "homeserver, with server_name set to the Matrix domain?)"
        )
    valid_until = document.get("valid_until_ts")
    if document and (not isinstance(valid_until, int) or valid_until < time.time() * 1000):
        problems.append(f"valid_until_ts {valid_until!r} is not in the future")
    verify_keys = document.get("verify_keys")
    ed25519 = {
        key_id: value.get("key")
        for key_id, value in (verify_keys.items() if isinstance(verify_keys, dict) else ())
        if key_id.startswith("ed25519:") and isinstance(value, dict)
    }
    if document and not ed25519:
        problems.append("verify_keys has no ed25519 key")
    signature_note = ""
    if document and ed25519 and not problems:
        if have("signedjson"):
            failure = _verify(document, name, ed25519)
            if failure:
                problems.append(failure)
            else:
                signature_note = "; self-signature verified"
        else:
            signature_note = f"; self-signature not checked ({EXTRA_HINT})"
    if problems:
        check.problem(
            "keys-invalid",
            f"{KEYS_PATH} on {address}:{target.port}: " + "; ".join(problems),
            "Check the homeserver's server_name and signing key configuration; if a proxy or "
            "cache serves this path, make it pass the homeserver's response through unchanged.",
        )
        return False
    check.detail = f"keys {', '.join(sorted(ed25519))}{signature_note}"
    return True


def _verify(document: dict[str, Any], server_name: str, keys: dict[str, Any]) -> str:
    """'' if a listed ed25519 key's signature verifies, else why not."""
    from signedjson.key import decode_verify_key_bytes
    from signedjson.sign import SignatureVerifyException, verify_signed_json

    signatures = document.get("signatures")
    mine = signatures.get(server_name) if isinstance(signatures, dict) else None
    if not isinstance(mine, dict) or not any(k in mine for k in keys):
        return f"the response is not signed by {server_name} with a key it lists"
    for key_id, key in keys.items():
        if key_id not in mine or not isinstance(key, str):
            continue
        try:
            padded = key + "=" * (-len(key) % 4)
            verify_key = decode_verify_key_bytes(key_id, base64.b64decode(padded))
            verify_signed_json(document, server_name, verify_key)
        except (SignatureVerifyException, ValueError) as exc:
            return f"the self-signature by {key_id} does not verify ({exc})"
    return ""


async def run(ctx: Context) -> list[Check]:
    if not isinstance(ctx.resolution, Resolution):
        check = Check(name="federation endpoints", area=Area.FEDERATION, where=ctx.server_name.text)
        check.skip("the resolution failed: no target to ask")
        return [check]
    jobs = [
        (target, _endpoints(ctx, target, address))
        for target in ctx.resolution.targets
        for address in target.addresses
    ]
    results = await asyncio.gather(*(job for _, job in jobs))
    out: list[Check] = []
    for (target, _), (version, keys, ok) in zip(jobs, results, strict=True):
        ctx.target_ok[target] = ctx.target_ok.get(target, False) or ok
        out += [version, keys]
    return out

"""Every address of every target: TCP, then TLS against the name the spec requires."""

from __future__ import annotations

import asyncio
import datetime as dt

from ...._core.events import DnsQuery, RecordType, Resolution, Target
from ..codes import Area
from ..context import EXTRA_HINT, Context, have
from ..probe import Probe
from ..report import Check
from .endpoints import VERSION_PATH

SOON = 14 * 86400.0


def _at(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _certificate_details(der: bytes | None) -> str:
    """Subject names, issuer and expiry of a certificate, with the ``doctor`` extra."""
    if der is None or not have("cryptography"):
        return ""
    from cryptography import x509

    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return ""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = [str(n.value) for n in san]
    except x509.ExtensionNotFound:
        sans = []
    issuer = cert.issuer.rfc4514_string() or "(empty)"
    self_signed = " (self-signed)" if cert.issuer == cert.subject else ""
    expiry = cert.not_valid_after_utc.strftime("%Y-%m-%d %H:%M UTC")
    names = ", ".join(sans) or cert.subject.rfc4514_string()
    return f"; it is for {names}, issued by {issuer}{self_signed}, valid until {expiry}"


def _not_after(der: bytes | None) -> float | None:
    if der is None or not have("cryptography"):
        return None
    from cryptography import x509

    try:
        return x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp()
    except ValueError:
        return None


async def _address(ctx: Context, target: Target, address: str) -> tuple[Check, bool]:
    where = _at(address, target.port)
    check = Check(name=f"TLS {where}", area=Area.CONNECTION, where=where)
    name = target.tls_server_name
    verified = await ctx.probe(
        address, target.port, name, path=VERSION_PATH, host_header=target.host_header
    )
    if not verified.connected:
        check.detail = f"no connection: {verified.connect_error}"
        return check, False
    if verified.tls_failure == "timeout":  # a black hole answers TCP and nothing else
        check.detail = f"the connection opens, then nothing: {verified.tls_error}"
        return check, False
    der = verified.der
    if verified.tls_failure == "handshake":  # no certificate to look at
        _tls_problem(check, verified, target, "")
    elif verified.tls_failure is not None:
        raw = await ctx.probe(address, target.port, name, verify=False)
        der = raw.der
        _tls_problem(check, verified, target, _certificate_details(raw.der))
    elif verified.not_after is not None and verified.not_after - ctx.started < SOON:
        days = (verified.not_after - ctx.started) / 86400
        when = dt.datetime.fromtimestamp(verified.not_after, dt.timezone.utc)
        check.problem(
            "tls-expires-soon",
            f"the certificate for {name} on {where} expires in {days:.1f} days "
            f"({when:%Y-%m-%d %H:%M} UTC)",
            "Renew it now, and check the renewal job reloads every server that uses it "
            "(the federation port's too, not only 443).",
        )
    else:
        check.detail = f"certificate valid for {name}"
    if target.port != 443:
        for web in await _web_addresses(ctx, target, address):
            if await _compare_with_443(ctx, check, target, web, der):
                break
    return check, True


async def _web_addresses(ctx: Context, target: Target, address: str) -> list[str]:
    """Where port 443 may serve the same name: the target's own address, and the server
    name's addresses when the certificate must be the server name's (an SRV target
    carrying a copy of the base domain's certificate)."""
    out = [address]
    name = ctx.server_name
    if target.tls_server_name == name.host and target.host != name.host and not name.is_ip_literal:
        for rdtype in (RecordType.AAAA, RecordType.A):
            try:
                found = await ctx.dns.query(
                    DnsQuery(qname=name.host + ".", rdtype=rdtype), ctx.options.timeout
                )
            except Exception:  # a transport bug: compare what we can
                continue
            out += [str(r) for r in found.records if ctx.ip_policy.refusal(str(r)) is None]
    return list(dict.fromkeys(out))


def _tls_problem(check: Check, p: Probe, target: Target, details: str) -> None:
    name = target.tls_server_name
    srv_note = ""
    if target.host != name:
        srv_note = (
            f"; the spec requires a certificate for {name}, not for the SRV or delegated "
            f"target {target.host}"
        )
    if p.tls_failure == "name-mismatch":
        check.problem(
            "tls-name-mismatch",
            f"the certificate on {check.where} is not valid for {name}: {p.tls_error}"
            f"{details}{srv_note}",
            f"Serve a certificate whose names include {name} on this port (with SNI {name}).",
        )
    elif p.tls_failure == "expired":
        check.problem(
            "tls-expired",
            f"the certificate on {check.where} for {name} has expired: {p.tls_error}{details}",
            "Renew it, and make sure the federation port's server reloads the renewed "
            "certificate (a copy made by hand does not renew).",
        )
    else:
        check.problem(
            "tls-untrusted",
            f"the certificate on {check.where} for {name} is not trusted: {p.tls_error}{details}",
            "Use a certificate from a public CA (Let's Encrypt, for example), and serve the "
            "full chain (leaf and intermediates), not the leaf alone; self-signed certificates "
            "are refused by every server since Synapse 1.0.",
        )


async def _compare_with_443(
    ctx: Context, check: Check, target: Target, address: str, der: bytes | None
) -> bool:
    """Report a different certificate for the name on ``address``:443; True if reported."""
    if der is None:
        return False
    web = await ctx.probe(address, 443, target.tls_server_name, verify=False)
    if web.der is None or web.der == der:
        return False
    web_trusted = await ctx.probe(address, 443, target.tls_server_name)
    if web_trusted.tls_failure is not None:
        return False  # 443 has no valid certificate for this name: not a copy of it
    mine, theirs = _not_after(der), _not_after(web.der)
    ages = ""
    if mine is not None and theirs is not None:
        fmt = "%Y-%m-%d"
        ages = (
            f" (federation port: valid until "
            f"{dt.datetime.fromtimestamp(mine, dt.timezone.utc):{fmt}}; 443: until "
            f"{dt.datetime.fromtimestamp(theirs, dt.timezone.utc):{fmt}})"
        )
    check.problem(
        "tls-differs-between-ports",
        f"{_at(address, 443)} and {check.where} serve different certificates for "
        f"{target.tls_server_name}{ages}: the federation port likely has a stale copy",
        "Point both servers at the same certificate files (the ones the ACME client renews), "
        "and reload the federation port's server after each renewal.",
    )
    return True


async def run(ctx: Context) -> list[Check]:
    if not isinstance(ctx.resolution, Resolution):
        check = Check(name="connections", area=Area.CONNECTION, where=ctx.server_name.text)
        check.skip("the resolution failed: no target to connect to")
        return [check]
    out: list[Check] = []
    for target in ctx.resolution.targets:
        results = await asyncio.gather(*(_address(ctx, target, a) for a in target.addresses))
        checks = [c for c, _ in results]
        answered = [ok for _, ok in results]
        where = f"{target.host}:{target.port}"
        if not any(answered):
            summary = Check(name=f"reach {where}", area=Area.CONNECTION, where=where)
            summary.problem(
                "target-unreachable",
                f"no address of {where} accepts a connection: "
                + "; ".join(f"{c.where}: {c.detail}" for c in checks),
                f"Check the homeserver (or its proxy) listens on port {target.port} on "
                f"{', '.join(target.addresses)}, and that the firewall lets the port in.",
            )
            out.append(summary)
            continue
        for check, ok in zip(checks, answered, strict=True):
            if not ok:
                check.problem(
                    "target-address-unreachable",
                    f"{check.where} does not accept connections ({check.detail}), while other "
                    f"addresses of {target.host} do: servers that try it first wait or fail",
                    f"Make the server listen on {check.where} too (IPv6 is the usual culprit), "
                    "or remove that address from DNS.",
                )
        out += checks
    if not have("cryptography"):
        skipped = Check(name="certificate details", area=Area.CONNECTION, where="-")
        skipped.skip(
            "names, issuer and expiry of untrusted certificates, and the age of certificates "
            f"that differ between ports, need the doctor extra ({EXTRA_HINT})"
        )
        out.append(skipped)
    return out

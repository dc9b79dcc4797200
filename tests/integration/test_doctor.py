"""``mxresolve doctor`` against real, misconfigured servers (tests/integration/doctor_world.py).

One test per case: the doctor must report the case's codes (and the healthy case none), with
the right exit status. Plus the JSON contract, the deadline with every host a black hole, the
doctor without its extra, and ``resolve``'s summary of what it recovered from.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest

from mxresolve._tools.cli import main
from mxresolve._tools.doctor.codes import CODES, Severity

from .doctor_world import CASES, Case, DoctorWorld, case, iter_codes
from .synapse import SynapseServer
from .world import ALLOW_IPS

pytestmark = pytest.mark.integration


def _doctor(
    capsys: pytest.CaptureFixture[str], args: list[str], *, as_json: bool = True
) -> tuple[int, Any]:
    status = main(["doctor", *args, *(["--json"] if as_json else [])])
    out = capsys.readouterr().out
    return status, (json.loads(out) if as_json else out)


def _resolve(
    capsys: pytest.CaptureFixture[str],
    world: DoctorWorld,
    server_name: str,
    *extra: str,
    trust_ca: bool = True,
) -> tuple[int, str]:
    """``mxresolve resolve`` against the doctor world's DNS (``trust_ca``: with its CA): the
    exit status and what it printed."""
    cafile = ["--cafile", world.cafile] if trust_ca else []
    status = main(
        ["resolve", server_name, *extra, "--nameserver", world.knot.nameserver, *cafile,
         "--allow-ip", "127.0.0.0/8", "--timeout", "3"]
    )  # fmt: skip
    return status, capsys.readouterr().out


def _codes(report: dict[str, Any]) -> set[str]:
    return {p["code"] for p in report["problems"]}


def test_every_code_has_a_case() -> None:
    assert set(iter_codes()) == set(CODES)


@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_case(doctor_world: DoctorWorld, capsys: pytest.CaptureFixture[str], c: Case) -> None:
    status, report = _doctor(capsys, doctor_world.doctor_args(c))
    found = _codes(report)
    assert c.codes <= found, f"{c.description}: missing {c.codes - found}; got {found}"
    if c.federation_ok is not None:
        assert report["federation_ok"] is c.federation_ok, report["verdict"]
        assert status == (0 if c.federation_ok else 1)
    if not c.codes:  # the healthy case: no check may report anything, not even info
        assert report["problems"] == [], report["problems"]
        assert status == 0


def test_healthy_keys_are_verified(
    doctor_world: DoctorWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    _, report = _doctor(capsys, doctor_world.doctor_args(case("good")))
    keys = [c for c in report["checks"] if c["name"].startswith("keys on")]
    assert keys
    assert all("self-signature verified" in c["detail"] for c in keys), keys
    results = {c["result"] for c in report["checks"]}
    assert results <= {"ok", "skipped"}, results


def test_json_contract(doctor_world: DoctorWorld, capsys: pytest.CaptureFixture[str]) -> None:
    c = case("stale")
    status, report = _doctor(capsys, doctor_world.doctor_args(c))
    assert status == 1
    assert {"server_name", "federation_ok", "resolution", "problems", "checks"} <= set(report)
    assert report["server_name"] == c.server_name
    for problem in report["problems"]:
        assert set(problem) == {"code", "severity", "message", "fix", "where"}
        assert problem["code"] in CODES
        assert problem["severity"] in {s.value for s in Severity}
        assert all(problem[k] for k in ("message", "fix", "where"))
    for check in report["checks"]:
        assert check["result"] in {"ok", "problem", "skipped", "timeout"}
        assert {"name", "area", "where", "detail", "problems"} <= set(check)
    # The resolution is the same object `resolve --json` prints.
    status, out = _resolve(capsys, doctor_world, c.server_name, "--json")
    resolved = json.loads(out)
    assert status == 0
    assert report["resolution"]["step"] == resolved["step"]
    assert report["resolution"]["targets"] == resolved["targets"]
    assert set(report["resolution"]) == set(resolved)


def test_exit_status_two_for_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    status, report = _doctor(capsys, ["exa mple.org"])
    assert status == 2
    assert report["error"]["kind"] == "invalid_server_name"
    assert main(["doctor", "example.org:99999"]) == 2
    assert "port" in capsys.readouterr().err
    assert main(["doctor", "example.org", "--timeout", "0", "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["error"]["kind"] == "invalid_argument"


def test_human_report(doctor_world: DoctorWorld, capsys: pytest.CaptureFixture[str]) -> None:
    status, out = _doctor(capsys, doctor_world.doctor_args(case("stale")), as_json=False)
    assert status == 1
    first = out.splitlines()[0]
    assert first.startswith("FAIL  Federation with stale.mxdoc fails (tls-expired")
    assert "\x1b[" not in out  # captured output is not a terminal: plain
    areas = [line for line in out.splitlines() if line.isupper()]
    assert areas[:3] == ["NAME", "WELL-KNOWN", "RESILIENCE"]
    assert "tls-differs-between-ports" in out
    assert "fix: " in out


@pytest.mark.parametrize("where", ["dns", "hosts"])
def test_black_holes_end_within_the_deadline(
    doctor_world: DoctorWorld, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    timeout = 1.0
    c = case("good")
    args = doctor_world.doctor_args(c, timeout=timeout)
    if where == "dns":  # every DNS query goes unanswered
        args[args.index("--nameserver") + 1] = doctor_world.blackhole.nameserver
    else:  # DNS answers; every host accepts connections and never answers
        args[0] = "blackhole.mxdoc"
    started = time.monotonic()
    status, report = _doctor(capsys, args)
    elapsed = time.monotonic() - started
    assert elapsed < 5 * timeout + 2, elapsed
    assert status == 1
    assert report["federation_ok"] is False
    if where == "hosts":  # connections open, then nothing: unreachable, not "untrusted"
        assert {"well-known-unreachable", "target-unreachable"} <= _codes(report)
        assert "tls-untrusted" not in _codes(report)


def _without_extra(args: list[str]) -> subprocess.CompletedProcess[str]:
    # As if signedjson and cryptography were not installed: importing them fails.
    code = (
        "import sys; sys.modules.update(signedjson=None, cryptography=None); "
        "from mxresolve._tools.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    return subprocess.run(
        [sys.executable, "-c", code, "doctor", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_without_the_doctor_extra(doctor_world: DoctorWorld) -> None:
    healthy = _without_extra([*doctor_world.doctor_args(case("good")), "--json"])
    assert healthy.returncode == 0, healthy.stderr
    report = json.loads(healthy.stdout)
    assert report["problems"] == []
    skipped = [c for c in report["checks"] if c["result"] == "skipped"]
    assert any("mxresolve[doctor]" in c["detail"] for c in skipped)
    keys = [c for c in report["checks"] if c["name"].startswith("keys on")]
    assert all("not checked" in c["detail"] for c in keys)
    # The signature check needs signedjson: without it the tampered keys pass...
    tampered = _without_extra([*doctor_world.doctor_args(case("tampered")), "--json"])
    assert "keys-invalid" not in _codes(json.loads(tampered.stdout))
    # ... and the human report says what to install.
    human = _without_extra(doctor_world.doctor_args(case("good")))
    assert "pip install 'mxresolve[doctor]'" in human.stdout


def test_resolve_speaks_up(doctor_world: DoctorWorld, capsys: pytest.CaptureFixture[str]) -> None:
    # Without --cafile the well-known's certificate is untrusted; resolution goes on at step 4.
    status, out = _resolve(capsys, doctor_world, "good.mxdoc", trust_ca=False)
    assert status == 0
    summary = out[out.index("Decided by step 4") :]
    assert "Recovered from: the well-known failed: certificate_invalid" in summary
    assert "resolution continued at step 4" in summary
    assert "mxresolve doctor good.mxdoc" in summary


def test_resolve_quiet_when_nothing_failed(
    doctor_world: DoctorWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = _resolve(capsys, doctor_world, "good.mxdoc")
    assert status == 0
    assert "Recovered from" not in out
    assert "Nothing to recover from" in out


def _run_on_terminal(args: list[str], *, stdout_tty: bool, env: dict[str, str]) -> tuple[str, str]:
    """Run the CLI with stderr (and maybe stdout) on a pseudo-terminal: (stdout, stderr)."""
    import pty
    import select
    import tempfile

    err_master, err_slave = pty.openpty()
    out_master, out_slave = pty.openpty() if stdout_tty else (None, None)
    # Not a pipe when piped: a full pipe would block the child while we read the pty.
    with tempfile.TemporaryFile() as piped:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mxresolve", *args],
            stdout=out_slave if out_slave is not None else piped,
            stderr=err_slave,
            env={**os.environ, **env},
        )
        os.close(err_slave)
        if out_slave is not None:
            os.close(out_slave)
        chunks = {fd: b"" for fd in (err_master, out_master) if fd is not None}
        open_fds, deadline = set(chunks), time.monotonic() + 60
        while open_fds and time.monotonic() < deadline:
            ready, _, _ = select.select(list(open_fds), [], [], 0.5)
            for fd in ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:  # the child closed its end
                    data = b""
                if not data:
                    open_fds.discard(fd)
                chunks[fd] += data
        proc.wait(timeout=10)
        piped.seek(0)
        out = chunks[out_master] if out_master is not None else piped.read()
    for fd in chunks:
        os.close(fd)
    return out.decode(errors="replace"), chunks[err_master].decode(errors="replace")


def test_progress_and_colour_on_a_terminal(doctor_world: DoctorWorld) -> None:
    args = ["doctor", *doctor_world.doctor_args(case("soon"))]
    out, err = _run_on_terminal(args, stdout_tty=True, env={"NO_COLOR": ""})
    assert "checking:" in err  # progress, on stderr
    assert "\x1b[33m[warning]" in out  # coloured on a terminal
    out, _ = _run_on_terminal(args, stdout_tty=True, env={"NO_COLOR": "1"})
    assert "[warning] tls-expires-soon" in out
    assert "\x1b[" not in out
    out, err = _run_on_terminal([*args, "--json"], stdout_tty=False, env={"NO_COLOR": ""})
    assert json.loads(out)["federation_ok"] is True  # piped: exactly one JSON object


def test_no_progress_when_stderr_is_not_a_terminal(doctor_world: DoctorWorld) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mxresolve", "doctor", *doctor_world.doctor_args(case("soon"))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    assert done.stderr == ""
    assert "\x1b[" not in done.stdout


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_client_discovery_on_real_servers(doctor_world: DoctorWorld, driver: str) -> None:
    import asyncio

    from mxresolve import ClientOutcome, async_discover_client, discover_client

    def discover(name: str) -> Any:
        kw: dict[str, Any] = {
            "nameservers": [doctor_world.knot.nameserver],
            "cafile": doctor_world.cafile,
            "allow_ips": ["127.0.0.0/8"],
            "request_timeout": 3.0,
            "support": True,
        }
        if driver == "sync":
            return discover_client(name, **kw)
        return asyncio.run(async_discover_client(name, **kw))

    good = discover("@bot:good.mxdoc")
    assert good.outcome is ClientOutcome.SUCCESS, good.reason
    assert good.homeserver_base_url == "https://hs.good.mxdoc"
    assert good.versions == ("v1.11", "v1.12")
    assert good.support is not None
    assert good.support.contacts[0].matrix_id == "@admin:good.mxdoc"
    dead = discover("@bot:clientdead.mxdoc")  # base_url where nothing listens
    assert dead.outcome is ClientOutcome.FAIL_ERROR
    assert dead.step == "3e"
    assert discover("stale.mxdoc").outcome is ClientOutcome.IGNORE  # a 404
    bad_support = discover("badsupport.mxdoc")
    assert bad_support.support_error == "the support file is not JSON"


def test_resolve_speaks_up_on_failure_too(
    doctor_world: DoctorWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = _resolve(capsys, doctor_world, "srvdot.mxdoc")
    assert status == 1
    assert "Along the way: the well-known failed: connection_refused" in out
    assert "mxresolve doctor srvdot.mxdoc" in out


def _named(report: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [c for c in report["checks"] if c["name"] == name or c["name"].startswith(name + " ")]


@pytest.mark.synapse
@pytest.mark.parametrize("route", ["wk_nameserver", "srv_nameserver"])
def test_a_real_synapse_is_healthy(
    synapse_server: SynapseServer, capsys: pytest.CaptureFixture[str], route: str
) -> None:
    # The shared fixture (tests/integration/synapse.py), deployed with care: hs.mxtest delegated
    # by a well-known with an SRV fallback to the same listener (route wk_nameserver), or found
    # through SRV alone with a 404 for the server well-known (route srv_nameserver); on both,
    # a client well-known with CORS whose base_url reaches Synapse's client API through nginx,
    # and a support file. The doctor must find nothing at all, not even info.
    args = [synapse_server.server_name, "--nameserver", getattr(synapse_server, route),
            "--cafile", synapse_server.cafile, "--timeout", "5"]  # fmt: skip
    for cidr in ALLOW_IPS:
        args += ["--allow-ip", cidr]
    status, report = _doctor(capsys, args)
    assert report["problems"] == [], report["problems"]
    assert report["federation_ok"] is True
    assert status == 0
    assert report["verdict"].endswith("nothing needs doing."), report["verdict"]
    assert report["resolution"]["step"] == {"wk_nameserver": "3.2", "srv_nameserver": "4"}[route]
    assert {c["result"] for c in report["checks"]} <= {"ok", "skipped"}, report["checks"]
    # Synapse's own signing key, its self-signature verified with signedjson.
    (keys,) = _named(report, "keys on")
    assert keys["result"] == "ok"
    assert "self-signature verified" in keys["detail"], keys
    assert synapse_server.verify_key_id in keys["detail"], keys
    (version,) = _named(report, "version on")
    assert version["detail"].startswith("Synapse "), version
    # The checks that would speak up on a careless deployment ran, and passed.
    (fallback,) = _named(report, "without the well-known")
    if route == "wk_nameserver":
        assert fallback["result"] == "ok"
        assert fallback["detail"] == "step 4 would reach hs-fed.mxtest:8448", fallback
    else:
        assert fallback["result"] == "skipped"  # nothing is delegated
    (client,) = _named(report, "client discovery")
    assert client["detail"] == f"homeserver {synapse_server.client_base_url}", client
    (cors,) = _named(report, "client well-known CORS")
    assert cors["result"] == "ok"
    (support,) = _named(report, "support file")
    assert support["detail"] == "1 contact(s)", support

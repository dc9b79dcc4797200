"""Runs the peer drivers of benchmarks/peers/ (each in its own venv) and returns their JSON.

The drivers are black boxes: one JSON object on stdin, one on stdout (see peers/README.md).
A missing venv or a failed run is reported as ``{"error": ...}``, never raised, so the bench
still prints what it could measure.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "benchmarks" / "peers"


@dataclass(frozen=True)
class Peer:
    key: str  # "synapse" | "resolvematrix"
    label: str
    python: Path
    driver: Path
    requirements: Path

    @property
    def available(self) -> bool:
        return self.python.exists()

    def run(self, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
        if not self.available:
            return {"error": f"{self.python} not found (create the venv: see peers/README.md)"}
        try:
            proc = subprocess.run(
                [str(self.python), str(self.driver)],
                input=json.dumps(payload),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                cwd=ROOT,
            )
        except subprocess.TimeoutExpired:
            return {"error": f"driver timed out after {timeout:g} s"}
        try:
            out: dict[str, Any] = json.loads(proc.stdout)
        except json.JSONDecodeError:
            return {
                "error": f"driver exit {proc.returncode}, no JSON on stdout",
                "stderr_tail": proc.stderr[-2000:],
            }
        if proc.returncode != 0 and "error" not in out:
            out["error"] = f"driver exit {proc.returncode}"
        return out


def peers(
    synapse_python: Path | None = None, resolvematrix_python: Path | None = None
) -> list[Peer]:
    return [
        Peer(
            "synapse",
            "Synapse 1.163.2",
            synapse_python or ROOT / ".venv-synapse" / "bin" / "python",
            PEERS / "synapse_peer.py",
            PEERS / "requirements-synapse.txt",
        ),
        Peer(
            "resolvematrix",
            "resolvematrix 1.0.0",
            resolvematrix_python or ROOT / ".venv-resolvematrix" / "bin" / "python",
            PEERS / "resolvematrix_peer.py",
            PEERS / "requirements-resolvematrix.txt",
        ),
    ]

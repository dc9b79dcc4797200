"""atheris harness: the DNS fast path against dnspython, for long runs (docs/fuzzing.md).

Input: one byte choosing a seed reply (its question and ID), then the reply's bytes from
offset 2 on. libFuzzer mutates them; the harness fails on any reply the fast path decides
that ``dns.message.from_wire`` refuses or decides differently (tests/fuzz/dns_differential.py).

    pip install atheris
    python tests/fuzz/fuzz_dns_wire.py -max_total_time=300 .fuzz-corpus/dns_wire

The corpus folder is filled with the seed replies on the first run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

with atheris.instrument_imports(include=["mxresolve", "dns", "fuzz"]):
    from fuzz.dns_differential import check, seeds

SEEDS = seeds()


def one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    seed = SEEDS[data[0] % len(SEEDS)]
    check(seed, seed.wire[:2] + data[1:])  # the seed's ID: a reply to its question


def _fill_corpus(argv: list[str]) -> None:
    folders = [Path(a) for a in argv[1:] if not a.startswith("-")]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        if not any(folder.iterdir()):
            for i, seed in enumerate(SEEDS):
                (folder / f"seed-{i}").write_bytes(bytes([i]) + seed.wire[2:])


if __name__ == "__main__":
    _fill_corpus(sys.argv)
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()

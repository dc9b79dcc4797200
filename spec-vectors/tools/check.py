"""Check the vector files: they load, and ids are unique (the loader enforces both)."""

from __future__ import annotations

import sys
from pathlib import Path

from mxresolve._vectors import VectorFormatError, load_vectors

HERE = Path(__file__).resolve().parent.parent


def main() -> int:
    try:
        vectors = load_vectors([HERE / "vectors"])
    except VectorFormatError as exc:
        print(f"check: {exc}", file=sys.stderr)
        return 1
    print(f"check: {len(vectors)} vectors load")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Fetch the site's one third-party script, mermaid, from the npm registry, pinned.

    python docs/tools/vendor.py

Material for MkDocs would load mermaid from a CDN at view time; the site instead serves
its own copy (mkdocs.yml `extra_javascript`), so it works offline and the browser test
sees exactly the version pinned here. `npm pack` fetches the package tarball; the file is
checked against its SHA-256 before it is used.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

MERMAID = "mermaid@11.17.2"
MEMBER = "package/dist/mermaid.min.js"
SHA256 = "581ed7d74bd9048d0e3a91363927d72ef22942d7722546b27f7cc29e35390eb8"
DEST = Path(__file__).resolve().parent.parent / "assets" / "vendor" / "mermaid.min.js"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def main() -> int:
    if DEST.exists() and _digest(DEST.read_bytes()) == SHA256:
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        packed = subprocess.run(
            ["npm", "pack", MERMAID, "--silent", "--pack-destination", tmp],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if packed.returncode != 0:
            print(f"vendor: npm pack {MERMAID} failed:\n{packed.stderr}", file=sys.stderr)
            return 1
        tarball = Path(tmp) / packed.stdout.strip().splitlines()[-1]
        with tarfile.open(tarball) as archive:
            member = archive.extractfile(MEMBER)
            if member is None:
                print(f"vendor: {MEMBER} is not in {tarball.name}", file=sys.stderr)
                return 1
            data = member.read()
    if _digest(data) != SHA256:
        print(f"vendor: {MEMBER} of {MERMAID} has an unexpected SHA-256", file=sys.stderr)
        return 1
    DEST.parent.mkdir(parents=True, exist_ok=True)
    DEST.write_bytes(data)
    print(f"vendor: wrote {DEST.name} ({len(data)} bytes) from {MERMAID}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

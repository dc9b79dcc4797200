#!/bin/sh
# Point an unmodified Synapse resolver at a world `mxresolve vectors serve` stands up:
#
#   mxresolve vectors serve VECTOR_ID --record record.json \
#       --run sh spec-vectors/adapters/synapse_blackbox.sh
#   mxresolve vectors check VECTOR_ID record.json
#
# benchmarks/peers/synapse_peer.py builds Synapse's MatrixFederationAgent as a homeserver
# does (its own well-known and SRV resolvers, Twisted's DNS client at the world's
# nameserver, the world's CA) and sends GET /_matrix/federation/v1/version to the server
# name; the world's nginx records what reached it. SYNAPSE_PYTHON: a Python with
# matrix-synapse installed (default: $MXRESOLVE_SYNAPSE_VENV/bin/python, as nox uses it,
# with MXRESOLVE_SYNAPSE_VENV defaulting to .venv-synapse).
set -eu
here=$(dirname "$0")
python=${SYNAPSE_PYTHON:-${MXRESOLVE_SYNAPSE_VENV:-.venv-synapse}/bin/python}
printf '{"nameserver": "%s", "cafile": "%s", "names": ["%s"], "rounds": 1, "mode": "resolve"}' \
    "$MXRESOLVE_VECTOR_NAMESERVER" "$MXRESOLVE_VECTOR_CAFILE" "$MXRESOLVE_VECTOR_SERVER_NAME" \
    | "$python" "$here/../../benchmarks/peers/synapse_peer.py" >&2

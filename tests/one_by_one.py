"""Settings for tests that pin the exact requests of a machine asking one step at a time.

With these, nothing is asked early and the HTTPS fetch resolves its own host, as the
machine did before it asked independent questions at once (tests/test_round_trips.py
checks that asking early changes nothing else).
"""

from __future__ import annotations

ONE_BY_ONE = {
    "resolve_well_known_host": False,
    "srv_with_well_known": False,
    "legacy_srv_with_srv": False,
    "addresses_with_srv": False,
}

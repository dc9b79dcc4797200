"""SRV record handling (RFC 2782), used by steps 3.3, 3.4, 4 and 5.

The Matrix spec says only that an SRV lookup "may result in another hostname
... and port"; the order in which several records are tried is RFC 2782's:
ascending priority, then a weighted random pick within one priority.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .events import SrvRecord

__all__ = ["order_srv_records"]


def order_srv_records(records: Sequence[SrvRecord], random: Callable[[], float]) -> list[SrvRecord]:
    """Return ``records`` in the order a client should try them.

    ``random`` returns a float in [0, 1); it is the only source of randomness,
    so the caller decides (a seeded generator in tests, ``random.random`` live).

    RFC 2782: "arrange all SRV RRs (that have not been ordered yet) in any
    order, except that all those with weight 0 are placed at the beginning of
    the list", then pick a uniform number between 0 and the sum of weights and
    take the first record whose running sum reaches it. When every remaining
    weight is 0 that rule would always pick the first record, so we pick
    uniformly instead.
    """
    ordered: list[SrvRecord] = []
    for priority in sorted({r.priority for r in records}):
        # Stable sort: weight-0 records first, otherwise in answer order.
        group = sorted((r for r in records if r.priority == priority), key=lambda r: r.weight != 0)
        while group:
            total = sum(r.weight for r in group)
            if total == 0:
                index = min(int(random() * len(group)), len(group) - 1)
            else:
                pick = min(int(random() * (total + 1)), total)
                running = 0
                index = len(group) - 1
                for i, record in enumerate(group):
                    running += record.weight
                    if running >= pick:
                        index = i
                        break
            ordered.append(group.pop(index))
    return ordered

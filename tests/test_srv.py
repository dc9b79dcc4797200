"""SRV ordering (RFC 2782): priorities ascending, weighted random within a priority.

Randomness comes only through the ``random`` callable, so every test here is
deterministic: a seeded ``random.Random`` or a fixed value.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mxresolve import SrvRecord, order_srv_records

DRAWS = 6000  # enough for a 3-point tolerance to be about 5 standard deviations


def srv(target: str, *, priority: int = 10, weight: int = 0, port: int = 8448) -> SrvRecord:
    return SrvRecord(priority=priority, weight=weight, port=port, target=target)


def constant(value: float) -> Callable[[], float]:
    return lambda: value


def first_pick_shares(records: Sequence[SrvRecord], seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    counts = Counter(order_srv_records(records, rng.random)[0].target for _ in range(DRAWS))
    return {r.target: counts[r.target] / DRAWS for r in records}


def test_no_records_give_no_order() -> None:
    assert order_srv_records([], constant(0.5)) == []


def test_one_record_is_returned_as_is() -> None:
    only = srv("a.example.", weight=7)
    assert order_srv_records((only,), constant(0.5)) == [only]


def test_the_input_is_not_modified() -> None:
    records = [srv("a.", weight=1), srv("b.", weight=0), srv("c.", priority=1)]
    before = list(records)
    order_srv_records(records, random.Random(1).random)
    assert records == before


def test_lower_priorities_come_first_whatever_the_weights() -> None:
    records = [
        srv("late.", priority=30, weight=1000),
        srv("first.", priority=0, weight=0),
        srv("middle.", priority=20, weight=1),
    ]
    for value in (0.0, 0.5, 0.999999):
        ordered = order_srv_records(records, constant(value))
        assert [r.target for r in ordered] == ["first.", "middle.", "late."]
    # Tied priorities are shuffled among themselves, never across priorities.
    tied = [
        srv("c.", priority=20, weight=100),
        srv("a.", priority=10, weight=0),
        srv("b.", priority=10, weight=1),
        srv("d.", priority=30, weight=0),
    ]
    rng = random.Random(7)
    for _ in range(200):
        assert [r.priority for r in order_srv_records(tied, rng.random)] == [10, 10, 20, 30]


records_strategy = st.lists(
    st.builds(
        SrvRecord,
        priority=st.integers(0, 5),
        weight=st.integers(0, 20) | st.just(65535),
        port=st.integers(0, 65535),
        target=st.sampled_from(["a.", "b.", "c.", "d.", "."]),
    ),
    max_size=12,
)


@given(records_strategy, st.integers(0, 2**32))
def test_priorities_ascend_and_nothing_is_lost_or_duplicated(
    records: list[SrvRecord], seed: int
) -> None:
    ordered = order_srv_records(records, random.Random(seed).random)
    assert [r.priority for r in ordered] == sorted(r.priority for r in records)
    assert Counter(ordered) == Counter(records)


def rfc2782_first_share(records: Sequence[SrvRecord], index: int) -> float:
    """The chance RFC 2782's pick gives ``records[index]`` (weights > 0, answer order).

    The RFC draws from 0 to the sum *inclusive*, so the first record also wins
    on 0: (w + 1) / (sum + 1) for it, w / (sum + 1) for the others. Close to
    w / sum once the weights are large.
    """
    total = sum(r.weight for r in records)
    return (records[index].weight + (index == 0)) / (total + 1)


@pytest.mark.parametrize(
    "records",
    [
        [srv("ten.", weight=10), srv("thirty.", weight=30), srv("sixty.", weight=60)],
        [srv("heavy.", weight=75), srv("light.", weight=25)],
    ],
    ids=["10-30-60", "75-25"],
)
def test_weights_share_the_first_place_roughly_in_proportion(records: list[SrvRecord]) -> None:
    total = sum(r.weight for r in records)
    shares = first_pick_shares(records, seed=20240601)
    for i, record in enumerate(records):
        assert shares[record.target] == pytest.approx(record.weight / total, abs=0.03)
        assert shares[record.target] == pytest.approx(rfc2782_first_share(records, i), abs=0.02)


def test_the_second_place_is_weighted_among_those_left() -> None:
    records = [srv("ten.", weight=10), srv("thirty.", weight=30), srv("heavy.", weight=1000)]
    rng = random.Random(7)
    seconds: Counter[str] = Counter()
    for _ in range(DRAWS):
        ordered = order_srv_records(records, rng.random)
        if ordered[0].target == "heavy.":
            seconds[ordered[1].target] += 1
    total = seconds["ten."] + seconds["thirty."]
    assert total > DRAWS * 0.9
    expected = rfc2782_first_share(records[:2], 1)
    assert seconds["thirty."] / total == pytest.approx(expected, abs=0.03)
    assert expected == pytest.approx(0.75, abs=0.03)  # and that is roughly proportional


@pytest.mark.parametrize("count", [3, 4])
def test_weight_zero_records_are_picked_uniformly(count: int) -> None:
    records = [srv(f"{i}.") for i in range(count)]
    shares = first_pick_shares(records, seed=99)
    for record in records:
        assert shares[record.target] == pytest.approx(1 / count, abs=0.03)


def test_a_weight_zero_record_is_rarely_first_among_weighted_ones() -> None:
    # RFC 2782: weight 0 records have "a very small chance of being selected".
    records = [srv("zero.", weight=0), srv("heavy.", weight=99)]
    shares = first_pick_shares(records, seed=3)
    assert shares["zero."] < 0.03
    assert shares["heavy."] > 0.97


def test_random_zero_takes_weight_zero_records_first_then_answer_order() -> None:
    records = [srv("a.", weight=5), srv("b.", weight=0), srv("c.", weight=5)]
    ordered = order_srv_records(records, constant(0.0))
    assert [r.target for r in ordered] == ["b.", "a.", "c."]


def test_random_just_below_one_takes_the_last_weighted_record_first() -> None:
    records = [srv("a.", weight=5), srv("b.", weight=0), srv("c.", weight=5)]
    ordered = order_srv_records(records, constant(0.999999))
    assert [r.target for r in ordered] == ["c.", "a.", "b."]


@pytest.mark.parametrize(
    ("weights", "value", "expected"),
    [
        ((0, 0, 0), 0.0, "xyz"),
        ((0, 0, 0), 0.999999, "zyx"),
        ((1, 1), 0.0, "xy"),
        ((1, 1), 0.9999999, "yx"),
    ],
)
def test_edge_values_with_equal_weights(
    weights: tuple[int, ...], value: float, expected: str
) -> None:
    records = [srv(f"{t}.", weight=w) for t, w in zip("xyz", weights, strict=False)]
    ordered = order_srv_records(records, constant(value))
    assert "".join(r.target[0] for r in ordered) == expected


def test_a_random_source_returning_one_is_clamped() -> None:
    # Outside the [0, 1) contract, but a sloppy source must not cause an IndexError.
    weighted = [srv("a.", weight=5), srv("c.", weight=5)]
    assert [r.target for r in order_srv_records(weighted, constant(1.0))] == ["c.", "a."]
    unweighted = [srv("x."), srv("y.")]
    assert [r.target for r in order_srv_records(unweighted, constant(1.0))] == ["y.", "x."]


def test_the_same_seed_gives_the_same_order() -> None:
    records = [srv(f"t{i}.", priority=i % 2, weight=i) for i in range(8)]
    first = order_srv_records(records, random.Random(42).random)
    assert order_srv_records(records, random.Random(42).random) == first


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("port", 70000, "SRV port must be an integer in 0-65535"),
        ("target", "", "SRV target must be a non-empty string"),
    ],
)
def test_an_srv_record_validates_itself(field: str, value: object, message: str) -> None:
    fields: dict[str, object] = {"priority": 0, "weight": 0, "port": 1, "target": "x."}
    fields[field] = value
    with pytest.raises(ValueError, match=message):
        SrvRecord(**fields)  # type: ignore[arg-type]

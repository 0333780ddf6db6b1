"""The spread: shuffled clients, evenly spaced slots, a small random offset each."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from updates_app.engine.spread import per_minute_counts, spread_assign, spread_offsets


def test_every_offset_lies_inside_the_window_in_its_own_slot():
    offsets = spread_offsets(1000, duration_seconds=600.0, rng=random.Random(1))
    width = 600.0 / 1000
    assert all(i * width <= offset < (i + 1) * width for i, offset in enumerate(offsets))


@given(count=st.integers(min_value=1, max_value=3000), duration=st.floats(min_value=0.001, max_value=86_400.0))
def test_offsets_never_reach_the_end_of_the_window(count, duration):
    offsets = spread_offsets(count, duration_seconds=duration, rng=random.Random(count))
    assert len(offsets) == count
    assert all(0 <= offset < duration for offset in offsets)


def test_nothing_to_spread_gives_nothing():
    assert spread_offsets(0, duration_seconds=60, rng=random.Random(1)) == []
    assert spread_assign([], duration_seconds=60, rng=random.Random(1)) == []


def test_the_same_seed_gives_the_same_plan_and_another_seed_another_one():
    items = list(range(500))
    first = spread_assign(items, duration_seconds=7200, rng=random.Random(42))
    assert first == spread_assign(items, duration_seconds=7200, rng=random.Random(42))
    assert first != spread_assign(items, duration_seconds=7200, rng=random.Random(43))


def test_every_client_gets_exactly_one_moment_and_the_order_is_shuffled():
    items = list(range(1000))
    planned = spread_assign(items, duration_seconds=3600, rng=random.Random(5))
    assert sorted(item for item, _ in planned) == items
    # Not first-come-first-served: the earliest slots do not go to the first ids.
    earliest = [item for item, _ in sorted(planned, key=lambda pair: pair[1])[:50]]
    assert earliest != items[:50]


def test_no_client_is_always_first():
    items = list(range(100))
    firsts = {
        min(spread_assign(items, duration_seconds=60, rng=random.Random(seed)), key=lambda p: p[1])[0]
        for seed in range(20)
    }
    assert len(firsts) > 10


def test_ten_thousand_clients_over_two_hours_are_flat_within_five_percent():
    count, duration = 10_000, 7200.0
    for seed in range(5):
        counts = per_minute_counts(
            spread_offsets(count, duration_seconds=duration, rng=random.Random(seed)), duration_seconds=duration
        )
        mean = count / 120
        assert len(counts) == 120
        assert max(counts) / mean <= 1.05


def test_independent_uniform_draws_would_not_be_that_flat():
    # The reason for the slots: the same fleet drawn independently has a clear peak.
    rng = random.Random(3)
    counts = per_minute_counts([rng.uniform(0, 7200) for _ in range(10_000)], duration_seconds=7200)
    assert max(counts) / (10_000 / 120) > 1.1


def test_per_minute_counts_puts_each_offset_in_its_minute():
    assert per_minute_counts([0, 59.9, 60, 150, 179.99], duration_seconds=180) == [2, 1, 2]

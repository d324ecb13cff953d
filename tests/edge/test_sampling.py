"""edge/sampling.py: the one even-spread helper behind the scene's frame picks, its cutout and distractor caps,
the evaluation's frame caps and export timing."""

from __future__ import annotations

import numpy as np

from edge.sampling import spread, spread_indices


def test_spread_is_even_bounded_and_inside_the_range():
    assert spread_indices(0, 10, 20) == list(range(10))
    s = spread_indices(100, 700, 7)
    assert s[0] == 100 and s[-1] == 699 and len(s) == 7
    assert np.allclose(np.diff(s), 99.83, atol=1)
    assert spread_indices(5, 5, 3) == [] and spread_indices(0, 10, 0) == []


def test_spread_indices_round_from_the_range_itself():
    # linspace(1, 4, 3) = [1, 2.5, 4]: round-half-even gives 2, where 1 + round(1.5) would give 3.
    assert spread_indices(1, 5, 3) == [1, 2, 4]
    assert spread_indices(0, 4, 3) == [0, 2, 3]


def test_spread_keeps_both_ends_and_order():
    assert spread(list(range(10)), 4) == [0, 3, 6, 9]
    assert spread([1, 2], 5) == [1, 2] and spread([1, 2, 3], 0, zero_means_all=True) == [1, 2, 3]


def test_zero_is_none_unless_it_means_no_cap():
    assert spread([1, 2, 3], 0) == [] and spread([1, 2, 3], -1) == []
    assert spread([], 0, zero_means_all=True) == [] and spread([], 3) == []
    assert spread("abcdefg", 3) == ["a", "d", "g"]

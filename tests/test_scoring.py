"""The per-position scoring math, against plain numpy definitions."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from lantern_studio.core.scoring import divergence, log_softmax, top_k

rows = arrays(np.float32, st.integers(5, 400),
              elements=st.floats(-40, 40, width=32, allow_nan=False, allow_infinity=False))


@settings(max_examples=300, deadline=None)
@given(rows)
def test_top_k_holds_the_k_largest_values_largest_first(row):
    got = top_k(row, 5)
    assert len(set(got.tolist())) == 5
    assert np.array_equal(row[got], np.sort(row)[::-1][:5])


def test_top_k_on_a_peaked_and_on_a_flat_row():
    peaked = np.full(49152, -30.0, dtype=np.float32)
    peaked[[7, 70, 700]] = [-0.1, -3.0, -5.0]
    assert top_k(peaked, 3).tolist() == [7, 70, 700]
    # Fewer than k entries near the maximum: the exact fallback takes over.
    assert top_k(peaked, 5)[:3].tolist() == [7, 70, 700]
    flat = np.zeros(10, dtype=np.float32)
    assert sorted(top_k(flat, 5).tolist()) == sorted(set(top_k(flat, 5).tolist()))


@settings(max_examples=100, deadline=None)
@given(rows)
def test_log_softmax_normalises_and_divergence_with_itself_is_zero(row):
    lp = log_softmax(row)
    assert abs(float(np.exp(lp.astype(np.float64)).sum()) - 1.0) < 1e-4
    assert abs(divergence(lp, lp)) < 1e-6

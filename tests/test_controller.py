"""The blip-mode controller on synthetic error streams: pure, no model."""

from __future__ import annotations

import math

import pytest

from lantern_studio.core.controller import Controller, Decision
from lantern_studio.core.settings import LoopSettings


def controller(**settings) -> Controller:
    base = dict(mode="blip", kp=1.0, ki=0.0, kd=0.0, threshold=1.5, window=8, cooldown=0, max_blips=100)
    base.update(settings)
    return Controller(LoopSettings(**base))


def signals(c: Controller, errors) -> list[float]:
    return [c.signal(e) for e in errors]


# -- the control law ------------------------------------------------------------------------

@pytest.mark.parametrize("error, fires", [(1.49, False), (1.5, True), (1.51, True), (0.0, False), (-3.0, False)])
def test_fires_exactly_when_the_signal_reaches_the_threshold(error, fires):
    decision = controller().step(error)
    assert (decision is not None) == fires
    if fires:
        assert isinstance(decision, Decision)
        assert decision.signal == pytest.approx(error)
        assert decision.source_id is None
        assert "threshold 1.5" in decision.reason


def test_step_reports_the_signal_even_when_it_does_not_fire():
    c = controller(threshold=10.0)
    assert c.step(2.0) is None
    assert c.last_signal == pytest.approx(2.0)


def test_proportional_term_scales_with_kp():
    assert signals(controller(kp=2.5), [0.4, 1.0]) == pytest.approx([1.0, 2.5])


def test_integral_sums_over_the_window_only():
    c = controller(kp=0.0, ki=1.0, window=3)
    # window holds the last 3 errors: sums 1, 3, 6, then old values leave: 2+3+0, 3+0+0, 0
    assert signals(c, [1, 2, 3, 0, 0, 0]) == pytest.approx([1, 3, 6, 5, 3, 0])


def test_integral_gain_scales_the_window_sum():
    c = controller(kp=1.0, ki=0.5, window=2)
    # u = e + 0.5·(sum of last 2)
    assert signals(c, [1.0, 1.0, 1.0]) == pytest.approx([1.5, 2.0, 2.0])


def test_derivative_term_uses_the_previous_error():
    c = controller(kp=0.0, kd=1.0)
    assert signals(c, [1.0, 3.0, 1.0, 1.0]) == pytest.approx([1.0, 2.0, -2.0, 0.0])


def test_negative_errors_are_clipped_to_zero_in_every_term():
    c = controller(kp=1.0, ki=1.0, kd=1.0, window=4)
    assert c.signal(-5.0) == 0.0  # not -15
    # the -5 counts as 0 in the window and as the previous error: u = 1 + (0 + 1) + (1 - 0)
    assert c.signal(1.0) == pytest.approx(3.0)
    # a negative error after a positive one: e⁺ = 0, Σ = 1, Δ = 0 - 1
    assert c.signal(-2.0) == pytest.approx(0.0)


def test_a_run_of_small_errors_fires_through_the_integral():
    c = controller(kp=1.0, ki=0.3, window=8, threshold=1.5)
    decisions = [c.step(0.8) for _ in range(5)]
    # u_n = 0.8 + 0.3·0.8·n: 1.04, 1.28, 1.52 → the third token fires
    assert [d is not None for d in decisions[:3]] == [False, False, True]


# -- cooldown and max_blips ---------------------------------------------------------------

def test_first_blip_needs_no_wait_even_with_a_cooldown():
    assert controller(cooldown=24).step(5.0) is not None


def test_cooldown_is_honoured_after_a_blip():
    c = controller(cooldown=3)
    assert c.step(5.0) is not None
    c.fire()
    # tokens 1 and 2 after the blip may not fire, the 3rd may
    assert [c.step(5.0) is not None for _ in range(3)] == [False, False, True]


def test_cooldown_zero_allows_firing_on_the_next_token():
    c = controller(cooldown=0)
    c.step(5.0)
    c.fire()
    assert c.step(5.0) is not None


def test_a_step_that_does_not_fire_does_not_restart_the_cooldown():
    c = controller(cooldown=2)
    c.fire()
    assert c.step(0.0) is None  # 1 token after the blip
    assert c.step(5.0) is not None  # 2 tokens after: allowed


def test_max_blips_is_honoured():
    c = controller(max_blips=2)
    for _ in range(2):
        assert c.step(5.0) is not None
        c.fire()
    assert c.fired == 2
    assert all(c.step(9.0) is None for _ in range(20))
    assert not c.can_fire()


def test_max_blips_zero_never_fires():
    c = controller(max_blips=0)
    assert c.step(50.0) is None
    assert c.detector("never.1", "paris") is None


# -- the Never detector ---------------------------------------------------------------------

def test_detector_fires_immediately_regardless_of_the_signal():
    c = controller(threshold=100.0, cooldown=50)
    assert c.step(0.0) is None
    d = c.detector("never.1", "Paris")
    assert d is not None
    assert math.isinf(d.signal) and d.signal > 0
    assert d.source_id == "never.1"
    assert "never.1" in d.reason and "Paris" in d.reason


def test_detector_ignores_the_cooldown_but_not_max_blips():
    c = controller(cooldown=50, max_blips=2)
    assert c.detector("never.1", "a") is not None
    c.fire()
    assert c.step(99.0) is None  # within the cooldown
    assert c.detector("never.1", "b") is not None  # a detector still fires
    c.fire()
    assert c.detector("never.1", "c") is None  # but max_blips bounds it


# -- fire, rewound, guide_gamma -------------------------------------------------------------

def test_fire_clears_the_memory():
    c = controller(kp=0.0, ki=1.0, kd=1.0)
    signals(c, [2.0, 2.0])
    c.fire()
    assert c.signal(0.0) == 0.0  # no integral left, no derivative against the old 2.0


def test_rewound_removes_the_last_errors_from_the_window():
    c = controller(kp=0.0, ki=1.0, window=8)
    assert signals(c, [1.0, 2.0, 4.0]) == pytest.approx([1.0, 3.0, 7.0])
    c.rewound(2)  # the 2.0 and 4.0 tokens left the answer
    assert c.signal(0.0) == pytest.approx(1.0)


def test_rewound_resets_the_previous_error_to_the_last_kept_one():
    c = controller(kp=0.0, kd=1.0)
    signals(c, [1.0, 5.0])
    c.rewound(1)
    assert c.signal(1.0) == pytest.approx(0.0)  # Δ against 1.0, not 5.0


def test_rewound_more_than_the_window_empties_it():
    c = controller(kp=0.0, ki=1.0, kd=1.0, window=3)
    signals(c, [3.0, 3.0, 3.0, 3.0])
    c.rewound(10)
    assert c.signal(0.0) == 0.0


def test_guide_gamma_interpolates_between_gamma_min_and_gamma_max():
    c = controller(threshold=2.0, gamma_min=1.0, gamma_max=3.0)
    assert c.guide_gamma() == pytest.approx(1.0)  # at rest
    c.signal(1.0)
    assert c.guide_gamma() == pytest.approx(2.0)  # half way to the threshold
    c.signal(0.5)
    assert c.guide_gamma() == pytest.approx(1.5)
    c.signal(2.0)
    assert c.guide_gamma() == pytest.approx(3.0)  # at the threshold
    c.signal(40.0)
    assert c.guide_gamma() == pytest.approx(3.0)  # clamped above
    c.signal(-4.0)
    assert c.guide_gamma() == pytest.approx(1.0)  # negative errors: back to rest


def test_guide_gamma_with_a_non_positive_threshold_is_gamma_max():
    c = controller(threshold=0.0, gamma_min=0.5, gamma_max=2.5)
    assert c.guide_gamma() == 2.5

"""tsallis_ref.schedules: the q schedules and the two-example test of a schedule."""

import math

import pytest

from tsallis_ref import schedules as S
from tsallis_ref import theory as T


def test_schedules_give_the_q_they_promise():
    assert S.constant(0.5).q_of(10, 1e-3, False) == 0.5
    st = S.step_at_escape(1.0, 0.25)
    assert st.q_of(0, 1e-3, False) == 1.0 and st.q_of(5, 1e-3, True) == 0.25
    an = S.linear_anneal(1.0, 0.0, 100)
    assert [an.q_of(t, 0.1, False) for t in (0, 50, 100, 500)] == pytest.approx([1.0, 0.5, 0.0, 0.0])
    ad = S.adaptive(1e-2, 1e-1, 1.0, 0.0)
    assert [ad.q_of(0, P, False) for P in (1e-4, 1e-2, math.sqrt(1e-3), 1e-1, 0.9)] == pytest.approx([1, 1, 0.5, 0, 0])
    fw = S.floored_weight(0.1)
    assert fw.q_of(0, 0.5, False) is None
    assert fw.amplification([0.01, 0.1, 0.5], 0, 0.5, False) == pytest.approx([10.0, 10.0, 2.0])
    assert S.constant(0.5).amplification(0.04, 0, 0.04, False) == pytest.approx(5.0)


def test_constant_q_reproduces_the_theory():
    """Fixed q: the cold example's escape step times lr approaches Eq. 15's time, and the noisy example
    settles at Eq. 17's equilibrium contamination."""
    for q in (0.5, 1.0):
        r = S.two_example_run(S.constant(q), p0=1e-2, lr=0.01, steps=60_000)
        assert r["escape_step"] * 0.01 == pytest.approx(T.escape_time(1e-2, q), rel=0.02)
        assert r["contamination"] == pytest.approx(T.noise_equilibrium(0.1, q), rel=0.02)


def test_step_at_escape_meets_the_goal_and_fixed_q_does_not():
    """Escape within 1.5x of q=1's steps and end contamination within 2x of q=0's: the SFT-then-RLVR step
    schedule and the adaptive one get there; no fixed q and no floored weight does."""
    runs = {
        name: S.two_example_run(s)
        for name, s in {
            "q0": S.constant(0.0),
            "q1": S.constant(1.0),
            "q075": S.constant(0.75),
            "step": S.step_at_escape(1.0, 0.0),
            "adaptive": S.adaptive(0.1, 0.5),
            "floor": S.floored_weight(0.01),
        }.items()
    }
    goal = lambda r: (
        r["escape_step"] <= 1.5 * runs["q1"]["escape_step"] and r["contamination"] <= 2 * runs["q0"]["contamination"]
    )
    assert goal(runs["step"]) and goal(runs["adaptive"])
    assert not any(goal(runs[k]) for k in ("q0", "q1", "q075", "floor"))


def test_schedules_reject_bad_input():
    with pytest.raises(ValueError, match="q must lie"):
        S.constant(1.5)
    with pytest.raises(ValueError, match="t_end"):
        S.linear_anneal(1.0, 0.0, 0)
    with pytest.raises(ValueError, match="floor"):
        S.floored_weight(0.0)
    with pytest.raises(ValueError, match="p_lo"):
        S.adaptive(0.5, 0.1)
    with pytest.raises(ValueError, match="two_example_run"):
        S.two_example_run(S.constant(1.0), p0=0.7)

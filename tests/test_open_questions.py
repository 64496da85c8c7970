"""The open questions measured: Adam on the sigmoid case, the exact bias law at large M, the label-noise
computations at q = 0, and the miniature's exact-gradient dynamics (tsallis_ref.theory, tsallis_ref.miniature)."""

import json
import math
import os

import numpy as np
import pytest
import torch

from tsallis_ref import miniature as mini
from tsallis_ref import theory as T

torch.set_num_threads(1)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------------ optimisers on the sigmoid case


def test_sgd_on_the_sigmoid_follows_the_flow():
    """Small-lr SGD steps times lr approach Eq. 15's flow time, for every q."""
    p0s, qs = np.array([1e-2, 1e-3]), np.array([0.0, 0.5, 1.0])
    lr = 0.01
    steps = T.sigmoid_optimizer_escape(p0s[:, None], qs[None, :], optimizer="sgd", lr=lr, max_steps=2_000_000)
    for i, p0 in enumerate(p0s):
        for j, q in enumerate(qs):
            assert steps[i, j] * lr == pytest.approx(T.escape_time(p0, q), rel=0.02), (p0, q)


def test_adam_reverses_the_order_on_the_sigmoid():
    """From p0 = 1e-4: Adam (lr 0.01) takes q=0 out in 413 steps and q=1 in 994; SGD (lr 1) in 10,022 and 10."""
    adam = T.sigmoid_optimizer_escape(1e-4, [0.0, 1.0], optimizer="adam", lr=0.01)
    sgd = T.sigmoid_optimizer_escape(1e-4, [0.0, 1.0], optimizer="sgd", lr=1.0)
    assert adam.tolist() == [413, 994] and sgd.tolist() == [10022, 10]


def test_adam_stalls_once_the_gradient_is_below_eps():
    """Under Adam with eps, q=0 escapes from p0 where p0 >> eps and does not within the budget where
    p0 << eps (its gradient is ~p0); q=1's gradient is ~1 whatever p0, so it escapes from both."""
    eps = 1e-8
    s = T.sigmoid_optimizer_escape(
        [1e-5, 1e-12], [[0.0], [1.0]], optimizer="adam", lr=0.01, adam_eps=eps, max_steps=20_000
    )
    assert np.isfinite(s[0, 0]) and np.isnan(s[0, 1])
    assert np.isfinite(s[1]).all()


def test_sigmoid_optimizer_escape_rejects_bad_input():
    with pytest.raises(ValueError, match="optimizer"):
        T.sigmoid_optimizer_escape(1e-3, 0.0, optimizer="rmsprop")
    with pytest.raises(ValueError, match="p0"):
        T.sigmoid_optimizer_escape(0.7, 0.0)
    with pytest.raises(ValueError, match="q must lie"):
        T.sigmoid_optimizer_escape(1e-3, 1.5)


# ------------------------------------------------------------------ the bias law, exactly


@pytest.mark.parametrize("family", ["rare", "shift"])
def test_binomial_bias_matches_pool_enumeration(family):
    m = T.two_rationale_model(0.05, family)
    for q in (0.0, 0.3, 0.75, 1.0):
        for M in (1, 3, 8):
            a = T.garl_bias_binomial(m, q, M)["bias"]
            b = T.garl_exact_bias(m, q, M).numpy()
            assert np.abs(a - b).max() <= 1e-12 + 1e-9 * np.abs(b).max(), (q, M)


def test_rare_family_bias_follows_q_one_minus_q_law():
    """Rare good rationale (P = 1e-3, bad weight 1e-8), M = 1e5: M * ||bias|| = 0.67, 5.05, 21.3, 0.016 at
    q = .25, .5, .75, 1; the relative bias matches q(1-q)(1-rho)/(2 M rho) to 1 % for q < 1 and is ~0 at q = 1."""
    m = T.two_rationale_model(1e-3, "rare", w_bad=1e-8)
    got = {q: T.garl_bias_binomial(m, q, 100_000) for q in (0.25, 0.5, 0.75, 1.0)}
    mb = [1e5 * np.linalg.norm(got[q]["bias"]) for q in (0.25, 0.5, 0.75, 1.0)]
    assert mb == pytest.approx([0.673, 5.05, 21.35, 0.016], rel=0.01)
    for q in (0.25, 0.5, 0.75):
        assert got[q]["rel"] == pytest.approx(float(T.rare_bias_law(q, 1e5, got[q]["P"])), rel=0.01)
    assert got[1.0]["rel"] < 1e-3 * got[0.5]["rel"]


def test_shift_family_relative_bias_does_not_depend_on_P():
    """When every weight shrinks together the relative bias is scale-free: the same at any P
    once the weights are small (P = 1e-3 and 1e-4, to 5 %); for a model whose two weights are within a
    factor ~2 of each other (seed 1) it grows with q;
    for one where the rarer rationale carries most of P (seed 0) it peaks below q = 1."""
    qs = [0.25, 0.5, 0.75, 1.0]
    for seed in (0, 1):
        law = T.bias_law(qs, [1000], [1e-3, 1e-4], "shift", seed=seed)
        rel = law["rel"][:, 0, :]
        assert rel[:, 0] == pytest.approx(rel[:, 1], rel=0.05)
        if seed == 1:
            assert np.all(np.diff(rel[:, 1]) > 0), rel
        else:
            assert rel[3, 1] < rel[2, 1], rel


def test_garl_bias_binomial_rejects_bad_input():
    with pytest.raises(ValueError, match="two-rationale"):
        T.garl_bias_binomial(T.LatentCategoricalModel.random(3), 0.5, 10)
    with pytest.raises(ValueError, match="M must"):
        T.garl_bias_binomial(T.two_rationale_model(0.1, "rare"), 0.5, 0)
    with pytest.raises(ValueError, match="family"):
        T.two_rationale_model(0.1, "flat")


# ------------------------------------------------------------------ label noise at q = 0, computed


def test_q0_noise_fitting_time_is_computed_from_the_rate():
    """At q = 0 the fitting time is inf because Eq. 16's rate is negative at the start; the input is still
    checked (c0 >= eta is an error at every q) and the q = 0 curve is the straight line down to 0."""
    with pytest.raises(ValueError, match="c0"):
        T.noise_fitting_time(1e-6, 0.0, 0.1, c0=1e-5)
    assert T.noise_fitting_time(1e-3, 0.0, 0.1, c0=1e-4) == math.inf
    t = np.linspace(0.0, 2e-3, 9)
    c = T.simulate_contamination(0.0, 0.1, 1e-3, t)
    assert c == pytest.approx(np.maximum(1e-3 - 0.8 * t, 0.0), abs=1e-9)
    # a contamination that is gone before the first requested time reads 0 there and after
    assert not T.simulate_contamination(0.0, 0.1, 1e-6, np.logspace(-4, 4, 9)).any()


# ------------------------------------------------------------------ the miniature's exact-gradient dynamics


@pytest.fixture(scope="module")
def dec():
    with open(os.path.join(ROOT, "data", "miniature", "exact_decoder_seed0.json")) as f:
        return mini.decoder_from_json(json.load(f))


def _x(task):
    return task.all_inputs()[:4]


def test_exact_objective_is_the_enumerated_marginal_likelihood(dec):
    x = _x(dec.task)
    start = mini.make_start(dec, 1e-3)
    J, P, c = mini.exact_objective(start, mini.exact_problem(dec.task, x), 1.0)
    lp = mini.exact_log_success(start, x, dec.task.gold(x))
    assert float(J.detach()) == pytest.approx(float(-lp.mean()), rel=1e-6) and P == pytest.approx(
        float(lp.exp().mean()), rel=1e-6
    )
    assert c is None
    # with per-draw label noise: (1-eps) l_q(P) + eps l_q(P(y~)), y~ the flipped label
    J2, _, c2 = mini.exact_objective(start, mini.exact_problem(dec.task, x, noise_eps=0.2), 0.5)
    y_noisy, _ = mini.noisy_labels(dec.task, x, 1.0, 0, "last")
    lc = mini.exact_log_success(start, x, y_noisy)
    want = 0.8 * (1 - lp.exp().sqrt()).mean() / 0.5 + 0.2 * (1 - lc.exp().sqrt()).mean() / 0.5
    assert float(J2.detach()) == pytest.approx(float(want), rel=1e-6) and c2 == pytest.approx(
        float(lc.exp().mean()), rel=1e-6
    )


def test_exact_flow_is_the_small_lr_limit_of_sgd(dec):
    """Strategy target, p0 = 1e-2, q = 0.5: SGD at lr 0.01 escapes after ~T/lr steps (within 5 %), and the
    flow's escape time from a colder start is longer."""
    x = _x(dec.task)
    start = mini.make_start(dec, 1e-2)
    f = mini.exact_gradient_flow(start, x, 0.5, target="strategy")
    r = mini.exact_gradient_run(start, x, 0.5, optimizer="sgd", lr=0.01, steps=5000, target="strategy")
    assert r["escape_step"] * 0.01 == pytest.approx(f["T"], rel=0.05)
    assert mini.exact_gradient_flow(mini.make_start(dec, 1e-3), x, 0.5, target="strategy")["T"] > 2 * f["T"]


def test_exact_dynamics_reject_bad_input(dec):
    x = _x(dec.task)
    with pytest.raises(ValueError, match="target"):
        mini.exact_problem(dec.task, x, target="answer")
    with pytest.raises(ValueError, match="label noise needs"):
        mini.exact_problem(dec.task, x, target="strategy", noise_eps=0.1)
    with pytest.raises(ValueError, match="noise_eps"):
        mini.exact_problem(dec.task, x, noise_eps=0.6)
    with pytest.raises(ValueError, match="optimizer"):
        mini.exact_gradient_run(dec, x, 0.5, optimizer="lion")
    with pytest.raises(ValueError, match="already has mean P"):
        mini.exact_gradient_flow(mini.make_start(dec, 0.9), x, 1.0, target="strategy")


def test_record_readers_fit_what_they_are_given():
    rec = {
        "runs": [
            {"seed": 0, "q": q, "p0": p, "T": p ** -(1 - q) if q < 1 else 2 * math.log(1 / p) + 1}
            for q in (0.0, 0.5, 1.0)
            for p in (1e-2, 1e-4, 1e-6)
        ]
    }
    s = mini.escape_exponents(rec)
    assert s[0, 0.0] == pytest.approx(-1.0) and s[0, 0.5] == pytest.approx(-0.5)
    a, b, res = mini.log_law_fit(*mini.escape_times(rec, 0, 1.0))
    assert (a, b) == pytest.approx((2.0, 1.0)) and res < 1e-9
    with pytest.raises(ValueError, match="no run"):
        mini.escape_times(rec, 1, 0.0)
    th = T.adam_stall_threshold([1e-2, 1e-4, 1e-6], [0.0, 1.0], np.array([[5, 5], [9, 7], [np.nan, 9]]))
    assert th[0.0] == pytest.approx((1e-6, math.log(1e6))) and math.isnan(th[1.0][0])


def test_exact_run_takes_a_schedule(dec):
    """A constant schedule reproduces the fixed-q run (same P path, to 1e-9); the step schedule switches to
    its second q at the recorded escape; the floored weight runs (it is no q)."""
    from tsallis_ref import schedules as S

    x = _x(dec.task)
    start = mini.make_start(dec, 1e-2)
    kw = dict(optimizer="sgd", lr=0.1, steps=40, target="strategy", record_every=5)
    a = mini.exact_gradient_run(start, x, 0.5, **kw)
    b = mini.exact_gradient_run(start, x, S.constant(0.5), **kw)
    assert a["escape_step"] == b["escape_step"] and b["P"] == pytest.approx(a["P"], rel=1e-9)
    c = mini.exact_gradient_run(start, x, S.step_at_escape(1.0, 0.0), **{**kw, "steps": 30}, delta=None)
    k = next(i for i, P in enumerate(c["P"]) if P >= 0.5)
    assert set(c["q"][:k]) == {1.0} and set(c["q"][k:]) == {0.0}
    f = mini.exact_gradient_run(start, x, S.floored_weight(0.1), **kw)
    assert f["escape_step"] is not None and f["q"][0] is None


def test_noise_readers():
    run = {"step": [0, 1, 2, 3], "P": [0.9, 0.8, 0.7, 0.7], "contamination": [0.1, 0.2, 0.3, 0.3]}
    assert mini.noise_share(run) == pytest.approx([0.1, 0.2, 0.3, 0.3])
    t = mini.noise_fitting_times(run, [0.15, 0.3, 0.5], lr=0.5)
    assert t[:2] == pytest.approx([0.5, 1.0]) and math.isnan(t[2])

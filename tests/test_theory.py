"""Tests of tsallis_ref.theory (paper Secs. 3-6, Apps. B-D), independent of the book's notebooks."""

import math

import numpy as np
import pytest
import torch

from tsallis_ref import theory as T
from tsallis_ref.losses import qloss
from tsallis_ref.toy import LatentCategoricalModel, TinyAutoregressiveLatentModel

torch.set_num_threads(1)


# ------------------------------------------------------------------ landscape (Thm 3.1, App. B)


def test_escort_closed_form():
    alpha = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    for q in (0.25, 0.5, 0.75, 1.0):
        expect = alpha ** (1 / q) / (alpha ** (1 / q)).sum()
        assert torch.allclose(T.escort(alpha, q), expect, atol=1e-15)
    assert torch.allclose(T.escort(alpha, 1.0), alpha)
    # unnormalised input is normalised; tiny q does not overflow
    assert torch.allclose(T.escort([5, 3, 2], 0.5), T.escort(alpha, 0.5))
    e = T.escort(alpha, 1e-3)
    assert torch.isfinite(e).all() and abs(e[0].item() - 1) < 1e-12


def test_escort_q0_vertex_and_ties():
    assert T.escort([0.2, 0.5, 0.3], 0.0).tolist() == [0.0, 1.0, 0.0]
    assert T.escort([0.4, 0.4, 0.2], 0.0).tolist() == [0.5, 0.5, 0.0]  # limit q -> 0+
    assert T.escort([0.4, 0.4, 0.2], 0.0, ties="first").tolist() == [1.0, 0.0, 0.0]
    # the tie rule is the q -> 0+ limit of the escort
    assert torch.allclose(T.escort([0.4, 0.4, 0.2], 0.01), T.escort([0.4, 0.4, 0.2], 0.0), atol=1e-12)
    with pytest.raises(ValueError, match="ties"):
        T.escort([0.4, 0.4, 0.2], 0.0, ties="random")


def test_escort_bad_input():
    with pytest.raises(ValueError, match="alpha"):
        T.escort([0.5, -0.1], 0.5)
    with pytest.raises(ValueError, match="q must lie"):
        T.escort([0.5, 0.5], 1.5)


@pytest.mark.parametrize("q", [0.5, 0.75, 1.0])
def test_gradient_descent_recovers_escort(q):
    alpha = [0.5, 0.3, 0.2]
    r = T.minimise_escort_objective(alpha, q)
    assert r["grad_norm"] < 1e-12
    assert torch.allclose(r["theta"], T.escort(alpha, q), atol=1e-10)


def test_gradient_descent_q0_heads_to_mode_vertex():
    r = T.minimise_escort_objective([0.2, 0.5, 0.3], 0.0, steps=2000)
    assert r["theta"][1] > 0.99
    assert r["objective"][-1] < r["objective"][0]


def test_dispersion_penalty():
    P = torch.tensor([0.1, 0.2, 0.3, 0.25], dtype=torch.float64)
    d0 = T.dispersion_penalty(P, 0.0)
    assert abs(d0["exact"]) < 1e-15 and d0["second_order"] == 0.0
    gaps = [T.dispersion_penalty(P, q)["exact"] for q in (0.25, 0.5, 0.75, 1.0)]
    assert all(g > 0 for g in gaps) and all(np.diff(gaps) > 0)  # coefficient increases in q
    # second order is the small-spread limit: relative error -> 0 as the spread shrinks
    errs = []
    for s in (1e-1, 1e-2, 1e-3):
        Ps = 0.3 + s * torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64)
        d = T.dispersion_penalty(Ps, 0.5)
        errs.append(abs(d["exact"] / d["second_order"] - 1))
    assert errs[2] < 1e-4 and errs[0] > errs[1] > errs[2]
    # constant P: no penalty
    assert abs(T.dispersion_penalty([0.3, 0.3], 0.5)["exact"]) < 1e-15


def test_propriety_only_at_q1():
    alpha = [0.5, 0.3, 0.2]
    assert abs(T.propriety_gap(alpha, 1.0)) < 1e-14
    for q in (0.0, 0.25, 0.5, 0.9):
        assert T.propriety_gap(alpha, q) > 1e-4
    assert abs(T.propriety_gap([0.5, 0.5], 0.5)) < 1e-14  # uniform: escort = alpha


# ------------------------------------------------------------------ dynamics (Sec. 5, App. C)


@pytest.mark.parametrize("q", [0.0, 1.0])
@pytest.mark.parametrize("p0", [1e-10, 1e-6, 1e-2, 0.3])
def test_escape_time_closed_form(q, p0):
    assert T.escape_time(p0, q) == pytest.approx(T.escape_time_closed_form(p0, q), rel=1e-12)


def test_escape_time_q1_tracks_log():
    for p0 in (1e-4, 1e-7, 1e-10):
        T1 = T.escape_time(p0, 1.0)
        # T_1 = log(1/p0) + O(1): remainder at most 8 (delta - p0) (App. C.1), and > 0
        assert 0 < T1 - math.log(1 / p0) - math.log(0.5) < 8 * 0.5


def test_escape_time_quadrature_vs_integrand():
    # independent check: direct quadrature of Eq. 15 on a mid range
    from scipy import integrate

    for q in (0.25, 0.5, 0.75):
        ref, _ = integrate.quad(lambda u: 1 / (u ** (2 - q) * (1 - u) ** 2), 1e-3, 0.5, epsrel=1e-12, limit=500)
        assert T.escape_time(1e-3, q) == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("q", [0.0, 0.25, 0.5, 0.75])
def test_escape_time_slope_and_constant(q):
    p0 = np.logspace(-10, -4, 7)
    Ts = T.escape_time(p0, q)
    slope, _ = T.fit_loglog_slope(p0, Ts)
    assert abs(slope + (1 - q)) <= 0.05 * (1 - q)
    ratio = Ts[0] / T.escape_time_asymptote(1e-10, q)
    assert abs(ratio - 1) < 0.01  # 1 + o(1)
    # remainder bound of App. C.1 for q in (0, 1): at most 8 delta^q / q
    if q > 0:
        rem = Ts - (p0 ** -(1 - q) - 0.5 ** -(1 - q)) / (1 - q)
        assert (rem >= 0).all() and (rem <= 8 * 0.5**q / q).all()


def test_ordering_in_q():
    for p0 in (1e-8, 1e-3):
        Ts = [T.escape_time(p0, q) for q in (0.0, 0.25, 0.5, 0.75, 1.0)]
        assert all(np.diff(Ts) < 0)


@pytest.mark.parametrize("q,p0", [(0.0, 1e-6), (0.5, 1e-8), (1.0, 1e-10)])
def test_simulated_flow_matches_quadrature(q, p0):
    r = T.simulate_sigmoid_flow(p0, q)
    assert r.T == pytest.approx(T.escape_time(p0, q), rel=1e-5)
    assert np.all(np.diff(r.log_P) >= -1e-12)  # P is monotone (Eq. 6)


def test_mlp_flow_ordering_and_varying_score():
    log_P, th0 = T.mlp_flow_problem(1e-3, seed=1)
    assert float(log_P(th0).detach().exp()) == pytest.approx(1e-3, rel=1e-10)
    Ts = [T.simulate_gradient_flow(log_P, th0, q).T for q in (0.0, 0.5, 1.0)]
    assert Ts[0] > Ts[1] > Ts[2] > 0
    r = T.simulate_gradient_flow(log_P, th0, 1.0)
    s_start, s_end = T.score_norm_sq(log_P, th0), T.score_norm_sq(log_P, r.theta[:, -1])
    assert abs(s_start / s_end - 1) > 0.1  # the score norm is not constant along the flow


def test_near_optimum_q_does_not_matter():
    for eps0 in (1e-1, 1e-2):
        T1 = T.near_optimum_time(eps0, 1e-6, 1.0)
        for q in (0.0, 0.5):
            Tq = T.near_optimum_time(eps0, 1e-6, q)
            assert abs(Tq / T1 - 1) <= 2 * eps0
    # compare with the general flow time through the same interval
    assert T.near_optimum_time(0.4, 0.1, 0.5) == pytest.approx(T.sigmoid_flow_time(0.6, 0.9, 0.5), rel=1e-10)


def test_dynamics_bad_input():
    with pytest.raises(ValueError, match="p0"):
        T.escape_time(0.7, 0.5)
    with pytest.raises(ValueError, match="p0"):
        T.escape_time(0.0, 0.5)
    with pytest.raises(ValueError, match="P\\(theta0\\) < delta"):
        T.simulate_sigmoid_flow(0.6, 0.5)
    with pytest.raises(ValueError, match="fit_loglog_slope"):
        T.fit_loglog_slope([1, 2], [1, -2])


# ------------------------------------------------------------------ label noise (App. C.5)


def test_noise_equilibrium_is_escort_and_root():
    eps = 0.1
    for q in (0.25, 0.5, 1.0):
        c = T.noise_equilibrium(eps, q)
        assert abs(T.contamination_rate(c, q, eps)) < 1e-10
        assert T.contamination_rate(0.5 * c, q, eps) > 0 > T.contamination_rate(min(2 * c, 0.9), q, eps)  # stable
    assert T.noise_equilibrium(eps, 1.0) == pytest.approx(eps, abs=1e-15)
    assert T.noise_equilibrium(eps, 0.0) == 0.0
    # Eq. 17's asymptote: (eps/(1-eps))^(1/q) (1 + o(1)) as eps -> 0
    r = [T.noise_equilibrium(e, 0.5) / T.noise_equilibrium_asymptote(e, 0.5) for e in (1e-1, 1e-2, 1e-3)]
    assert abs(r[2] - 1) < 1e-5 and abs(r[0] - 1) > abs(r[2] - 1)


@pytest.mark.parametrize("q", [0.25, 0.5, 0.75, 1.0])
def test_noise_fitting_exponent(q):
    eps = 0.1
    etas = T.noise_equilibrium(eps, q) * np.logspace(-10, -7, 4)
    Tn = T.noise_fitting_time(etas, q, eps)
    slope, _ = T.fit_loglog_slope(etas, Tn)
    assert abs(slope - (q + 1)) < 0.01 * (q + 1)
    assert Tn[0] / T.noise_fitting_asymptote(etas[0], q, eps) == pytest.approx(1, abs=0.01)


def test_q0_never_memorises():
    assert T.noise_fitting_time(1e-6, 0.0, 0.1) == math.inf
    t = np.logspace(-3, 3, 20)
    c = T.simulate_contamination(0.0, 0.1, 1e-3, t)
    assert np.all(np.diff(c) <= 0) and c[-1] == 0.0
    c1 = T.simulate_contamination(1.0, 0.1, 1e-6, t)
    assert c1[-1] == pytest.approx(0.1, rel=1e-4)  # q = 1 fits the noise exactly


def test_label_flow_grad_matches_autograd():
    th = np.array([0.3, -1.2, 0.5])
    alpha = np.array([0.85, 0.15, 0.0])
    for q in (0.0, 0.5, 1.0):
        t = torch.tensor(th, requires_grad=True)
        lp = torch.log_softmax(t, 0)
        loss = (torch.tensor(alpha[:2]) * qloss(lp[:2], q)).sum()
        (g,) = torch.autograd.grad(loss, t)
        assert np.allclose(T.label_flow_grad(th, q, alpha), g.numpy(), atol=1e-14)


def test_sft_then_rlvr_schedule():
    eps, p0, t_sw = 0.1, 1e-4, 20.0
    alpha, th0 = [1 - eps, eps, 0.0], np.log([p0, p0, 1 - 2 * p0])
    t = np.array([t_sw, 3000.0])
    sched = T.simulate_label_flow(
        lambda s: 1.0 if s < t_sw else 0.0, alpha=alpha, theta0=th0, t_eval=t, breakpoints=[t_sw]
    )
    q1 = T.simulate_label_flow(lambda s: 1.0, alpha=alpha, theta0=th0, t_eval=t)
    q0 = T.simulate_label_flow(lambda s: 0.0, alpha=alpha, theta0=th0, t_eval=t)
    assert sched[0, 0] > 0.5 and q0[0, 0] < 1e-3  # escaped under q = 1, q = 0 still cold
    assert q1[-1, 1] == pytest.approx(eps, rel=3e-3)  # q = 1 memorises the flip rate (up to the decaying third label)
    assert sched[-1, 1] < 0.1 * q1[-1, 1]  # schedule ends far less contaminated
    assert sched[-1, 0] > q1[-1, 0]


# ------------------------------------------------------------------ estimators (Sec. 6, App. D)


def test_garl_bias_matches_leading_term():
    m = LatentCategoricalModel.random(3, seed=0)
    for q in (0.5, 1.0):
        rel = []
        for M in (8, 32):
            b = T.garl_exact_bias(m, q, M)
            lead = m.garl_bias_leading_term(q, M)
            rel.append(float((b - lead).norm() / lead.norm()))
        assert rel[1] < 0.1 and rel[1] < rel[0]  # O(1/M) relative correction
    assert T.garl_exact_bias(m, 0.0, 8).abs().max() < 1e-14  # unbiased at q = 0


def test_rloo_keeps_bias_cuts_variance():
    m = LatentCategoricalModel.random(3, seed=1)
    q, M = 0.5, 6
    assert torch.allclose(T.garl_exact_mean(m, q, M, baseline="rloo"), T.garl_exact_mean(m, q, M), atol=1e-13)
    v_plug = T.exact_pool_moments(m, T.garl_surrogate(q, "none"), M)["total_var"]
    v_rloo = T.exact_pool_moments(m, T.garl_surrogate(q, "rloo"), M)["total_var"]
    assert v_rloo < v_plug
    r = T.rloo_variance_ratio(m, q, M)
    assert r["mean_gap"] < 1e-13 and r["ratio"] == pytest.approx(v_rloo / v_plug, rel=1e-12)
    # not a theorem: for this model (likely rationale with high w, small score) RLOO adds variance
    assert T.rloo_variance_ratio(LatentCategoricalModel.random(3, seed=0), q, M)["ratio"] > 1


def test_paft_same_mean_larger_variance():
    m = LatentCategoricalModel.random(3, seed=2)
    q, M, K = 0.5, 4, 4
    ex = T.paft_exact_variance(m, q, M, K)
    assert ex["var_paft"] > ex["var_garl"] > 0
    G = T.paft_sampled_grads(m, q, M, K, 40000, seed=3)
    se = G.std(0) / math.sqrt(G.shape[0])
    assert ((G.mean(0) - ex["mean_garl"]).abs() < 5 * se + 1e-12).all()
    assert float(G.var(0).sum()) == pytest.approx(ex["var_paft"], rel=0.05)


def test_max_amplified_advantage_bound():
    g = torch.Generator().manual_seed(0)
    for q in (0.0, 0.5, 1.0):
        ly = -torch.rand(64, 8, generator=g, dtype=torch.float64) * 30
        assert T.max_amplified_advantage(ly, q) <= 1 + 1e-12
    M, q = 16, 0.5
    ly = torch.full((1, M), -40.0, dtype=torch.float64)
    ly[0, 0] = 0.0  # one success with w = 1, the rest ~ 0: the bound M^q is attained
    assert T.max_amplified_advantage(ly, q) == pytest.approx(1.0, abs=1e-6)


def test_bias_exponent_in_P():
    Ps = np.logspace(-4, -2, 3)
    for q in (0.25, 0.75):
        r = T.bias_vs_P(q, 32, Ps, regime="shift")
        assert abs(r["slope_bias"] - (1 - q)) < 0.02  # every w shrinks: bias ~ P^(1-q)
    r = T.rare_rationale_model(0.02)
    assert float(r.log_P().detach().exp()) == pytest.approx(0.02, rel=1e-12)


# ------------------------------------------------------------------ geometry (Prop. 4.1)


def test_gradients_parallel_and_scale():
    m = TinyAutoregressiveLatentModel.random(seed=0).calibrate(0, 2, 1e-3)
    g = T.gradient_geometry(m, 0, 2, [0.0, 0.25, 0.5, 0.75, 1.0])
    assert g["P"] == pytest.approx(1e-3, rel=1e-9)
    assert np.all(np.abs(g["cos"] - 1) < 1e-6)
    assert np.allclose(g["norm_ratio"], g["P_pow_minus_q"], rtol=1e-9)
    assert np.allclose(g["norm_ratio_l1"], g["P_pow_one_minus_q"], rtol=1e-9)  # attenuation form of Eq. 5


def test_reweighting_demo():
    m = TinyAutoregressiveLatentModel.random(seed=0).calibrate(0, 0, 1e-3).calibrate(1, 1, 0.5)
    d = T.reweighting_demo(
        m,
        [(0, 0), (1, 1)],
        [0.0, 0.5, 1.0],
        adam_grid={"lr": [1e-4], "betas": [(0.9, 0.999)], "eps": [1e-8, 1e-2], "steps": 3},
    )
    assert d["max_abs_autograd_err"] < 1e-10
    assert np.allclose(d["q_weight_ratio"], [1.0, 500**0.5, 500.0], rtol=1e-6)
    assert d["cos_sgd"][0] == pytest.approx(1.0, abs=1e-12) and d["cos_sgd"][2] < 0.999
    assert d["adam_cos"].shape == (2, 3)
    assert d["adam_cos"][:, 2].max() < 0.99
    # Adam's per-example weighting is one number per setting, not (P1/P2)^-q for every q
    assert np.all(d["adam_weight_ratio"] < 0.5 * 500)


def test_asymptotic_departure():
    b = T.asymptotic_departure(0.5, rtol=0.05)
    T_b = T.escape_time(b, 0.5)
    assert abs(T_b / T.escape_time_asymptote(b, 0.5) - 1) <= 0.05
    assert 1e-6 < b < 0.5
    assert T.asymptotic_departure(0.5, rtol=0.01) < b


def test_tiny_model_enumeration():
    m = TinyAutoregressiveLatentModel.random(V=2, L=3, seed=1)
    assert m.rationales().shape == (8, 3)
    assert float(m.log_pz(0).detach().exp().sum()) == pytest.approx(1.0, abs=1e-12)
    assert float(sum(m.log_P(1, y).detach().exp() for y in range(m.Y))) == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match="target_P"):
        m.calibrate(0, 0, 1.5)

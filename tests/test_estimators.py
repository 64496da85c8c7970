"""GARL, PAFT, GRPO and RLOO against exact gradients of a small enumerable latent model.

The exact expectation of an estimator over pools of M i.i.d. prior samples is computed by
enumerating the multinomial count vectors of the pool (``LatentCategoricalModel.exact_expectation``),
so bias statements are tested without Monte Carlo noise; variance statements use many
independent pools.
"""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tsallis_ref import (
    garl_coefficients,
    garl_loss,
    group_advantages,
    grpo_loss,
    loo_log_mean_weight,
    paft_coefficients,
    paft_loss,
    paft_resample,
    rloo_loss,
    weight_stats,
)
from tsallis_ref.toy import LatentCategoricalModel

torch.set_num_threads(1)
# no per-example deadline: the two cores may be shared with other work
settings.register_profile("shared-cpu", deadline=None)
settings.load_profile("shared-cpu")
Q_GRID = [0.0, 0.25, 0.5, 0.75, 1.0]


def garl(q, baseline="none", normalize=False):
    return lambda lz, ly: garl_loss(lz, ly, q, baseline=baseline, normalize=normalize, reduction="none")


# ------------------------------------------------------------------------------------ GARL bias


@pytest.mark.parametrize("M,baseline", [(1, "none"), (2, "none"), (5, "none"), (2, "rloo"), (5, "rloo")])
def test_garl_unbiased_at_q0_exactly(M, baseline):
    m = LatentCategoricalModel.random(4, seed=3, target_P=0.05)
    est = m.exact_expectation(garl(0.0, baseline), M)
    torch.testing.assert_close(est, m.exact_grad(0.0), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("q", [0.25, 0.5, 0.75, 1.0])
def test_rloo_leaves_the_mean_unchanged(q):
    """Prop. 6.2 / D.1: the leave-one-out baseline keeps exactly the plug-in bias."""
    m = LatentCategoricalModel.random(4, seed=1, target_P=0.1)
    for M in (2, 6):
        torch.testing.assert_close(
            m.exact_expectation(garl(q, "rloo"), M), m.exact_expectation(garl(q, "none"), M), rtol=1e-10, atol=1e-13
        )


@pytest.mark.parametrize("q", [0.25, 0.75, 1.0])
def test_garl_bias_shrinks_like_one_over_M_and_matches_app_D(q):
    """Thm 6.1: bias = O(q / (M P^(q+1))), with App. D's explicit leading term."""
    m = LatentCategoricalModel.random(3, seed=7, target_P=0.3)
    exact = m.exact_grad(q)
    bias = {M: m.exact_expectation(garl(q), M) - exact for M in (32, 64)}
    assert bias[32].norm() > 1e-4  # the bias is real for q > 0 ...
    ratio = bias[32].norm() / bias[64].norm()
    assert 1.8 < ratio < 2.2, ratio  # ... and halves when M doubles
    lead = {M: m.garl_bias_leading_term(q, M) for M in (32, 64)}
    rel = {M: ((bias[M] - lead[M]).norm() / lead[M].norm()).item() for M in (32, 64)}
    assert rel[64] < 0.1 and rel[64] < rel[32], rel  # M * bias converges to the leading term


def test_garl_normalize_is_the_M_to_the_q_rescaling():
    m = LatentCategoricalModel.random(4, seed=2)
    for q in (0.0, 0.5, 1.0):
        a = m.exact_expectation(garl(q, "rloo", normalize=True), 4)
        b = m.exact_expectation(garl(q, "rloo", normalize=False), 4)
        torch.testing.assert_close(a, b / 4**q)


def test_monte_carlo_average_matches_exact_gradient():
    """The average of many independent GARL draws matches the exact grad l_q (q=0) and the
    exact estimator mean (q=0.75), within 4 standard errors."""
    m = LatentCategoricalModel.random(4, seed=5, target_P=0.1)
    g = torch.Generator().manual_seed(0)
    for q, target in ((0.0, m.exact_grad(0.0)), (0.75, m.exact_expectation(garl(0.75, "rloo"), 8))):
        draws = m.per_pool_grads(garl(q, "rloo"), 20000, 8, generator=g)
        se = draws.std(0) / math.sqrt(draws.shape[0])
        assert ((draws.mean(0) - target).abs() <= 4 * se + 1e-12).all(), q


# ------------------------------------------------------------------------------------ PAFT


def test_paft_mean_equals_plugin_garl_given_the_pool():
    """Prop. D.3: conditional on the pool, E[PAFT] = plug-in GARL."""
    m = LatentCategoricalModel.random(4, seed=4, target_P=0.2)
    g = torch.Generator().manual_seed(1)
    z, _, _ = m.sample(1, 8, generator=g)
    R = 40000
    zz = z.expand(R, -1)
    for q in (0.25, 1.0):
        lz, ly = m.log_prior()[zz], m.log_w()[zz]
        paft_mean = m.flat_grad(paft_loss(lz, ly, q, K=8, generator=g, normalize=False))
        lz, ly = m.log_prior()[z], m.log_w()[z]
        garl_pool = m.flat_grad(garl_loss(lz, ly, q, baseline="none", normalize=False))
        torch.testing.assert_close(paft_mean, garl_pool, rtol=0.02, atol=2e-3)


def test_paft_has_garl_mean_and_larger_variance():
    """Props. D.3 and D.4: same expectation as plug-in GARL, larger variance (total variance law)."""
    m = LatentCategoricalModel.random(4, seed=6, target_P=0.2)
    g = torch.Generator().manual_seed(2)
    q, M, N = 0.5, 8, 20000
    target = m.exact_expectation(garl(q), M)
    paft = m.per_pool_grads(
        lambda lz, ly: paft_loss(lz, ly, q, generator=g, normalize=False, reduction="none"), N, M, g
    )
    plug = m.per_pool_grads(garl(q), N, M, g)
    se = paft.std(0) / math.sqrt(N)
    assert ((paft.mean(0) - target).abs() <= 4 * se + 1e-12).all()
    assert paft.var(0).sum() > 1.2 * plug.var(0).sum()


def test_paft_weights_sum_and_attenuation():
    ly = torch.tensor([[-300.0, -301.0, -299.0, -305.0]], dtype=torch.float64)
    lz = torch.zeros_like(ly, requires_grad=True)
    g = torch.Generator().manual_seed(0)
    for q in (0.0, 0.5, 1.0):
        loss = paft_loss(lz, ly, q, K=16, generator=g)
        (grad,) = torch.autograd.grad(loss, lz)
        log_wbar = torch.logsumexp(ly, -1) - math.log(4)
        expected_total = math.exp((1 - q) * log_wbar.item()) / 4**q
        assert -grad.sum().item() == pytest.approx(expected_total, rel=1e-9, abs=1e-300)


def test_paft_resample_properties():
    ly = torch.log(torch.tensor([[0.7, 0.2, 0.1, 0.0]], dtype=torch.float64)) - 400.0
    idx = paft_resample(ly, 20000, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(idx[0], minlength=4).double() / 20000
    torch.testing.assert_close(freq, torch.tensor([0.7, 0.2, 0.1, 0.0], dtype=torch.float64), atol=0.015, rtol=0)
    a = paft_resample(ly, 5, generator=torch.Generator().manual_seed(3))
    b = paft_resample(ly, 5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == (1, 5)
    with pytest.raises(ValueError, match="K >= 1"):
        paft_resample(ly, 0)


def test_paft_given_indices_is_sft_on_those_rationales():
    ly = torch.tensor([[-1.0, -2.0, -3.0]], dtype=torch.float64)
    lz = torch.zeros_like(ly, requires_grad=True)
    idx = torch.tensor([[2, 2, 0, 2]])
    loss = paft_loss(lz, ly, 1.0, indices=idx, normalize=False)
    (g,) = torch.autograd.grad(loss, lz)
    torch.testing.assert_close(-g, torch.tensor([[0.25, 0.0, 0.75]], dtype=torch.float64))


# ------------------------------------------------------------------------------------ numerics


@given(
    lo=st.floats(-1e4, 0.0),
    spread=st.floats(0.0, 1e4),
    q=st.floats(0.0, 1.0),
    M=st.integers(1, 32),
    seed=st.integers(0, 1000),
)
@settings(max_examples=60, deadline=None)
def test_no_nan_or_inf_over_the_whole_range(lo, spread, q, M, seed):
    g = torch.Generator().manual_seed(seed)
    ly = (lo - spread * torch.rand(2, M, generator=g, dtype=torch.float32)).clamp(min=-1e4).requires_grad_()
    lz = (-50 * torch.rand(2, M, generator=g)).requires_grad_()
    losses = [garl_loss(lz, ly, q, baseline="none"), paft_loss(lz, ly, q, generator=g)]
    if M >= 2:
        losses.append(garl_loss(lz, ly, q, baseline="rloo"))
    for loss in losses:
        gz, gy = torch.autograd.grad(loss, [lz, ly])
        assert torch.isfinite(loss) and torch.isfinite(gz).all() and torch.isfinite(gy).all()
    stats = weight_stats(ly, q)
    assert all(math.isfinite(v) for k, v in stats.items() if k not in ("amp_mean", "amp_max"))


def test_rloo_with_one_sample_is_a_clear_error():
    lz = torch.zeros(3, 1, requires_grad=True)
    with pytest.raises(ValueError, match="M >= 2"):
        garl_loss(lz, lz, 0.5, baseline="rloo")


@pytest.mark.parametrize("shift", [-50.0, -700.0, -5000.0])
def test_q1_weights_are_self_normalised(shift):
    """At q = 1 adding a constant to every logp_y of a prompt leaves the weights unchanged."""
    ly = torch.tensor([[-3.0, -1.0, -2.5, -7.0]], dtype=torch.float64)
    for baseline in ("none", "rloo"):
        a = garl_coefficients(ly, 1.0, baseline=baseline)
        b = garl_coefficients(ly + shift, 1.0, baseline=baseline)
        torch.testing.assert_close(a.coef_z, b.coef_z, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(a.coef_y, b.coef_y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        garl_coefficients(ly + shift, 1.0).coef_z.sum(), torch.tensor(0.0, dtype=torch.float64), atol=1e-12, rtol=0
    )


def test_cold_start_gradient_is_tiny_but_not_lost_in_float64():
    ly = torch.full((1, 4), -300.0, dtype=torch.float64)
    ly[0, 0] = -290.0
    lz = torch.zeros_like(ly, requires_grad=True)
    (g,) = torch.autograd.grad(garl_loss(lz, ly, 0.0, baseline="none", normalize=False), lz)
    torch.testing.assert_close(-g[0, 0], torch.tensor(math.exp(-290) / 4, dtype=torch.float64), rtol=1e-9, atol=0)


def test_loo_mean_is_exact_when_one_weight_dominates():
    ly = torch.tensor([[0.0, -800.0, -801.0]], dtype=torch.float64)
    loo = loo_log_mean_weight(ly)
    expected0 = torch.logsumexp(torch.tensor([-800.0, -801.0], dtype=torch.float64), 0) - math.log(2)
    assert loo[0, 0].item() == pytest.approx(expected0.item(), rel=1e-12)


def test_garl_gradient_wrt_inputs_is_the_coefficients():
    g = torch.Generator().manual_seed(0)
    ly = (-5 * torch.rand(3, 6, generator=g, dtype=torch.float64)).requires_grad_()
    lz = (-5 * torch.rand(3, 6, generator=g, dtype=torch.float64)).requires_grad_()
    co = garl_coefficients(ly, 0.5, baseline="rloo")
    gz, gy = torch.autograd.grad(garl_loss(lz, ly, 0.5), [lz, ly])
    torch.testing.assert_close(gz, -co.coef_z / (6 * 3))
    torch.testing.assert_close(gy, -co.coef_y / (6 * 3))
    assert co.coef_z.max().item() == pytest.approx(weight_stats(ly, 0.5)["max_adv"])


@pytest.mark.parametrize(
    "bad",
    [
        dict(logp_z=torch.zeros(4), logp_y=torch.zeros(4)),
        dict(logp_z=torch.zeros(2, 3), logp_y=torch.zeros(2, 4)),
        dict(logp_z=torch.zeros(2, 3, dtype=torch.long), logp_y=torch.zeros(2, 3, dtype=torch.long)),
    ],
)
def test_bad_shapes_are_clear_errors(bad):
    with pytest.raises((ValueError, TypeError), match=r"garl_loss: "):
        garl_loss(bad["logp_z"], bad["logp_y"], 0.5)


def test_bad_q_and_baseline():
    lz = torch.zeros(1, 3)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        garl_loss(lz, lz, 1.2)
    with pytest.raises(ValueError, match="baseline"):
        garl_loss(lz, lz, 0.5, baseline="mean")


# ------------------------------------------------------------------------------------ baselines


def test_group_advantages_zero_variance_groups_give_zero():
    r = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 1.0, 0.0]])
    a = group_advantages(r)
    assert torch.equal(a[0], torch.zeros(4))
    torch.testing.assert_close(a[1], torch.tensor([0.5, -0.5, 0.5, -0.5]) / (r[1].std() + 1e-4))
    torch.testing.assert_close(group_advantages(r, scale="none")[1], torch.tensor([0.5, -0.5, 0.5, -0.5]))


def test_grpo_on_policy_gradient_and_aggregation():
    g = torch.Generator().manual_seed(0)
    lp = (-torch.rand(1, 2, 3, generator=g)).requires_grad_()
    mask = torch.tensor([[[1, 1, 0], [1, 1, 1]]])
    r = torch.tensor([[1.0, 0.0]])
    adv = group_advantages(r)
    (gr,) = torch.autograd.grad(grpo_loss(lp, mask, r), lp)
    expected = torch.stack([-adv[0, 0] * mask[0, 0] / 2, -adv[0, 1] * mask[0, 1] / 3]).unsqueeze(0) / 2
    torch.testing.assert_close(gr, expected)
    (gt,) = torch.autograd.grad(grpo_loss(lp, mask, r, loss_agg="token-mean"), lp)
    torch.testing.assert_close(gt, -adv.unsqueeze(-1) * mask / 5)


def test_grpo_clipping_and_kl():
    lp = torch.tensor([[[-1.0], [-1.0]]], requires_grad=True)
    old = torch.tensor([[[-1.5], [-1.0]]])  # ratio e^0.5 > 1.2 for the first sample
    mask = torch.ones(1, 2, 1)
    r = torch.tensor([[1.0, 0.0]])
    (g,) = torch.autograd.grad(grpo_loss(lp, mask, r, old_logp_tokens=old), lp)
    assert g[0, 0, 0].item() == 0.0  # positive advantage, ratio above 1 + eps: clipped, no gradient
    with pytest.raises(ValueError, match="ref_logp_tokens"):
        grpo_loss(lp, mask, r, beta=0.1)
    (gk,) = torch.autograd.grad(grpo_loss(lp, mask, torch.zeros(1, 2), beta=0.1, ref_logp_tokens=lp.detach() - 1), lp)
    # k3 gradient d/dlp [exp(ref-lp) - (ref-lp) - 1] = 1 - exp(ref - lp) = 1 - e^-1, times beta / 2 samples
    torch.testing.assert_close(gk, torch.full_like(lp, 0.1 * (1 - math.exp(-1)) / 2))


def test_rloo_loss_gradient():
    lp = torch.zeros(1, 4, requires_grad=True)
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    (g,) = torch.autograd.grad(rloo_loss(lp, r), lp)
    torch.testing.assert_close(-g * 4, torch.tensor([[2 / 3, -2 / 3, -2 / 3, 2 / 3]]))
    with pytest.raises(ValueError, match="M >= 2"):
        rloo_loss(lp[:, :1], r[:, :1])


# ------------------------------------------------------------------------------------ edges: -inf scores, dead prompts


def _surrogates(q, M):
    """The estimators' surrogates as functions of (logp_z, logp_y), PAFT with fixed resampling indices."""
    idx = torch.tensor([[0, 2, 2, 3][:M], [1, 1, 0, 3][:M]])  # never column 1 of prompt 0 (weight 0 below)
    fns = {
        "garl-none": lambda lz, ly: garl_loss(lz, ly, q, baseline="none", reduction="sum"),
        "garl-rloo": lambda lz, ly: garl_loss(lz, ly, q, baseline="rloo", reduction="sum"),
        "paft": lambda lz, ly: paft_loss(lz, ly, q, indices=idx, reduction="sum"),
    }
    return fns


@pytest.mark.parametrize("q", [0.0, 0.5, 1.0])
def test_one_minus_inf_score_is_a_zero_weight_not_a_nan(q):
    """w = exp(-inf) = 0: that sample adds nothing; the surrogate and its gradient equal those with a finite but
    negligible score (-1e4, whose weight is 0 in float64 too)."""
    lz0 = torch.tensor([[-3.0, -2.0, -4.0, -1.0], [-2.0, -5.0, -1.0, -3.0]], dtype=torch.float64)
    ly_inf = torch.tensor([[-1.0, -math.inf, -2.0, -0.5], [-3.0, -1.0, -2.0, -1.5]], dtype=torch.float64)
    ly_fin = ly_inf.clamp(min=-1e4)
    for name, fn in _surrogates(q, 4).items():
        out = []
        for ly0 in (ly_inf, ly_fin):
            lz, ly = lz0.clone().requires_grad_(), ly0.clone().requires_grad_()
            loss = fn(lz, ly)
            out.append((loss, *torch.autograd.grad(loss, [lz, ly])))
        (l1, gz1, gy1), (l2, gz2, gy2) = out
        assert torch.isfinite(l1), (name, q, l1)
        torch.testing.assert_close(l1, l2, rtol=1e-12, atol=0)
        torch.testing.assert_close(gz1, gz2, rtol=1e-12, atol=0)
        torch.testing.assert_close(gy1, gy2, rtol=1e-12, atol=0)


@pytest.mark.parametrize("q", [0.0, 0.5, 1.0])
def test_a_dead_prompt_adds_zero_gradient_and_is_counted(q):
    """Prompt 1's scores are all -inf (wbar = 0): its gradient is 0 (also at q = 1, where PAFT's attenuation is 1),
    prompt 0's is what it is alone, nothing is NaN, and the diagnostics count one dead prompt."""
    lz0 = torch.tensor([[-3.0, -2.0, -4.0, -1.0], [-2.0, -5.0, -1.0, -3.0]], dtype=torch.float64)
    ly0 = torch.tensor([[-1.0, -3.0, -2.0, -0.5], [-math.inf] * 4], dtype=torch.float64)
    for name, fn in _surrogates(q, 4).items():
        lz, ly = lz0.clone().requires_grad_(), ly0.clone().requires_grad_()
        loss = fn(lz, ly)
        gz, gy = torch.autograd.grad(loss, [lz, ly])
        assert torch.isfinite(loss) and torch.isfinite(gz).all() and torch.isfinite(gy).all(), name
        assert gz[1].abs().max() == 0 and gy[1].abs().max() == 0, name
        lz1, ly1 = lz0[:1].clone().requires_grad_(), ly0[:1].clone().requires_grad_()
        g_alone = torch.autograd.grad(
            fn(lz1, ly1)
            if name != "paft"
            else paft_loss(lz1, ly1, q, indices=torch.tensor([[0, 2, 2, 3]]), reduction="sum"),
            [lz1, ly1],
        )
        torch.testing.assert_close(gz[:1], g_alone[0])
        torch.testing.assert_close(gy[:1], g_alone[1])
    co = garl_coefficients(ly0, q)
    assert co.n_dead_prompts == 1 and co.dead.tolist() == [False, True]
    assert co.coef_z[1].abs().max() == 0 and co.coef_y[1].abs().max() == 0
    st = weight_stats(ly0, q)
    assert st["n_dead_prompts"] == 1 and math.isfinite(st["max_adv"]) and math.isfinite(st["ess_frac"])
    assert weight_stats(ly0[:1], q)["n_dead_prompts"] == 0
    # PAFT's own resampling draws for a dead prompt too (softmax of all -inf is NaN: multinomial would raise)
    g = torch.Generator().manual_seed(0)
    idx = paft_resample(ly0, 4, generator=g)
    assert idx.shape == (2, 4) and paft_coefficients(ly0, q, idx)[1].abs().max() == 0
    lz, ly = lz0.clone().requires_grad_(), ly0.clone().requires_grad_()
    gz, gy = torch.autograd.grad(paft_loss(lz, ly, q, generator=g), [lz, ly])
    assert torch.isfinite(gz).all() and gz[1].abs().max() == 0


@pytest.mark.parametrize("bad", [float("nan"), math.inf])
def test_nan_or_plus_inf_scores_are_a_clear_error(bad):
    lz = torch.zeros(1, 3)
    ly = torch.tensor([[-1.0, bad, -2.0]])
    for fn in (garl_loss, paft_loss):
        with pytest.raises(ValueError, match=r"logp_y holds 1 NaN or \+inf"):
            fn(lz, ly, 0.5)
        with pytest.raises(ValueError, match=r"logp_z holds 1 NaN or \+inf"):
            fn(ly, lz, 0.5)


# ------------------------------------------------------------------------------------ precision (float32 inputs)


@pytest.mark.parametrize("q", [0.0, 0.5, 1.0])
def test_float32_coefficients_do_not_underflow_before_the_product(q):
    """At log w ~ -120 the q = 0 coefficients are ~e^-120, below float32's range (1.4e-45): they stay float64 up to
    the product with the scores, so the float32 call's surrogate equals the float64 one, and a caller that rescales
    the surrogate (here by e^120) gets the float64 gradient rounded once to float32, not 0."""
    g = torch.Generator().manual_seed(1)
    ly64 = -120.0 - 3.0 * torch.rand(2, 6, generator=g, dtype=torch.float64)
    lz64 = -20.0 * torch.rand(2, 6, generator=g, dtype=torch.float64)
    ly32, lz32 = ly64.float(), lz64.float()
    ly64, lz64 = ly32.double(), lz32.double()  # the same values in both precisions
    idx = torch.tensor([[0, 1, 1, 4, 5, 5], [2, 2, 3, 0, 1, 4]])
    fns = [
        lambda lz, ly: garl_loss(lz, ly, q, reduction="none"),
        lambda lz, ly: garl_loss(lz, ly, q, baseline="none", reduction="none"),
        lambda lz, ly: paft_loss(lz, ly, q, indices=idx, reduction="none"),
    ]
    for fn in fns:
        ref = fn(lz64, ly64)
        assert (ref != 0).all()
        lz, ly = lz32.clone().requires_grad_(), ly32.clone().requires_grad_()
        out = fn(lz, ly)
        torch.testing.assert_close(out.double(), ref, rtol=1e-6, atol=0)
        gz, gy = torch.autograd.grad(out.sum() * math.exp(120), [lz, ly])
        lzr, lyr = lz64.clone().requires_grad_(), ly64.clone().requires_grad_()
        rz, ry = torch.autograd.grad(fn(lzr, lyr).sum() * math.exp(120), [lzr, lyr])
        assert gz.dtype == torch.float32 and (gz != 0).any()
        torch.testing.assert_close(gz, rz.float(), rtol=1e-5, atol=0)
        torch.testing.assert_close(gy, ry.float(), rtol=1e-5, atol=0)


# ------------------------------------------------------------------------------------------ the estimator table
from tsallis_ref import estimators as E  # noqa: E402


def test_the_table_is_the_one_dispatch_with_one_default_q():
    from tsallis_ref import config, miniature
    from tsallis_ref.integrations import trl as TI

    assert set(E.ESTIMATORS) == {"garl", "paft", "grpo", "rloo", "maxrl"} == set(config.METHODS)
    assert config.MethodConfig().q == miniature.MiniTrainConfig().q == E.DEFAULT_Q
    assert TI.GARLConfig.__dataclass_fields__["q"].default == E.DEFAULT_Q
    g = torch.Generator().manual_seed(0)
    lz, ly = (
        -torch.rand(3, 4, generator=g, dtype=torch.float64),
        -5 * torch.rand(3, 4, generator=g, dtype=torch.float64),
    )
    got = E.ESTIMATORS["garl"](E.EstimatorInputs(lz, ly), {"q": 0.3, "baseline": "none"}).loss
    torch.testing.assert_close(got, E.garl_loss(lz, ly, 0.3, baseline="none"))
    with pytest.raises(ValueError, match="unknown option"):
        E.ESTIMATORS["garl"](E.EstimatorInputs(lz, ly), {"qq": 0.3})
    with pytest.raises(ValueError, match="needs rewards"):
        E.ESTIMATORS["maxrl"](E.EstimatorInputs(lz, ly))
    met = E.estimator_metrics(E.ESTIMATORS["paft"], lz, ly, indices=torch.zeros(3, 4, dtype=torch.long))
    assert set(met) <= set(E.METRIC_NAMES) and met["paft_unique_frac"] == 0.25 and met["dead_prompts"] == 0
    ly_dead = ly.clone()
    ly_dead[1] = -math.inf
    assert E.estimator_metrics(E.ESTIMATORS["garl"], lz, ly_dead)["dead_prompts"] == 1


def test_maxrl_advantage_and_its_zero_when_nothing_succeeds():
    lp = torch.zeros(2, 4, dtype=torch.float64, requires_grad=True)
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    E.maxrl_loss(lp, r, reduction="sum").backward()
    # -(1/M) (r_m / rbar - 1): rbar = 0.5 -> (1, -1, -1, 1) / 4; rbar = 0 -> 0
    torch.testing.assert_close(lp.grad, -torch.tensor([[1.0, -1.0, -1.0, 1.0], [0.0] * 4], dtype=torch.float64) / 4)


def test_maxrl_is_garl_q1_with_binary_rewards_and_climbs_log_success_exactly():
    """With an answer that is a deterministic function of z (w_m in {0, 1}, so w_m is the binary reward), MaxRL's
    gradient is GARL q=1's (RLOO baseline, no 1/M^q) pool by pool; and its exact expectation over pools of M
    (enumerated) is parallel to the exact grad log P, with the coefficient (1 - (1-P)^M) - P (1-P)^(M-1)."""
    from tsallis_ref.toy import LatentCategoricalModel

    Z, M = 4, 3
    mod = LatentCategoricalModel.random(Z, seed=2)
    succ = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=torch.float64)
    mod.phi = (80.0 * (2 * succ - 1)).requires_grad_()  # p(y*|z) = sigmoid(+-80): 1 or 0 in float64
    r_of = lambda ly: (ly > -1.0).to(torch.float64)  # the verifier's reward of each sample
    maxrl = lambda lz, ly: E.maxrl_loss(lz, r_of(ly), reduction="none")
    garl1 = lambda lz, ly: E.garl_loss(lz, ly, 1.0, baseline="rloo", normalize=False, reduction="none")
    z, lz, ly = mod.sample(6, M, torch.Generator().manual_seed(0))
    assert 0 < float(r_of(ly).mean()) < 1
    g_max = mod.flat_grad(maxrl(lz, ly).sum())[:Z]
    _, lz, ly = mod.pools_from_counts(torch.stack([torch.bincount(row, minlength=Z) for row in z]))
    g_garl = mod.flat_grad(garl1(lz, ly).sum())[:Z]
    torch.testing.assert_close(g_max, g_garl, atol=1e-12, rtol=1e-9)
    # exact expectation over all pools of M against the exact gradient of log P (theta part)
    P = float(mod.log_P().exp())
    expect = mod.exact_expectation(maxrl, M)[:Z]
    grad_logP = -mod.flat_grad(mod.log_P())[:Z]  # descent direction of -log P
    coef = (1 - (1 - P) ** M) - P * (1 - P) ** (M - 1)
    torch.testing.assert_close(expect, coef * grad_logP, atol=1e-12, rtol=1e-9)
    assert coef > 0

"""The q-logarithm and the per-example loss: identities, limits, numerics (paper Eqs. 1-5)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tsallis_ref import amplification, attenuation, qlog, qloss
from tsallis_ref.toy import LatentCategoricalModel

torch.set_num_threads(1)
# no per-example deadline: the two cores may be shared with other work
settings.register_profile("shared-cpu", deadline=None)
settings.load_profile("shared-cpu")

qs = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
us = st.floats(min_value=1e-12, max_value=1.0, allow_nan=False)
logps = st.floats(min_value=-1e4, max_value=0.0, allow_nan=False)


@given(q=qs)
def test_qlog_of_one_is_zero(q):
    assert qlog(1.0, q) == 0.0


@given(u=us)
def test_qlog_at_q1_is_log(u):
    assert qlog(u, 1.0) == pytest.approx(math.log(u), rel=1e-12, abs=1e-15)


@given(u=us, q=st.floats(min_value=0.0, max_value=0.999))
def test_qlog_matches_definition(u, q):
    # Eq. 1: (u^(1-q) - 1) / (1 - q), evaluated in high precision
    exact = (u ** (1 - q) - 1) / (1 - q)
    assert qlog(u, q) == pytest.approx(exact, rel=1e-9, abs=1e-12)


@given(u=us)
@settings(max_examples=50)
def test_qlog_continuous_as_q_to_1(u):
    for eps in (1e-3, 1e-6, 1e-9):
        assert abs(qlog(u, 1 - eps) - math.log(u)) <= 2 * eps * math.log(u) ** 2 + 1e-12


@given(u=us, q=qs)
@settings(max_examples=50)
def test_qlog_derivative_is_u_to_minus_q(u, q):
    t = torch.tensor(u, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(qlog(t, q), t)
    assert g.item() == pytest.approx(u ** (-q), rel=1e-9)


@given(u=st.floats(min_value=1e-6, max_value=1.0), q=qs)
@settings(max_examples=50)
def test_qlog_monotone_in_q(u, q):
    # log_q(u) is non-increasing in q for u <= 1 (the curves of the book's first figure are ordered)
    q2 = min(1.0, q + 0.1)
    assert qlog(u, q2) <= qlog(u, q) + 1e-12


@given(log_p=logps, q=qs)
def test_qloss_finite_nonnegative_and_matches_qlog(log_p, q):
    val = qloss(log_p, q)
    assert math.isfinite(val) and val >= 0
    if log_p > -700:
        assert val == pytest.approx(-qlog(math.exp(log_p), q), rel=1e-9, abs=1e-12)


def test_qloss_endpoints():
    for lp in (-1e-8, -0.3, -5.0, -300.0, -1e4):
        assert qloss(lp, 0.0) == pytest.approx(-math.expm1(lp), rel=1e-12)  # 1 - P
        assert qloss(lp, 1.0) == pytest.approx(-lp, rel=1e-15)  # -log P


def test_qloss_tensor_extremes_are_finite_and_accurate():
    lp = torch.tensor([-1e4, -80.0, -1.0, -1e-12, 0.0], dtype=torch.float32, requires_grad=True)
    for q in (0.0, 0.25, 0.5, 0.75, 0.999999, 1.0):
        val = qloss(lp, q)
        (g,) = torch.autograd.grad(val.sum(), lp)
        assert torch.isfinite(val).all() and torch.isfinite(g).all(), q
        # d l_q / d log P = -P^(1-q)  (the attenuation factor)
        expected = -torch.exp((1 - q) * lp.detach().double())
        torch.testing.assert_close(g.double(), expected, rtol=1e-5, atol=0)
    # in float64 the cold-start gradient P^(1-q) = e^-300 survives (expm1's own backward would give 0)
    lp64 = torch.tensor(-300.0, dtype=torch.float64, requires_grad=True)
    (g64,) = torch.autograd.grad(qloss(lp64, 0.0), lp64)
    assert g64.item() == pytest.approx(-math.exp(-300.0), rel=1e-12)
    # at q = 1 the loss is exactly -log P however small P
    assert qloss(lp, 1.0)[0].item() == pytest.approx(1e4)
    # near q = 1, (1 - P^(1-q)) / (1-q) with P = e^-1e4 is not catastrophically cancelled
    assert qloss(torch.tensor(-1e4, dtype=torch.float64), 1 - 1e-9).item() == pytest.approx(1e4, rel=1e-4)


def test_qloss_tensor_q_and_broadcast():
    lp = torch.linspace(-20, 0, 7, dtype=torch.float64)
    q = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64).unsqueeze(1)
    out = qloss(lp, q)
    assert out.shape == (3, 7)
    torch.testing.assert_close(out[2], -lp)
    torch.testing.assert_close(out[0], -torch.expm1(lp))


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_bad_q_is_a_clear_error(bad):
    with pytest.raises(ValueError, match=r"q must lie in \[0, 1\]"):
        qloss(-1.0, bad)
    with pytest.raises(ValueError, match=r"q must lie in \[0, 1\]"):
        qlog(0.5, bad)


def test_bad_probability_is_a_clear_error():
    with pytest.raises(ValueError, match="log_p <= 0"):
        qloss(0.5, 0.5)
    with pytest.raises(ValueError, match="u >= 0"):
        qlog(-0.1, 0.5)


@given(seed=st.integers(0, 10_000), q=qs, target=st.floats(min_value=1e-3, max_value=0.9))
@settings(max_examples=30, deadline=None)
def test_gradient_identity_prop_4_1(seed, q, target):
    """grad l_q = P^-q grad l_0 = P^(1-q) grad l_1 (Eq. 5) on a random latent model."""
    m = LatentCategoricalModel.random(5, seed=seed, target_P=target)
    log_p = m.log_P().detach()
    g_q = m.exact_grad(q)
    g_0, g_1 = m.exact_grad(0.0), m.exact_grad(1.0)
    torch.testing.assert_close(g_q, amplification(log_p, q) * g_0, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(g_q, attenuation(log_p, q) * g_1, rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------------------------ edges of autograd


def test_qlog_gradient_at_zero():
    """d/du log_q(u) = u^-q also at u = 0: 1 at q = 0 (log_0(u) = u - 1), +inf for q > 0, never NaN."""
    for dtype in (torch.float32, torch.float64):
        u = torch.tensor([0.0, 0.25, 1.0], dtype=dtype, requires_grad=True)
        (g,) = torch.autograd.grad(qlog(u, 0.0).sum(), u)
        assert g.tolist() == [1.0, 1.0, 1.0]
        (g,) = torch.autograd.grad(qlog(u, 0.5).sum(), u)
        assert g[0].item() == math.inf and g[1:].tolist() == pytest.approx([2.0, 1.0])
        (g,) = torch.autograd.grad(qlog(u, torch.tensor(0.0)).sum(), u)  # q as a tensor: the same
        assert g.tolist() == [1.0, 1.0, 1.0]


def _fd_dq(f, q, h=1e-6):
    if q + h > 1:
        return (f(q) - f(q - h)) / h
    if q - h < 0:
        return (f(q + h) - f(q)) / h
    return (f(q + h) - f(q - h)) / (2 * h)


@pytest.mark.parametrize("log_p", [-2.0, -1e-3, -40.0, -300.0])
@pytest.mark.parametrize("q", [0.0, 0.25, 0.5, 0.9, 1 - 1e-7, 1.0])
def test_qloss_derivative_in_q_matches_finite_differences(log_p, q):
    """Autograd's d l_q / d q through a q tensor (-2.943 where it is +1.057 at log P = -2, q = 0.5, before)."""
    qt = torch.tensor(q, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(qloss(torch.tensor(log_p, dtype=torch.float64), qt), qt)
    fd = _fd_dq(lambda x: qloss(log_p, x), q, h=1e-6 if abs(log_p) < 100 else 1e-9)
    assert g.item() == pytest.approx(fd, rel=1e-4, abs=1e-12)
    if log_p == -2.0 and q == 0.5:
        assert g.item() == pytest.approx(1.0569644706, rel=1e-9)
    # and through qlog(u, q) = -qloss(log u, q)
    (gu,) = torch.autograd.grad(qlog(torch.tensor(math.exp(log_p), dtype=torch.float64), qt), qt)
    assert gu.item() == pytest.approx(-g.item(), rel=1e-9, abs=1e-300)


def test_qloss_derivatives_pass_gradcheck():
    a = torch.tensor([1e-3, 0.05, 0.3, 0.75, 0.99], dtype=torch.float64)  # q inside (0, 1): gradcheck steps q by 1e-6
    lp = torch.tensor([-2.0, -5.0, -0.1, -30.0, -1.0], dtype=torch.float64, requires_grad=True)
    q = (1 - a).requires_grad_()
    assert torch.autograd.gradcheck(lambda lp, q: qloss(lp, q), (lp, q))

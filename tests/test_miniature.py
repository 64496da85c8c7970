"""Tests of tsallis_ref.miniature on a small task (V=5, L=2, K=3: 75 rationales, exact P)."""

import math

import pytest
import torch

import tsallis_ref.miniature as mini
from tsallis_ref.miniature import (
    MiniTask,
    MiniTrainConfig,
    TinyDecoder,
    estimate_log_success,
    exact_log_success,
    make_start,
    method_loss,
    noisy_labels,
    pretrain,
    sample_mini_answers,
    sample_mini_rationales,
    score_mini,
    strategy_prob,
    train_miniature,
)
from tsallis_ref.theory import escape_time

torch.set_num_threads(1)
SMALL = MiniTask(V=5, L=2, K=3)


@pytest.fixture(scope="module")
def pre():
    model, losses = pretrain(SMALL, d=32, steps=250, batch=128, lr=1e-2, seed=0)
    return model, losses


def test_task_answers_follow_the_rationale():
    t = MiniTask()
    x = t.random_inputs(200, torch.Generator().manual_seed(0))
    for j in range(t.K):
        R = t.coherent_rationale(x, torch.full((200,), j))
        # each state is the previous one plus the input digit plus the strategy offset, mod V
        prev = torch.zeros(200, dtype=torch.long)
        for k in range(t.L):
            assert torch.equal(R[:, 1 + k], (prev + x[:, k] + j) % t.V)
            prev = R[:, 1 + k]
        ans = t.answer_from_rationale(R)
        if j == 0:
            assert torch.equal(ans, t.gold(x))
            assert torch.equal(ans[:, -1], x.sum(1) % t.V)
        else:  # a wrong strategy followed coherently gets every answer digit wrong
            assert bool((ans != t.gold(x)).all())
    seq = t.sequences(x[:3], t.coherent_rationale(x[:3], torch.zeros(3, dtype=torch.long)), t.gold(x[:3]))
    assert (
        seq.shape == (3, t.seq_len)
        and bool((seq[:, 0] == t.BOS).all())
        and bool((seq[:, t.prompt_len + t.L + 1] == t.EQ).all())
    )


def test_task_rejects_colliding_strategies_and_bad_p0(pre):
    with pytest.raises(ValueError, match="answer digit right"):
        MiniTask(V=4, L=2, K=3)  # strategy 2 at step 2: 2*2 = 0 mod 4
    with pytest.raises(ValueError, match="p0"):
        make_start(pre[0], 0.0)
    with pytest.raises(ValueError, match="method"):
        MiniTrainConfig(method="ppo").validate()
    with pytest.raises(ValueError, match="q"):
        MiniTrainConfig(q=1.5).validate()


def test_flipped_labels_are_unreachable_and_counted():
    t = MiniTask()
    x = t.random_inputs(100, torch.Generator().manual_seed(1))
    y, fl = noisy_labels(t, x, 0.2, seed=0)
    assert int(fl.sum()) == 20
    assert torch.equal(y[~fl], t.gold(x)[~fl]) and bool((y[fl, -1] != t.gold(x)[fl, -1]).all())
    for j in range(t.K):  # no strategy followed coherently gives a flipped label
        ans = t.answer_from_rationale(t.coherent_rationale(x[fl], torch.full((20,), j)))
        assert bool((ans != y[fl]).any(-1).all())
    ya, fla = noisy_labels(t, x, 0.2, seed=0, flip="all")  # a wholly wrong label: every digit differs
    assert torch.equal(fla, fl) and torch.equal(ya[~fla], t.gold(x)[~fla])
    assert bool((ya[fla] != t.gold(x)[fla]).all())
    for j in range(t.K):
        ans = t.answer_from_rationale(t.coherent_rationale(x[fla], torch.full((20,), j)))
        assert bool((ans != ya[fla]).any(-1).all())
    with pytest.raises(ValueError, match="flip"):
        noisy_labels(t, x, 0.2, seed=0, flip="some")


def test_pretraining_learns_and_p0_control_is_monotone(pre):
    model, losses = pre
    assert losses[-1] < 0.5 * losses[0]
    x = SMALL.all_inputs()
    y = SMALL.gold(x)
    P_full = exact_log_success(model, x, y).exp().mean().item()
    assert P_full > 0.8 / SMALL.K  # ~1/K: the correct strategy is one of K, and it is followed
    p0s = [1e-1, 1e-2, 1e-3]
    P = [exact_log_success(make_start(model, p0), x, y).exp().mean().item() for p0 in p0s]
    assert P[0] > P[1] > P[2]
    for p0, p in zip(p0s, P):  # within a factor 3 of the target over three decades
        assert p0 / 3 < p < 3 * p0, (p0, p)
    # the stratified estimate agrees with exact enumeration
    start = make_start(model, 1e-2)
    est = estimate_log_success(start, x, y, n=8).exp().mean().item()
    ex = exact_log_success(start, x, y).exp().mean().item()
    assert abs(est - ex) < 0.3 * ex
    assert abs(strategy_prob(start, x) - 1e-2) < 5e-3


def test_exact_success_is_a_distribution_over_answers(pre):
    model = pre[0]
    x = SMALL.all_inputs()[:3]
    answers = torch.tensor([[a, b] for a in range(5) for b in range(5)])
    tot = torch.stack([exact_log_success(model, x, ans.expand(3, 2)).exp() for ans in answers]).sum(0)
    assert torch.allclose(tot, torch.ones(3, dtype=torch.float64), atol=1e-4)


@pytest.mark.parametrize(
    "method,q", [("garl", 0.0), ("garl", 0.5), ("garl", 1.0), ("paft", 0.75), ("grpo", 0.0), ("rloo", 0.0)]
)
def test_one_step_increases_success_on_a_fixed_batch(pre, method, q):
    start = make_start(pre[0], 0.3)
    x = SMALL.all_inputs()[::3]
    y = SMALL.gold(x)
    cfg = MiniTrainConfig(method=method, q=q, M=16, lr=0.05 if method in ("grpo", "rloo") else 0.3, normalize=False)
    model = start.__class__(SMALL)
    model.load_state_dict(start.state_dict())
    before = exact_log_success(model, x, y).exp().mean().item()
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    loss, stat = method_loss(model, cfg, x, y, torch.Generator().manual_seed(0))
    assert math.isfinite(loss.item())
    opt.zero_grad()
    loss.backward()
    opt.step()
    after = exact_log_success(model, x, y).exp().mean().item()
    assert after > before, (method, q, before, after)


def test_sampling_shapes_and_grammar(pre):
    model = pre[0]
    x = SMALL.all_inputs()[:4]
    g = torch.Generator().manual_seed(0)
    Z = sample_mini_rationales(model, x, 5, g)
    assert Z.shape == (20, SMALL.rationale_len)
    assert bool(((Z[:, 0] >= SMALL.S0) & (Z[:, 0] < SMALL.S0 + SMALL.K)).all())
    assert bool((Z[:, 1:] < SMALL.V).all())
    A = sample_mini_answers(model, x.repeat_interleave(5, 0), Z, g)
    assert A.shape == (20, SMALL.L) and bool((A < SMALL.V).all())


def test_run_is_deterministic_under_a_seed(pre):
    start = make_start(pre[0], 0.05)
    cfg = dict(method="garl", q=0.75, steps=4, B=2, M=4, eval_every=2, n_train=16, n_eval=4, lr=0.3)
    h1, h2 = train_miniature(start, MiniTrainConfig(**cfg)), train_miniature(start, MiniTrainConfig(**cfg))
    assert h1["loss"] == h2["loss"] and h1["P"] == h2["P"]
    h3 = train_miniature(start, MiniTrainConfig(**{**cfg, "seed": 1}))
    assert h3["loss"] != h1["loss"]


def test_miniature_names_are_distinct_from_the_main_stack():
    """The miniature's config, loop, samplers, scorer and run label carry their own names, and it keeps
    no escape-time formula of its own (``tsallis_ref.theory.escape_time`` is the one)."""
    for old in (
        "TrainConfig",
        "train",
        "sample_rationales",
        "sample_answers",
        "score",
        "run_label",
        "theory_escape_time",
    ):
        assert not hasattr(mini, old), old
    assert set(mini.__all__) <= set(dir(mini))
    assert mini.mini_run_label("garl", 0.75) == "GARL q=0.75" and mini.mini_run_label("grpo", 0.0) == "GRPO"


def test_escape_time_matches_the_power_law_integral_the_miniature_used():
    """Eq. 15's ``int du/(u^(2-q)(1-u)^2)`` lies between the power-law integral ``int u^-(2-q) du`` and
    ``(1-delta)^-2`` times it, has slope -(1-q) on log-log axes for small p0, and its q=1 value exceeds
    ``log(delta/p0)`` by a constant that does not depend on p0."""

    def power(p0, q, delta=0.5):
        return math.log(delta / p0) if q == 1 else (p0 ** -(1 - q) - delta ** -(1 - q)) / (1 - q)

    for q in (0.0, 0.25, 0.5, 0.75, 1.0):
        for p0 in (1e-1, 1e-3, 1e-6):
            T, lo = escape_time(p0, q), power(p0, q)
            assert lo < T < 4 * lo, (q, p0, T, lo)
    assert escape_time(1e-3, 0.0) == pytest.approx(1000 - 2, rel=0.02)  # the (1-u)^-2 factor adds O(log(1/p0))
    a, b = escape_time(1e-6, 0.5), escape_time(1e-8, 0.5)
    assert math.log(b / a) / math.log(1e-8 / 1e-6) == pytest.approx(-0.5, abs=0.01)
    gaps = [escape_time(p, 1.0) - math.log(0.5 / p) for p in (1e-4, 1e-8, 1e-12)]
    assert gaps[0] == pytest.approx(gaps[2], abs=1e-3) and gaps[0] > 0.5


def test_gradient_probe_amplifies_the_push_on_the_correct_strategy(pre):
    """At a cold start the q=1 estimator pushes the S_0 logit far harder than q=0 (the P^-q
    amplification), with a far larger total gradient norm; the answer-noise override is applied;
    bad input is rejected."""
    from tsallis_ref.miniature import gradient_probe

    start = make_start(pre[0], 0.02)
    kw = dict(M=32, B=4, n_train=64, n_eval=8, answer_noise=0.01)
    g0 = gradient_probe(start, MiniTrainConfig(method="garl", q=0.0, **kw), n_batches=6)
    g1 = gradient_probe(start, MiniTrainConfig(method="garl", q=1.0, **kw), n_batches=6)
    for g in (g0, g1):
        assert (
            all(math.isfinite(v) for k, v in g.items() if k not in ("norms", "pushes"))
            and 0.0 <= g["frac_clipped"] <= 1.0
        )
        assert len(g["norms"]) == len(g["pushes"]) == 6 and max(g["norms"]) == g["norm_max"]
    assert g1["push_mean"] > 3 * abs(g0["push_mean"]), (g0, g1)
    assert g1["norm_median"] > 3 * g0["norm_median"], (g0, g1)
    assert start.answer_noise == pre[0].answer_noise  # the override acts on the copy only
    with pytest.raises(ValueError, match="n_batches"):
        gradient_probe(start, MiniTrainConfig(), n_batches=0)
    with pytest.raises(ValueError, match="answer_noise"):
        MiniTrainConfig(answer_noise=1.5).validate()


def test_sequence_answer_channel_has_no_partial_credit(pre):
    """The "sequence" channel puts one floor eps V^-L under every wrong rationale, whatever digits it
    matches; the "digit" channel gives a factor V/eps per matching digit. Both are distributions."""
    model = pre[0]
    x = SMALL.all_inputs()[:2]
    y = SMALL.gold(x)
    right = SMALL.coherent_rationale(x, torch.zeros(2, dtype=torch.long))
    near = right.clone()
    near[:, 0] = SMALL.S0 + 1  # a wrong strategy token ...
    near[:, 2] = (y[:, 1] + 1) % SMALL.V  # ... and a wrong last state, but the first state digit matches y*
    far = SMALL.coherent_rationale(x, torch.ones(2, dtype=torch.long))  # a wrong strategy, every state digit wrong
    logw = {}
    for ch in ("digit", "sequence"):
        m = TinyDecoder(SMALL, answer_noise=0.05, answer_channel=ch)
        m.load_state_dict(model.state_dict())
        for name, R in (("right", right), ("near", near), ("far", far)):
            _, lp_y = score_mini(m, x, R, y)
            logw[ch, name] = m.answer_log_prob(lp_y)
        answers = torch.tensor([[a, b] for a in range(SMALL.V) for b in range(SMALL.V)])
        tot = torch.stack([exact_log_success(m, x, ans.expand(2, 2)).exp() for ans in answers]).sum(0)
        assert torch.allclose(tot, torch.ones(2, dtype=torch.float64), atol=1e-4), (ch, tot)
    floor = math.log(0.05) - SMALL.L * math.log(SMALL.V)
    assert torch.allclose(logw["sequence", "near"], torch.full((2,), floor), atol=0.2)  # within 20% of the floor
    assert torch.allclose(logw["sequence", "far"], torch.full((2,), floor), atol=0.2)
    assert bool((logw["digit", "near"] > logw["digit", "far"] + 2.0).all())  # partial credit in the digit channel
    assert bool((logw["sequence", "right"] > -0.5).all())
    with pytest.raises(ValueError, match="answer_channel"):
        TinyDecoder(SMALL, answer_channel="token")
    with pytest.raises(ValueError, match="answer_channel"):
        MiniTrainConfig(answer_channel="token").validate()
    with pytest.raises(ValueError, match="grad_clip"):
        MiniTrainConfig(grad_clip=0.0).validate()
    with pytest.raises(ValueError, match="stop_after_escape"):
        MiniTrainConfig(stop_after_escape=-1).validate()
    with pytest.raises(ValueError, match="delta"):
        MiniTrainConfig(delta=1.5).validate()


def test_sequence_channel_sampling_and_training(pre):
    """Sampled answers are replaced by uniform ones with probability eps; one step of every method under
    the sequence channel raises P; the override acts on the trained copy only; the run stops
    ``stop_after_escape`` steps after P reaches delta."""
    model = pre[0]
    m = TinyDecoder(SMALL, answer_noise=0.5, answer_channel="sequence")
    m.load_state_dict(model.state_dict())
    x = SMALL.all_inputs()[:1].repeat(400, 1)
    R = SMALL.coherent_rationale(x, torch.zeros(400, dtype=torch.long))
    A = sample_mini_answers(m, x, R, torch.Generator().manual_seed(0))
    frac = (A == SMALL.answer_from_rationale(R)).all(-1).float().mean().item()
    assert 0.4 < frac < 0.65, frac  # 1 - eps + eps / V^L = 0.52
    start = make_start(model, 0.3)
    xs = SMALL.all_inputs()[::3]
    ys = SMALL.gold(xs)
    for method, q in (("garl", 1.0), ("paft", 1.0), ("grpo", 0.0)):
        cfg = MiniTrainConfig(method=method, q=q, M=16, lr=0.05 if method == "grpo" else 0.3, answer_channel="sequence")
        mm = TinyDecoder(SMALL, answer_noise=0.05, answer_channel="sequence")
        mm.load_state_dict(start.state_dict())
        before = exact_log_success(mm, xs, ys).exp().mean().item()
        opt = torch.optim.SGD(mm.parameters(), lr=cfg.lr)
        loss, _ = method_loss(mm, cfg, xs, ys, torch.Generator().manual_seed(0))
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert exact_log_success(mm, xs, ys).exp().mean().item() > before, method
    cfg = dict(
        method="garl",
        q=1.0,
        steps=20,
        B=2,
        M=4,
        eval_every=1,
        n_train=16,
        n_eval=4,
        lr=0.05,
        answer_channel="sequence",
        delta=0.01,
        stop_after_escape=3,
    )
    h = train_miniature(start, MiniTrainConfig(**cfg))
    assert start.answer_channel == "digit"
    assert h["escape_step"] == 0 and len(h["loss"]) == 3 and h["eval_step"] == [0, 1, 2, 3]
    h_full = train_miniature(start, MiniTrainConfig(**{**cfg, "stop_after_escape": None}))
    assert len(h_full["loss"]) == 20 and h_full["eval_step"][-1] == 20


def test_run_outcome_classifies_escape_collapse_and_stall():
    from tsallis_ref.miniature import run_outcome

    steps = [0, 5, 10, 15]
    assert run_outcome({"eval_step": steps, "P": [1e-3, 0.1, 0.6, 0.7]}) == ("escaped", 10)
    assert run_outcome({"eval_step": steps, "P": [1e-3, 0.6, 0.3, 1e-5]}) == ("escaped, then collapsed", 5)
    assert run_outcome({"eval_step": steps, "P": [1e-3, 2e-3, 1e-4, 5e-6]}) == ("collapsed", None)
    assert run_outcome({"eval_step": steps, "P": [1e-3, 2e-3, 3e-3, 4e-3]}) == ("stalled", None)
    assert run_outcome({"eval_step": steps, "p_s0": [1e-3, 0.2, 0.3, 0.4]}, delta=0.25, key="p_s0") == ("escaped", 10)
    with pytest.raises(ValueError, match="delta"):
        run_outcome({"eval_step": steps, "P": [0.1] * 4}, delta=0.0)


def test_method_loss_source_fits_the_books_code_block():
    """cold_start_miniature prints ``method_loss``'s source; at 1280 px a code block shows 75 columns."""
    import inspect

    lines = inspect.getsource(method_loss).splitlines()
    assert max(map(len, lines)) <= 75, [line for line in lines if len(line) > 75]

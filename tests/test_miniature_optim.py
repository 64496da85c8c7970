"""The sampled miniature's q schedules (``MiniTrainConfig.q_schedule``) and Adam's eps (``adam_eps``), on the small
task of tests/test_miniature.py (V=5, L=2, K=3)."""

import pytest
import torch

from tsallis_ref.miniature import MiniTask, MiniTrainConfig, make_start, pretrain, train_miniature

torch.set_num_threads(1)
SMALL = MiniTask(V=5, L=2, K=3)
CFG = dict(method="garl", steps=6, B=2, M=4, eval_every=2, n_train=16, n_eval=4, lr=0.3)


@pytest.fixture(scope="module")
def start():
    model, _ = pretrain(SMALL, d=32, steps=250, batch=128, lr=1e-2, seed=0)
    return make_start(model, 0.05)


def test_constant_schedule_is_the_fixed_q_bitwise(start):
    fixed = train_miniature(start, MiniTrainConfig(**CFG, q=0.25))
    sched = train_miniature(start, MiniTrainConfig(**CFG, q=0.75, q_schedule={"kind": "constant", "q": 0.25}))
    other = train_miniature(start, MiniTrainConfig(**CFG, q=0.75))
    assert sched["q"] == [0.25] * 6 and "q" not in fixed
    assert sched["loss"] == fixed["loss"] and sched["P"] == fixed["P"]
    assert other["loss"] != fixed["loss"]


def test_step_schedule_switches_after_the_first_batch_at_the_threshold(start):
    ref = train_miniature(start, MiniTrainConfig(**CFG, q=1.0))
    w = [s["wbar_mean"] for s in ref["stat"]]
    k = next(i for i in range(1, 5) if w[i] > max(w[:i]))  # the threshold w[k] is first reached by batch k
    cfg = MiniTrainConfig(**CFG, q=0.5, q_schedule={"kind": "step", "q_start": 1, "q_end": 0, "threshold": w[k]})
    h = train_miniature(start, cfg)
    assert h["q"] == [1.0] * (k + 1) + [0.0] * (6 - k - 1)
    assert h["loss"][: k + 1] == ref["loss"][: k + 1] and h["loss"][k + 1] != ref["loss"][k + 1]


def test_adam_eps_reaches_the_optimizer(start):
    cfg = dict(CFG, q=0.5, optimizer="adam", lr=0.01)
    small = train_miniature(start, MiniTrainConfig(**cfg, adam_eps=1e-8))
    # an eps far above every gradient entry turns Adam into SGD at lr / eps: a step too small to change P
    huge = train_miniature(start, MiniTrainConfig(**cfg, adam_eps=1e6))
    assert huge["P"][-1] == pytest.approx(huge["P"][0], rel=1e-4)
    assert abs(small["P"][-1] - small["P"][0]) > 1e-3


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"adam_eps": 0.0}, "adam_eps"),
        ({"q_schedule": {"kind": "linear", "q_start": 1}}, "q_schedule: a 'linear' schedule needs"),
        ({"method": "grpo", "q_schedule": {"kind": "constant", "q": 0}}, "q_schedule needs a method with a q"),
    ],
)
def test_bad_settings_name_the_field(bad, match):
    with pytest.raises(ValueError, match="MiniTrainConfig." + match):
        MiniTrainConfig(**{**CFG, **bad}).validate()

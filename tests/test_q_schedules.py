"""q schedules in the trainer (``method.q_schedule``) and its optimiser choice (``optim.optimizer``): a constant
schedule is the fixed q bit for bit, a step schedule switches q the step after the logged wbar_mean first reaches
its threshold, the schedule's state survives a resume, bad schedules are config errors, and SGD steps by lr times
the clipped gradient."""

import pytest
import torch

torch.set_num_threads(1)

from conftest import EXAMPLES, tiny_cfg

from tsallis_ref import schedules as S
from tsallis_ref import trainer as T
from tsallis_ref.config import ConfigError
from tsallis_ref.models import trainable_state_dict

# one example, q = 1 and a large lr: log wbar rises by more than 1 within 6 steps (tests/test_trainer.py)
FAST = {"optim": {"lr": 3e-2, "prompts_per_step": 1}, "steps": 6}


def _run(tmp_path, name: str, method: dict, **sections):
    torch.manual_seed(0)
    cfg = tiny_cfg("garl", {**FAST, **sections}, output_dir=str(tmp_path / name), method=method)
    res = T.train(cfg, examples=EXAMPLES[:1])
    return res["metrics"], trainable_state_dict(res["model"])


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_constant_schedule_is_the_fixed_q_bitwise(tmp_path):
    fixed, w_fixed = _run(tmp_path, "fixed", {"q": 0.25})
    sched, w_sched = _run(tmp_path, "sched", {"q": 0.75, "q_schedule": {"kind": "constant", "q": 0.25}})
    other, w_other = _run(tmp_path, "other", {"q": 0.75})
    assert [m["q"] for m in sched] == [0.25] * 6 and [m["q"] for m in fixed] == [0.25] * 6
    assert [m["loss"] for m in sched] == [m["loss"] for m in fixed]
    assert _same(w_sched, w_fixed)
    assert not _same(w_other, w_fixed)  # q matters in this run, so the equality above is not vacuous


def test_step_schedule_switches_q_the_step_after_wbar_reaches_the_threshold(tmp_path):
    ref, _ = _run(tmp_path, "q1", {"q": 1.0})
    w = [m["wbar_mean"] for m in ref]
    assert w[3] > max(w[:3])  # the threshold below is first reached at step 4 (index 3)
    thr = w[3]
    h, _ = _run(
        tmp_path, "step", {"q": 0.5, "q_schedule": {"kind": "step", "q_start": 1, "q_end": 0, "threshold": thr}}
    )
    assert [m["q"] for m in h] == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    # until the switch the run is the fixed q = 1 run; after it, it is not
    assert [m["loss"] for m in h[:4]] == [m["loss"] for m in ref[:4]]
    assert h[4]["loss"] != ref[4]["loss"]


def test_linear_and_adaptive_schedules_in_the_trainer(tmp_path):
    h, _ = _run(tmp_path, "lin", {"q_schedule": {"kind": "linear", "q_start": 1, "q_end": 0, "steps": 4}})
    assert [m["q"] for m in h] == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0, 0.0])
    h, _ = _run(tmp_path, "ada", {"q_schedule": {"kind": "adaptive", "p_lo": 1e-30, "p_hi": 0.5}})
    ad = S.adaptive(1e-30, 0.5, 1.0, 0.0)
    assert h[0]["q"] == 1.0  # nothing observed yet: the cold end
    assert [m["q"] for m in h[1:]] == pytest.approx([ad.q_of(0, m["wbar_mean"], False) for m in h[:-1]])
    assert len({round(m["q"], 9) for m in h}) > 2  # q moved with wbar


def test_schedule_state_is_restored_on_resume(tmp_path):
    ref, _ = _run(tmp_path, "q1", {"q": 1.0})
    sched = {"q": 0.5, "q_schedule": {"kind": "step", "q_start": 1, "q_end": 0, "threshold": ref[1]["wbar_mean"]}}
    full, w_full = _run(tmp_path, "full", sched, steps=4)
    assert [m["q"] for m in full][2:] == [0.0, 0.0]  # escaped within the first 2 steps
    _run(tmp_path, "resumed", sched, steps=2)
    cfg = tiny_cfg("garl", {**FAST, "steps": 4}, output_dir=str(tmp_path / "resumed"), method=sched)
    res = T.train(cfg, examples=EXAMPLES[:1], resume=True)
    assert [m["q"] for m in res["metrics"]] == [0.0, 0.0]
    w_res = trainable_state_dict(res["model"])
    assert all(torch.allclose(w_res[k], w_full[k], atol=1e-6) for k in w_full)


@pytest.mark.parametrize(
    "q_schedule, match",
    [
        ({"kind": "cosine"}, "`kind` must be one of"),
        ({"kind": "floored", "floor": 0.1}, "not a q"),
        ({"kind": "step", "q_start": 1}, "needs `q_end`"),
        ({"kind": "step", "q_start": 1, "q_end": 2}, "`q_end`.*must lie in"),
        ({"kind": "linear", "q_start": 1, "q_end": 0, "steps": 0}, "`steps`"),
        ({"kind": "adaptive", "p_lo": 0.5, "p_hi": 0.1}, "p_lo < p_hi"),
        ({"kind": "step", "q_start": 1, "q_end": 0, "qend": 0}, "unknown setting"),
        ({"kind": "constant", "q": "high"}, "must be a number"),
    ],
)
def test_bad_schedules_are_config_errors_naming_the_field(q_schedule, match):
    with pytest.raises(ConfigError, match=r"config field `method\.q_schedule`: .*" + match):
        tiny_cfg("garl", method={"q_schedule": q_schedule})


def test_schedule_needs_a_method_with_a_q():
    with pytest.raises(ConfigError, match=r"`method\.q_schedule`: a q schedule needs a method with a q"):
        tiny_cfg("grpo", method={"q_schedule": {"kind": "constant", "q": 0.5}})
    with pytest.raises(ConfigError, match=r"`optim\.optimizer`"):
        tiny_cfg("garl", optim={"optimizer": "adam"})


def test_sgd_steps_by_lr_times_the_clipped_gradient(tm):
    model, tok = tm
    import copy

    model = copy.deepcopy(model)
    cfg = tiny_cfg("garl", optim={"optimizer": "sgd", "lr": 0.5, "max_grad_norm": 1e-3}, method={"q": 1.0})
    state = T.StepState.create(model, cfg)
    assert isinstance(state.optimizer, torch.optim.SGD)
    before = [p.detach().clone() for p in state.params]
    torch.manual_seed(0)
    batch = T.encode_examples(tok, EXAMPLES[:2], cfg)
    out = T.train_step(model, tok, batch, cfg, state)
    assert out.metrics["grad_norm"] > 1e-3  # the clip is active: the step's norm is lr x 1e-3
    steps = [p.detach() - b for p, b in zip(state.params, before)]
    for d, p in zip(steps, state.params):
        assert torch.allclose(d, -0.5 * p.grad, atol=1e-7)
    norm = torch.sqrt(sum((d.double() ** 2).sum() for d in steps))
    assert float(norm) == pytest.approx(0.5 * 1e-3, rel=1e-4)

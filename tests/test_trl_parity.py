"""Issue 6: on the same batch and samples, the TRL-integrated GARL / PAFT gradients equal our own trainer's.

One tiny model, two copies of its weights. TRL's ``GARLTrainer`` / ``PAFTTrainer`` generate a batch through
TRL's own path (left-padded prompts of different lengths, completions that run past the marker, rows
shuffled and split over gradient-accumulation micro-batches) and accumulate ``compute_loss`` gradients on copy
1. The SAME prompts and completions go to our trainer on copy 2: each completion is turned into a rationale by
our rollout's own budget-forcing step (``rollout.finish_rationale``: cut at EOS, cut after the marker or force
it), the gold answer by ``rollout.encode_answer``, and ``trainer.accumulate_gradients`` (micro-batched
one-pass scoring, the core estimator per prompt, mean over prompts) gives the gradient, with PAFT's resampled
indices injected from TRL's batch. Same q, baseline, normalisation, K.

Conventions aligned by configuration: the answer segment (TRL ``answer_prefix`` / ``answer_eos`` = ours
``rollout.answer_prefix`` / ``rollout.append_eos``) and the marker (TRL ``answer_marker`` = ours
``rollout.end_of_rationale``). Convention fixed in code: the marker tokens count in ``logp_z`` in both (the
TRL integration used to count them in neither; see ``integrations/trl.py``). Gradient scaling needs no
configuration: both are the gradient of the estimator's mean over the prompts of the step (our trainer
divides each prompt's loss by B; the TRL trainers scale each micro-batch's sum by M / (S n), see
``GARLTrainer._compute_loss``), whatever the micro-batch sizes. Positions differ (TRL left-pads the prompts and
passes no position ids; we right-pad), which is exact for Llama's rotary (relative) positions.
"""

from __future__ import annotations

import copy

import pytest
import torch

pytest.importorskip("trl")

from trl_helpers import MARKER, cpu_trainer_args, generation_batch_grads  # noqa: E402

from tsallis_ref.config import TrainConfig  # noqa: E402
from tsallis_ref.rollout import Rollouts, encode_answer, finish_rationale  # noqa: E402
from tsallis_ref.testing import trl_model, trl_tokenizer  # noqa: E402
from tsallis_ref.trainer import accumulate_gradients  # noqa: E402

torch.set_num_threads(1)

# prompts of different lengths, so TRL left-pads them (and we right-pad): positions differ, the maths must not
PROBLEMS = [("1+2=?", "3"), ("13+4=?", "17"), ("5+61=?", "66"), ("2+7=?", "9")]


def _trl_trainer(estimator, tmp_path, *, q, M, ga, bs, max_len, answer_eos, marker, **extra):
    from datasets import Dataset

    tok = trl_tokenizer()
    model = trl_model(tok, dtype=torch.float64, seed=2)
    ours = copy.deepcopy(model)
    args, tr_cls = cpu_trainer_args(
        estimator,
        tmp_path,
        bs=bs,
        M=M,
        ga=ga,
        max_completion_length=max_len,
        q=q,
        answer_marker=marker,
        answer_prefix=" ",
        answer_eos=answer_eos,
        seed=5,
        **extra,
    )
    ds = Dataset.from_list([{"prompt": p, "answer": a} for p, a in PROBLEMS[: bs * ga // M]])
    trainer = tr_cls(model, args=args, train_dataset=ds, processing_class=tok)
    return trainer, ours, tok, {p: a for p, a in PROBLEMS}


def _trl_step(trainer, ga):
    """One generation batch through TRL's own path; accumulate ``compute_loss`` gradients over its micro-batches."""
    micro, model = generation_batch_grads(trainer, ga)
    return {n: p.grad.detach().clone() for n, p in model.named_parameters()}, micro


def _our_inputs(micro, tok, M, marker):
    """TRL's rows regrouped by prompt (slot order), as our trainer's ``Rollouts``; PAFT indices [B, K] or None."""
    groups: dict[tuple, list] = {}
    for inp in micro:
        for i in range(inp["prompt_ids"].shape[0]):
            p = tuple(inp["prompt_ids"][i][inp["prompt_mask"][i].bool()].tolist())
            c = inp["completion_ids"][i][inp["completion_mask"][i].bool()].tolist()
            g = groups.setdefault(p, [None] * M + [None])
            slot = int(inp["slot"][i])
            assert g[slot] is None, "two rows claim the same slot of a group"
            g[slot] = c
            g[M] = inp["paft_indices"][i].tolist() if "paft_indices" in inp else None
    prompts = list(groups)
    marker_ids = tok(marker, add_special_tokens=False).input_ids
    rats, forced, kinds = [], [], {"written": 0, "eos": 0, "budget": 0}
    for p in prompts:
        assert all(c is not None for c in groups[p][:M]), "incomplete group"
        for c in groups[p][:M]:
            z, f = finish_rationale(tok, c, marker, marker_ids, eos_ids=[tok.eos_token_id])
            rats.append(z)
            forced.append(f)
            kinds["budget" if f and c[-1] != tok.eos_token_id else "eos" if f else "written"] += 1
    ro = Rollouts(prompt_ids=[list(p) for p in prompts], M=M, rationale_ids=rats, forced=forced)
    idx = torch.tensor([groups[p][M] for p in prompts]) if groups[prompts[0]][M] is not None else None
    return ro, idx, kinds


def _our_grads(model, tok, ro, answers_by_prompt, *, name, q, baseline="rloo", K=None, append_eos, idx, marker):
    cfg = TrainConfig.from_dict(
        {
            "method": {"name": name, "q": q, "baseline": baseline, "K": K, "normalize": True},
            "rollout": {"M": ro.M, "end_of_rationale": marker, "answer_prefix": " ", "append_eos": append_eos},
            "optim": {"micro_batch_size": 3},
            "data": {"path": "unused.jsonl"},
        }
    )
    answers = []
    for b, p in enumerate(ro.prompt_ids):
        text = tok.decode(p, skip_special_tokens=False)
        gold = next(a for pr, a in answers_by_prompt.items() if pr in text)
        answers += [encode_answer(tok, gold, cfg.rollout)] * ro.M
    model.zero_grad()
    accumulate_gradients(model, cfg, tok.pad_token_id, ro, answers, paft_indices=idx)
    return {n: p.grad.detach().clone() for n, p in model.named_parameters()}


# "\nAnswer:" (8 tokens) is never written by a random model: every marker is forced by the budget. The
# one-character marker ";" with a longer budget is: the batch then mixes rationales that end with a marker the
# model wrote (followed by more text that must be dropped), rationales cut by an EOS before any marker, and
# budget-exhausted ones.
@pytest.mark.parametrize(
    "estimator,q,baseline,answer_eos,marker,max_len",
    [
        ("garl", 0.6, "rloo", False, MARKER, 10),
        ("garl", 1.0, "none", True, MARKER, 10),
        ("paft", 0.3, "rloo", True, MARKER, 10),
        ("garl", 0.75, "rloo", True, ";", 40),
        ("paft", 0.5, "rloo", False, ";", 40),
    ],
)
def test_trl_gradient_equals_our_trainers(tmp_path, estimator, q, baseline, answer_eos, marker, max_len):
    M, ga, bs = 4, 2, 4  # 2 prompts x 4 completions, split into 2 micro-batches of 4 rows
    extra = {"baseline": baseline} if estimator == "garl" else {}
    trainer, ours, tok, gold = _trl_trainer(
        estimator, tmp_path, q=q, M=M, ga=ga, bs=bs, max_len=max_len, answer_eos=answer_eos, marker=marker, **extra
    )
    g_trl, micro = _trl_step(trainer, ga)
    ro, idx, kinds = _our_inputs(micro, tok, M, marker)
    if marker == MARKER:
        assert all(ro.forced)
    else:
        assert min(kinds.values()) >= 1, f"want written, EOS-cut and budget-forced rationales in one batch: {kinds}"
    assert len(ro.prompt_ids) == 2 and len({len(p) for p in ro.prompt_ids}) == 2, "want prompts of two lengths"
    assert (idx is not None) == (estimator == "paft")
    kw = dict(name=estimator, baseline=baseline, append_eos=answer_eos, idx=idx, marker=marker)
    g_ours = _our_grads(ours, tok, ro, gold, q=q, **kw)

    gmax = max(g.abs().max().item() for g in g_ours.values())
    assert gmax > 1e-6, "our gradient is zero: the comparison would be vacuous"
    worst = max((g_trl[n] - g_ours[n]).abs().max().item() for n in g_ours)
    print(f"{estimator} q={q}: max|grad diff| = {worst:.3e}, max|grad| = {gmax:.3e}, {kinds}")
    assert worst < 1e-5 and worst <= 1e-5 * gmax, (worst, gmax)

    # the comparison detects a different q (same samples, same indices)
    g_q = _our_grads(ours, tok, ro, gold, q=q - 0.25, **kw)
    off = max((g_trl[n] - g_q[n]).abs().max().item() for n in g_ours)
    assert off > 1e-3 * gmax and off > 100 * worst, (off, worst, gmax)

"""GARL / PAFT as TRL trainers: the integrated gradient equals a direct reference computation.

The reference teacher-forces each sampled sequence on its own (no padding, a plain HF forward
with logits and log_softmax, on a separate copy of the weights), builds logp_z[B, M] and
logp_y[B, M] itself, calls the core estimator once over the whole generation batch and
backprops. The trainer instead sees the rows shuffled and split into gradient-accumulation
micro-batches, as TRL does; the two gradients must agree.
"""

from __future__ import annotations

import copy

import pytest
import torch

pytest.importorskip("trl")

from trl_helpers import MARKER, cpu_trainer_args, generation_batch_grads  # noqa: E402

from tsallis_ref.estimators import garl_loss, paft_loss  # noqa: E402
from tsallis_ref.integrations.trl import (  # noqa: E402
    GARLConfig,
    GARLTrainer,
    PAFTConfig,
    build_teacher_forced_tail,
    find_subsequence,
)
from tsallis_ref.testing import trl_model, trl_tokenizer  # noqa: E402

torch.set_num_threads(1)


def unique_dataset(n):
    from datasets import Dataset

    rows = [
        {"prompt": f"{a}+{b}=?", "answer": str(a + b)} for a, b in [(1, 2), (3, 4), (5, 1), (2, 7), (8, 0), (6, 6)][:n]
    ]
    return Dataset.from_list(rows)


def reference_logps(ref_model, tok, prompt_text, completion_ids, answer, marker=MARKER, prefix=" "):
    """(logp_z, logp_y) of one sequence, written independently of the trainer."""
    p = tok(prompt_text, add_special_tokens=False)["input_ids"]
    c = [int(t) for t in completion_ids]  # unpadded already (rows_of applies completion_mask)
    m = tok(marker, add_special_tokens=False)["input_ids"]
    # z: the completion cut before the marker if the model wrote it, else without its trailing EOS
    cut = next((i for i in range(len(c) - len(m) + 1) if c[i : i + len(m)] == m), -1)
    z = c[:cut] if cut >= 0 else (c[:-1] if c and c[-1] == tok.eos_token_id else c)
    y = tok(prefix + answer, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p + z + m + y])
    logits = ref_model(input_ids=ids).logits[0, :-1].to(torch.float64)
    lp = torch.log_softmax(logits, -1).gather(-1, ids[0, 1:, None])[:, 0]
    a = len(p) - 1  # position predicting the first rationale token
    logp_z = lp[a : a + len(z) + len(m)].sum()  # the marker belongs to z (sampled or forced)
    logp_y = lp[a + len(z) + len(m) :].sum()
    return logp_z, logp_y


def rows_of(inputs, tok):
    """Per-row (prompt text, completion ids, slot, paft indices or None) of a trainer micro-batch."""
    out = []
    for i in range(inputs["prompt_ids"].shape[0]):
        pm = inputs["prompt_mask"][i].bool()
        prompt = tok.decode(inputs["prompt_ids"][i][pm].tolist(), skip_special_tokens=False)
        comp = inputs["completion_ids"][i][inputs["completion_mask"][i].bool()].tolist()
        idx = inputs["paft_indices"][i].tolist() if "paft_indices" in inputs else None
        out.append((prompt, comp, int(inputs["slot"][i]), idx))
    return out


def reference_grads(ref_model, tok, rows, answers, M, q, estimator, baseline="rloo"):
    """Gradient of the core estimator (reduction='mean' over prompts) on the given rows."""
    groups: dict[str, list] = {}
    for prompt, comp, slot, idx in rows:
        groups.setdefault(prompt, [None] * M)
        assert groups[prompt][slot] is None, "two rows claim the same slot of a group"
        groups[prompt][slot] = (comp, idx)
    LZ, LY, IDX = [], [], []
    for prompt, members in groups.items():
        assert all(mb is not None for mb in members), f"group {prompt!r} incomplete"
        zs, ys = zip(*(reference_logps(ref_model, tok, prompt, comp, answers[prompt]) for comp, _ in members))
        LZ.append(torch.stack(zs))
        LY.append(torch.stack(ys))
        IDX.append(members[0][1])
    LZ, LY = torch.stack(LZ), torch.stack(LY)
    ref_model.zero_grad()
    if estimator == "garl":
        loss = garl_loss(LZ, LY, q, baseline=baseline)
    else:
        loss = paft_loss(LZ, LY, q, indices=torch.tensor(IDX))
    loss.backward()
    return {n: p.grad.detach().clone() for n, p in ref_model.named_parameters()}, LY


def make_trainer(estimator, tmp_path, *, q=0.6, ga=2, bs=4, M=4, n_prompts=4, **extra):
    tok = trl_tokenizer()
    model = trl_model(tok, dtype=torch.float64, seed=1)
    ref = copy.deepcopy(model)
    args, tr_cls = cpu_trainer_args(estimator, tmp_path, bs=bs, M=M, ga=ga, q=q, seed=3, **extra)
    ds = unique_dataset(n_prompts)
    trainer = tr_cls(model, args=args, train_dataset=ds, processing_class=tok)
    answers = {r["prompt"]: r["answer"] for r in ds}
    return trainer, ref, tok, answers


def trainer_grads(trainer, ga):
    """Generate one generation batch through TRL's own path, then accumulate compute_loss grads."""
    micro, model = generation_batch_grads(trainer, ga)
    return {n: p.grad.detach().clone() for n, p in model.named_parameters()}, micro


@pytest.mark.parametrize("estimator,q,baseline", [("garl", 0.6, "rloo"), ("garl", 1.0, "none"), ("paft", 0.3, "rloo")])
def test_trl_gradient_equals_direct_reference(tmp_path, estimator, q, baseline):
    ga, M = 2, 4
    trainer, ref, tok, answers = make_trainer(
        estimator, tmp_path / estimator, q=q, ga=ga, M=M, **({"baseline": baseline} if estimator == "garl" else {})
    )
    g_tr, micro = trainer_grads(trainer, ga)
    rows = [r for inp in micro for r in rows_of(inp, tok)]
    assert len(rows) == 8 and len({r[0] for r in rows}) == 2
    g_ref, LY = reference_grads(ref, tok, rows, answers, M, q, estimator, baseline)
    # the stored group weights equal the reference teacher-forced logp_y
    ly_sorted = sorted(LY.detach().flatten().tolist())
    st_sorted = sorted(
        torch.cat([inp["group_logp_y"][torch.arange(len(inp["slot"])), inp["slot"]] for inp in micro]).tolist()
    )
    assert max(abs(a - b) for a, b in zip(ly_sorted, st_sorted)) < 1e-5  # TRL scores in float32
    gmax = max(g.abs().max().item() for g in g_ref.values())
    assert gmax > 1e-8, "reference gradient is zero: the test would be vacuous"
    worst = max((g_tr[n] - g_ref[n]).abs().max().item() for n in g_ref)
    print(f"max |grad diff| = {worst:.3e}, max |grad| = {gmax:.3e}")
    assert worst < 1e-5 and worst <= 1e-5 * gmax, (worst, gmax)
    # the comparison can fail: a wrong normalisation (e.g. forgetting the accumulation factor) is detected
    wrong = max((g_tr[n] * 2 - g_ref[n]).abs().max().item() for n in g_ref)
    assert wrong > 1e3 * worst


def test_build_teacher_forced_tail_cuts_at_marker_and_strips_eos():
    eos, pad = 1, 0
    marker = [7, 8]
    comp = torch.tensor([[5, 6, 7, 8, 9, 1], [5, 6, 1, 0, 0, 0], [4, 4, 4, 4, 4, 4]])
    mask = (comp != pad).long()
    out = build_teacher_forced_tail(comp, mask, [[3], [3, 3], [2]], marker, [eos], pad)
    assert out["tail_ids"][0, :5].tolist() == [5, 6, 7, 8, 3]
    # z_mask covers the rationale AND the marker (written or forced): log p(z|x) includes the marker tokens
    assert out["z_mask"][0].nonzero().flatten().tolist() == [0, 1, 2, 3]
    assert out["y_mask"][0].nonzero().flatten().tolist() == [4]
    assert out["tail_ids"][1, :6].tolist() == [5, 6, 7, 8, 3, 3] and out["z_mask"][1].sum() == 4
    assert out["z_mask"][2].sum() == 8 and out["y_mask"][2].nonzero().flatten().tolist() == [8]
    assert find_subsequence([1, 2, 3], [2, 3]) == 1 and find_subsequence([1, 2], [3]) == -1


def test_config_rejects_features_without_meaning_for_garl(tmp_path):
    common = dict(
        output_dir=str(tmp_path), report_to=[], use_cpu=True, per_device_train_batch_size=4, num_generations=4
    )
    with pytest.raises(ValueError, match="beta"):
        GARLConfig(beta=0.04, **common)
    with pytest.raises(ValueError, match="num_iterations"):
        GARLConfig(num_iterations=2, **common)
    with pytest.raises(ValueError, match="q must lie"):
        GARLConfig(q=1.5, **common)
    with pytest.raises(ValueError, match="K must be"):
        PAFTConfig(K=0, **common)
    with pytest.raises(ValueError, match="steps_per_generation"):
        GARLConfig(steps_per_generation=2, gradient_accumulation_steps=1, **common)


def test_missing_answer_column_is_a_clear_error(tmp_path):
    from datasets import Dataset

    tok = trl_tokenizer()
    args = GARLConfig(
        output_dir=str(tmp_path),
        report_to=[],
        use_cpu=True,
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=4,
    )
    with pytest.raises(ValueError, match="gold-answer column 'answer'"):
        GARLTrainer(
            trl_model(tok), args=args, train_dataset=Dataset.from_list([{"prompt": "1+1=?"}] * 4), processing_class=tok
        )


def test_trainer_turns_off_cpu_4bit_repacking(tmp_path):
    """A 4-bit layer in a model handed to GARLTrainer: its CPU inference repacking (bitsandbytes on AVX512-BF16
    CPUs, which breaks the training pass after a generation) is off once the trainer is built, whatever the CPU."""
    bnb = pytest.importorskip("bitsandbytes")
    tok = trl_tokenizer()
    model = trl_model(tok, seed=1)
    mlp = model.model.layers[0].mlp
    q4 = bnb.nn.Linear4bit(
        mlp.up_proj.in_features, mlp.up_proj.out_features, bias=False, compute_dtype=torch.float32, quant_type="nf4"
    )
    q4.weight = bnb.nn.Params4bit(mlp.up_proj.weight.data.clone(), requires_grad=False, quant_type="nf4", module=q4)
    mlp.up_proj = q4.to("cpu")
    q4.support_avx512bf16_for_cpu = True  # as bitsandbytes sets it on an AVX512-BF16 CPU
    args, _ = cpu_trainer_args("garl", tmp_path)
    trainer = GARLTrainer(model, args=args, train_dataset=unique_dataset(4), processing_class=tok)
    layers = [m for m in trainer.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert layers and all(m.support_avx512bf16_for_cpu is False for m in layers)


def test_teacher_forced_target_follows_the_answer_format(tmp_path):
    """The adapter's target is :meth:`AnswerFormat.target` of its marker and prefix, tokenised as our trainer's
    ``encode_answer`` tokenises it (the one rule from prompt to reward); a blank marker is refused by name."""
    from tsallis_ref.config import RolloutConfig
    from tsallis_ref.data import AnswerFormat
    from tsallis_ref.rollout import encode_answer

    trainer, _, tok, _ = make_trainer("garl", tmp_path, answer_prefix="\n\n")
    fmt = trainer.args.answer_format
    assert fmt == AnswerFormat(MARKER, "\n\n")
    rcfg = RolloutConfig(end_of_rationale=MARKER, answer_prefix="\n\n", append_eos=False)
    assert trainer._answer_ids(["42", "Jr."]) == [encode_answer(tok, a, rcfg) for a in ("42", "Jr.")]
    common = dict(
        output_dir=str(tmp_path), report_to=[], use_cpu=True, per_device_train_batch_size=4, num_generations=4
    )
    with pytest.raises(ValueError, match="answer_marker must be a non-empty"):
        GARLConfig(answer_marker="\n", **common)
    with pytest.raises(ValueError, match="answer_prefix must be a string"):
        GARLConfig(answer_prefix=None, **common)

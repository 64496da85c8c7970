"""The trainer: its gradients equal the core estimators' on the same samples, budget forcing, bad configs,
the LoRA + 4-bit path, and every method running end to end on a tiny model."""

import dataclasses
import math

import pytest
import torch

torch.set_num_threads(1)

from conftest import DATA, EXAMPLES, tiny_cfg

from tsallis_ref import estimators as E
from tsallis_ref import trainer as T
from tsallis_ref.config import ConfigError, RolloutConfig, TrainConfig
from tsallis_ref.models import tiny_tokenizer
from tsallis_ref.rollout import (
    StopOnTokenSuffix,
    cut_at_marker,
    encode_answer,
    finish_rationale,
    generate,
    sample_answers,
    sample_rationales,
)
from tsallis_ref.scoring import score_sequences


# ------------------------------------------------------------------------------------------ budget forcing
def test_budget_forcing_inserts_the_marker(tm):
    model, tok = tm
    torch.manual_seed(0)
    rc = RolloutConfig(M=5, rationale_budget=7, answer_budget=3, end_of_rationale="\nAnswer:")
    x = tok("Q: 1+1=", add_special_tokens=False).input_ids
    ro = sample_rationales(model, tok, [x, x], rc)
    marker_ids = tok("\nAnswer:", add_special_tokens=False).input_ids
    assert len(ro.rationale_ids) == 10
    for z, forced in zip(ro.rationale_ids, ro.forced):
        assert tok.decode(z).endswith("\nAnswer:") or not forced
        assert "\nAnswer:" in tok.decode(z)
        if forced:
            assert z[-len(marker_ids) :] == marker_ids and len(z) <= 7 + len(marker_ids)
    assert any(ro.forced)  # a random model does not write "\nAnswer:" by itself within 7 tokens


def test_min_rationale_tokens_keeps_a_model_that_ends_at_once_writing(tm):
    """A model that emits EOS first (its EOS logit raised by 50) writes empty rationales, all identical; with
    rollout.min_rationale_tokens = 4 EOS is suppressed for 4 tokens, so every rationale has >= 4 sampled tokens."""
    import copy

    model, tok = tm
    eager = copy.deepcopy(model)
    orig = eager.forward

    def forward(*a, **k):
        out = orig(*a, **k)
        out.logits[..., tok.eos_token_id] += 50.0
        return out

    eager.forward = forward
    x = tok("Q: 1+1=", add_special_tokens=False).input_ids
    marker_ids = tok("\nAnswer:", add_special_tokens=False).input_ids
    lens = {}
    for n in (0, 4):
        rc = RolloutConfig(
            M=4, rationale_budget=8, answer_budget=3, end_of_rationale="\nAnswer:", min_rationale_tokens=n
        )
        torch.manual_seed(0)
        ro = sample_rationales(eager, tok, [x], rc)
        lens[n] = [len(z) - len(marker_ids) for z in ro.rationale_ids]
    assert lens[0] == [0, 0, 0, 0]
    assert min(lens[4]) >= 4
    with pytest.raises(ConfigError, match="min_rationale_tokens"):
        tiny_cfg("garl", rollout={"min_rationale_tokens": 13}).validate()


def test_marker_cut_and_eos_before_marker():
    tok = tiny_tokenizer()
    ids = tok("abc</think>def", add_special_tokens=False).input_ids
    assert tok.decode(cut_at_marker(tok, ids, "</think>")) == "abc</think>"
    ids = tok("ab\nAnswer: 4", add_special_tokens=False).input_ids
    assert tok.decode(cut_at_marker(tok, ids, "\nAnswer:")) == "ab\nAnswer:"
    assert cut_at_marker(tok, tok("abc", add_special_tokens=False).input_ids, "</think>") is None


@pytest.mark.parametrize("marker", [";", "</think>", "\nAnswer:"])
def test_token_suffix_stop_gives_the_same_rationales_as_stop_strings(tm, marker):
    """The cheap marker stop (token-id suffix) against transformers' stop_strings, same seed: identical
    rationales and forced flags (markers written by the model, EOS before the marker, budget exhausted)."""
    model, tok = tm
    rc = RolloutConfig(M=8, rationale_budget=40, answer_budget=3, end_of_rationale=marker)
    xs = [tok("Q: 1+1=", add_special_tokens=False).input_ids, tok("Q: 12+3=", add_special_tokens=False).input_ids]
    torch.manual_seed(3)
    ro = sample_rationales(model, tok, xs, rc)
    marker_ids = tok(marker, add_special_tokens=False).input_ids
    torch.manual_seed(3)
    old = generate(
        model, tok, [x for x in xs for _ in range(8)], max_new_tokens=40, sampling=rc.sampling, stop_strings=[marker]
    )
    old = [finish_rationale(tok, ids, marker, marker_ids) for ids, _ in old]
    assert ro.rationale_ids == [z for z, _ in old] and ro.forced == [f for _, f in old]
    if len(marker_ids) == 1:  # a one-token marker is written by the random model within 40 tokens
        assert not all(ro.forced)


def test_stop_on_token_suffix_matches_generated_tokens_only():
    crit = StopOnTokenSuffix([[7, 8]], prompt_len=3)
    ids = torch.tensor([[1, 2, 7, 8], [1, 7, 8, 8], [0, 0, 0, 0]])
    assert crit(ids[:, :4]).tolist() == [False, False, False]  # one new token: [7, 8] would need the prompt's 7
    ids = torch.tensor([[1, 2, 7, 8, 7, 8], [1, 7, 8, 8, 5, 6], [0, 0, 0, 7, 7, 8]])
    assert crit(ids).tolist() == [True, False, True]


def test_answers_sampled_within_budget_for_grpo(tm):
    model, tok = tm
    torch.manual_seed(1)
    rc = RolloutConfig(M=3, rationale_budget=5, answer_budget=4, answer_prefix=" ")
    x = tok("Q:", add_special_tokens=False).input_ids
    ro = sample_answers(model, tok, sample_rationales(model, tok, [x], rc), rc)
    prefix = tok(" ", add_special_tokens=False).input_ids
    for a in ro.answer_ids:
        assert a[: len(prefix)] == prefix and 1 <= len(a) - len(prefix) <= 5
    assert len(ro.answer_text) == 3


# ------------------------------------------------------------------------------------------ gradients
def _reference_grads(model, tok, cfg, ro, answers, rewards, indices):
    """Each sequence scored alone (full logits, no micro-batching), stacked [B, M], core loss, backward."""
    model.zero_grad()
    B, M = len(ro.prompt_ids), ro.M
    lz, ly, toks, masks = [], [], [], []
    for i, z in enumerate(ro.rationale_ids):
        sc = score_sequences(
            model,
            [ro.prompt_ids[i // M]],
            [z],
            [answers[i]],
            pad_id=tok.pad_token_id,
            micro_batch_size=1,
            lm_head_checkpoint=False,
            return_tokens=True,
        )
        lz.append(sc.logp_z[0]), ly.append(sc.logp_y[0]), toks.append(sc.logp_tokens[0]), masks.append(sc.mask[0])
    lz, ly = torch.stack(lz).view(B, M), torch.stack(ly).view(B, M)
    m = cfg.method
    if m.name == "garl":
        loss = E.garl_loss(lz, ly, m.q, baseline=m.baseline)
    elif m.name == "paft":
        loss = E.paft_loss(lz, ly, m.q, indices=indices)
    elif m.name == "rloo":
        loss = E.rloo_loss(lz + ly, rewards)
    elif m.name == "maxrl":
        loss = E.maxrl_loss(lz + ly, rewards)
    else:
        Tc = max(t.shape[0] for t in toks)
        lt = torch.stack([torch.nn.functional.pad(t, (0, Tc - t.shape[0])) for t in toks]).view(B, M, Tc)
        mk = torch.stack([torch.nn.functional.pad(k, (0, Tc - k.shape[0])) for k in masks]).view(B, M, Tc)
        loss = E.grpo_loss(lt, mk, rewards)
    loss.backward()
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize(
    "name,extra",
    [
        ("garl", {}),
        ("garl", {"baseline": "none", "q": 1.0}),
        ("paft", {}),
        ("paft", {"K": 3, "q": 0.25}),
        ("rloo", {}),
        ("grpo", {}),
        ("maxrl", {}),
    ],
)
def test_trainer_gradient_equals_core_estimator(tm, name, extra):
    model, tok = tm
    cfg = tiny_cfg(name, method=extra)
    torch.manual_seed(5)
    xs = [tok(e["prompt"], add_special_tokens=False).input_ids for e in EXAMPLES[:2]]
    ro = sample_rationales(model, tok, xs, cfg.rollout)
    rewards = None
    if name in ("grpo", "rloo", "maxrl"):
        ro = sample_answers(model, tok, ro, cfg.rollout)
        answers = ro.answer_ids
        rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0]])  # fixed, non-degenerate
    else:
        answers = [encode_answer(tok, EXAMPLES[i // 4]["answer"], cfg.rollout) for i in range(8)]
    model.zero_grad()
    gen = torch.Generator().manual_seed(11)
    out = T.accumulate_gradients(model, cfg, tok.pad_token_id, ro, answers, rewards, gen)
    got = [p.grad.clone() for p in model.parameters()]
    assert any(float(g.abs().max()) > 0 for g in got)
    ref = _reference_grads(model, tok, cfg, ro, answers, rewards, out.indices)
    model.zero_grad()
    for g, r in zip(got, ref):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-7)
    if name == "paft":
        assert out.indices.shape == (2, cfg.method.K or 4)


GRPO_REWARDS = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0]])


@pytest.mark.parametrize("loss_agg", ["seq-mean-token-mean", "token-mean", "seq-mean-token-sum-norm"])
@pytest.mark.parametrize("scale_rewards", ["group", "batch", "none"])
def test_grpo_in_the_trainer_is_grpo_loss_on_the_whole_batch(tm, scale_rewards, loss_agg):
    """The trainer scores one prompt at a time; its accumulated gradient is nevertheless autograd of
    ``grpo_loss`` on the whole batch (batch reward std, batch token count, Dr. GRPO's constant
    max_completion_length), for every micro-batch size and with two-pass scoring."""
    model, tok = tm
    cfg = tiny_cfg("grpo", method={"scale_rewards": scale_rewards, "loss_agg": loss_agg})
    torch.manual_seed(3)
    xs = [tok(e["prompt"], add_special_tokens=False).input_ids for e in EXAMPLES[:2]]
    ro = sample_answers(model, tok, sample_rationales(model, tok, xs, cfg.rollout), cfg.rollout)
    assert len({len(z) + len(a) for z, a in zip(ro.rationale_ids, ro.answer_ids)}) > 1  # lengths differ
    # the reference: every completion's tokens [B, M, T], one call of grpo_loss on the whole batch
    model.zero_grad()
    toks, masks = [], []
    for i in range(8):
        sc = score_sequences(
            model,
            [xs[i // 4]],
            ro.rationale_ids[i : i + 1],
            ro.answer_ids[i : i + 1],
            pad_id=tok.pad_token_id,
            micro_batch_size=1,
            return_tokens=True,
        )
        toks.append(sc.logp_tokens[0]), masks.append(sc.mask[0])
    Tc = max(t.shape[0] for t in toks)
    lt = torch.stack([torch.nn.functional.pad(t, (0, Tc - t.shape[0])) for t in toks]).view(2, 4, Tc)
    mk = torch.stack([torch.nn.functional.pad(k, (0, Tc - k.shape[0])) for k in masks]).view(2, 4, Tc)
    E.grpo_loss(
        lt,
        mk,
        GRPO_REWARDS,
        scale_rewards=scale_rewards,
        loss_agg=loss_agg,
        max_completion_length=ro.max_completion_length,
    ).backward()
    ref = [p.grad.clone() for p in model.parameters()]
    marker = tok(cfg.rollout.end_of_rationale, add_special_tokens=False).input_ids
    assert ro.max_completion_length == cfg.rollout.rationale_budget + len(marker) + cfg.rollout.answer_budget + 1
    for mbs, two_pass in [(1, False), (3, False), (4, False), (3, True)]:
        c = tiny_cfg(
            "grpo",
            method={"scale_rewards": scale_rewards, "loss_agg": loss_agg},
            optim={"micro_batch_size": mbs, "two_pass_scoring": two_pass},
        )
        model.zero_grad()
        T.accumulate_gradients(model, c, tok.pad_token_id, ro, ro.answer_ids, GRPO_REWARDS)
        for g, r in zip([p.grad.clone() for p in model.parameters()], ref):
            torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-7, msg=f"micro_batch_size={mbs} two_pass={two_pass}")
    model.zero_grad()


def test_grpo_loss_slices_with_the_batch_totals_sum_to_the_batch_loss():
    g = torch.Generator().manual_seed(0)
    lt = -torch.rand(3, 4, 6, generator=g, dtype=torch.float64)
    mk = torch.rand(3, 4, 6, generator=g) > 0.3
    r = (torch.rand(3, 4, generator=g) > 0.5).double()
    for sc in ("group", "batch", "none"):
        for agg in ("seq-mean-token-mean", "token-mean", "seq-mean-token-sum-norm"):
            whole = E.grpo_loss(lt, mk, r, scale_rewards=sc, loss_agg=agg, max_completion_length=9)
            ctx = E.BatchTotals(
                n_prompts=3, n_tokens=float(mk.sum()), reward_std=float(r.float().std()), max_completion_length=9
            )
            parts = sum(
                E.ESTIMATORS["grpo"](
                    E.EstimatorInputs(
                        lt[b : b + 1, :, 0],
                        lt[b : b + 1, :, 0],
                        rewards=r[b : b + 1],
                        logp_tokens=lt[b : b + 1],
                        mask=mk[b : b + 1],
                    ),
                    {"scale_rewards": sc, "loss_agg": agg},
                    ctx,
                ).loss
                for b in range(3)
            )
            torch.testing.assert_close(parts, whole)
    with pytest.raises(ValueError, match="max_completion_length"):
        E.grpo_loss(lt, mk.fill_(True), r, loss_agg="seq-mean-token-sum-norm", max_completion_length=5)


# ------------------------------------------------------------------------------------------ configs
@pytest.mark.parametrize(
    "patch,field",
    [
        ({"method": {"q": 1.5}}, "method.q"),
        ({"method": {"q": -0.1}}, "method.q"),
        ({"method": {"name": "ppo"}}, "method.name"),
        ({"method": {"name": "rloo"}, "rollout": {"M": 1}}, "rollout.M"),
        ({"method": {"name": "grpo"}, "rollout": {"M": 1}}, "rollout.M"),
        ({"method": {"name": "garl", "baseline": "rloo"}, "rollout": {"M": 1}}, "rollout.M"),
        ({"method": {"name": "paft", "K": 0}}, "method.K"),
        ({"rollout": {"rationale_budget": 0}}, "rollout.rationale_budget"),
        ({"rollout": {"answer_budget": -3}}, "rollout.answer_budget"),
        ({"rollout": {"sampling": {"temperature": 0}}}, "rollout.sampling.temperature"),
        ({"optim": {"micro_batch_size": 0}}, "optim.micro_batch_size"),
        ({"rollout": {"Mm": 3}}, "rollout.Mm"),
    ],
)
def test_bad_config_names_the_field(patch, field):
    d = {"data": {"path": "x.jsonl"}}
    for k, v in patch.items():
        d.setdefault(k, {}).update(v)
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        TrainConfig.from_dict(d)


@pytest.mark.parametrize("name,extra", [("garl", {"baseline": "none"}), ("paft", {})])
def test_garl_without_baseline_accepts_M1_and_paft_default_K(tm, name, extra):
    """One rationale per prompt (M = 1) is a valid config for GARL without a baseline and for PAFT with K left
    empty; the trainer then resolves PAFT's K to M and both gradients equal the core estimator's."""
    model, tok = tm
    raw = {"method": {"name": name, **extra}, "rollout": {"M": 1}, "data": {"path": "x"}}
    assert TrainConfig.from_dict(raw).method.K is None
    cfg = tiny_cfg(name, method=extra, rollout={"M": 1})
    torch.manual_seed(5)
    xs = [tok(e["prompt"], add_special_tokens=False).input_ids for e in EXAMPLES[:2]]
    ro = sample_rationales(model, tok, xs, cfg.rollout)
    answers = [encode_answer(tok, EXAMPLES[i]["answer"], cfg.rollout) for i in range(2)]
    model.zero_grad()
    out = T.accumulate_gradients(model, cfg, tok.pad_token_id, ro, answers, None, torch.Generator().manual_seed(11))
    got = [p.grad.clone() for p in model.parameters()]
    assert any(float(g.abs().max()) > 0 for g in got)
    if name == "paft":
        assert out.indices.shape == (2, 1) and out.indices.eq(0).all()  # K = M = 1: the one rationale
    ref = _reference_grads(model, tok, cfg, ro, answers, None, out.indices)
    model.zero_grad()
    for g, r in zip(got, ref):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-7)


def test_bad_data_fails_before_any_compute(monkeypatch, tmp_path):
    def boom(*a, **k):
        raise AssertionError("the model was loaded before the data was checked")

    monkeypatch.setattr(T, "load_model_and_tokenizer", boom)
    cfg = tiny_cfg("garl", output_dir=str(tmp_path))
    bad = EXAMPLES[:2] + [{"id": "no-gold-7", "prompt": "Q: ?", "answer": ""}]
    with pytest.raises(ConfigError, match="no-gold-7"):
        T.train(cfg, examples=bad)
    with pytest.raises(ConfigError, match="missing-1"):
        T.train(cfg, examples=[{"id": "missing-1", "prompt": "Q"}])


def test_presets_load():
    import glob
    import os

    files = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "configs", "*.yaml")))
    assert len(files) >= 4
    for f in files:
        cfg = TrainConfig.from_yaml(f)
        if cfg.model.name_or_path.startswith("Qwen/"):
            assert cfg.rollout.M == 32 and cfg.method.K in (None, 32)


def test_normalize_answer_and_exact_match():
    assert T.exact_match("The Eiffel Tower.", "eiffel tower") == 1.0
    assert T.exact_match("Paris", "London", aliases=["paris"]) == 1.0
    assert T.exact_match("42", "4.2") == 0.0 and T.exact_match("4.2", "4.2.") == 1.0


# ------------------------------------------------------------------------------------------ end to end
@pytest.mark.parametrize("name", ["garl", "paft", "grpo", "rloo", "maxrl"])
def test_every_method_trains_and_logs(name, tmp_path):
    torch.manual_seed(0)
    cfg = tiny_cfg(name, output_dir=str(tmp_path))
    res = T.train(cfg, examples=EXAMPLES)
    h = res["metrics"]
    assert len(h) == 2 and all(math.isfinite(r["loss"]) and math.isfinite(r["grad_norm"]) for r in h)
    keys = {"loss", "grad_norm", "tokens_per_s", "peak_mem_mb", "forward_passes", "forced_frac"}
    keys |= (
        {"wbar_mean", "log_wbar_min", "amp_max", "ess_frac"}
        if name in ("garl", "paft")
        else {"reward_mean", "zero_var_frac"}
    )
    keys |= {"max_adv"} if name == "garl" else set()
    keys |= {"paft_unique_frac"} if name == "paft" else set()
    assert keys <= set(h[0])
    # one teacher-forced forward call per micro-batch: 2 prompts x ceil(4 / 3)
    assert h[0]["forward_passes"] == 4 and h[0]["scored_sequences"] == 8
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == 2


def test_garl_raises_wbar_on_a_repeated_prompt(tmp_path):
    """A few GARL steps on one example must raise its estimated P (a behavioural check of the sign)."""
    torch.manual_seed(0)
    cfg = tiny_cfg(
        "garl", output_dir=str(tmp_path), steps=6, optim={"lr": 3e-2, "prompts_per_step": 1}, method={"q": 1.0}
    )
    h = T.train(cfg, examples=EXAMPLES[:1])["metrics"]
    assert h[-1]["log_wbar_mean"] > h[0]["log_wbar_mean"] + 1.0


def test_lora_4bit_path_runs_on_cpu(tmp_path):
    import bitsandbytes as bnb

    torch.manual_seed(0)
    cfg = tiny_cfg(
        "garl",
        output_dir=str(tmp_path),
        steps=2,
        model={"load_in_4bit": True, "lora": {"enabled": True, "r": 4, "alpha": 8}},
    )
    res = T.train(cfg, examples=EXAMPLES)
    model = res["model"]
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert all(math.isfinite(r["loss"]) for r in res["metrics"])
    # the adapter moved away from its zero-initialised B matrices
    assert any(float(p.abs().max()) > 0 for n, p in model.named_parameters() if "lora_B" in n)


def test_benchmark_file_through_the_data_module():
    """With tsallis_ref.data present and the shared samples beside the repo, a benchmark file becomes
    trainer examples via the data module's cold / warm prompt builders."""
    root = DATA
    if root is None or not (root / "hotpotqa" / "train_100.json").exists():
        pytest.skip("shared benchmark samples not found")
    for regime in ("cold", "warm"):
        cfg = TrainConfig.from_dict(
            {"data": {"path": str(root / "hotpotqa" / "train_100.json"), "regime": regime, "limit": 3}}
        )
        ex = T.load_examples(cfg)
        assert len(ex) == 3 and all(e["answer"] and e["prompt"] for e in ex)
    cfg = TrainConfig.from_dict(
        {"data": {"dataset": "musique", "split": "train", "data_dir": str(root), "limit": 2, "context_budget": 20}}
    )
    ex = T.load_examples(cfg)
    assert len(ex) == 2 and all(e["answer"] for e in ex)
    full = T.load_examples(
        TrainConfig.from_dict({"data": {"dataset": "musique", "split": "train", "data_dir": str(root), "limit": 2}})
    )
    assert all(len(a["prompt"]) < len(b["prompt"]) for a, b in zip(ex, full))  # context_budget cut the context
    with pytest.raises(ConfigError, match="data.split"):
        T.load_examples(
            TrainConfig.from_dict({"data": {"dataset": "musique", "split": "ans_train", "data_dir": str(root)}})
        )
    with pytest.raises(ConfigError, match="data.context_budget"):
        TrainConfig.from_dict({"data": {"dataset": "musique", "context_budget": 0}}).validate()


def test_trainer_jsonl_that_is_not_utf8_is_named_with_the_fix(tmp_path):
    """A ``data.path`` JSONL of trainer examples in latin-1 is refused as the data loaders refuse it: a
    ConfigError naming the field, the file and the re-encoding, not a bare UnicodeDecodeError."""
    f = tmp_path / "ex.jsonl"
    f.write_bytes('{"id": "a", "prompt": "caf\u00e9?", "answer": "1"}\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=r"data\.path.*ex\.jsonl.*not UTF-8.*iconv"):
        T.load_examples(TrainConfig.from_dict({"data": {"path": str(f)}}))
    f.write_text('{"id": "a", "prompt": "p", "answer": "1"}\n{"id": "b", "prompt": \n')
    with pytest.raises(ConfigError, match=r"data\.path.*ex\.jsonl.*invalid JSON on line 2"):
        T.load_examples(TrainConfig.from_dict({"data": {"path": str(f)}}))
    f.write_text('{"id": "a", "prompt": "caf\u00e9?", "answer": "1"}\n\n{"id": "b", "prompt": "p", "answer": "2"}\n')
    ex = T.load_examples(TrainConfig.from_dict({"data": {"path": str(f)}}))
    assert [e["id"] for e in ex] == ["a", "b"] and ex[0]["prompt"] == "caf\u00e9?"


# ------------------------------------------------------------------------------------------ arch: models
def test_qwen3_architecture_has_the_published_size():
    """arch:qwen3-0.6b is Qwen3-0.6B's shape: 0.60B parameters, 0.44B without the (tied) embedding, as the
    model card says. Built on the meta device: no memory, no weights."""
    import transformers

    from tsallis_ref.models import ARCHITECTURES

    conf = getattr(transformers, ARCHITECTURES["qwen3-0.6b"][0])(**ARCHITECTURES["qwen3-0.6b"][1])
    with torch.device("meta"):
        m = transformers.AutoModelForCausalLM.from_config(conf)
    n = sum(p.numel() for p in m.parameters())
    assert type(m).__name__ == "Qwen3ForCausalLM"
    assert abs(n / 1e9 - 0.596) < 0.005 and abs((n - m.get_input_embeddings().weight.numel()) / 1e9 - 0.440) < 0.005


def test_arch_model_trains_one_step_and_rejects_unknown_names(tmp_path):
    cfg = tiny_cfg(
        "garl",
        output_dir=str(tmp_path),
        model={
            "name_or_path": "arch:qwen3-0.6b",
            "tiny": {},
            "arch_overrides": {
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "num_key_value_heads": 1,
                "head_dim": 16,
                "vocab_size": 256,
            },
        },
    )
    from tsallis_ref.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(cfg.model, "cpu")
    assert model.config.model_type == "qwen3" and model.config.vocab_size == 256 >= len(tok)
    out = T.train(cfg, examples=[{"id": "a", "prompt": "Q: 1+1=", "answer": "2"}])
    assert len(out["metrics"]) == 2 and all(math.isfinite(m["loss"]) for m in out["metrics"])
    with pytest.raises(ConfigError, match="arch:nope"):
        load_model_and_tokenizer(dataclasses.replace(cfg.model, name_or_path="arch:nope"), "cpu")


# ------------------------------------------------------------------------------------------ one budget-forcing rule
def test_one_budget_forcing_rule_for_training_evaluation_and_the_trl_adapter(tm):
    """The marker written character by character (not as its own token) is found by the same rule,
    rollout.finish_rationale, in training, in the TRL adapter's teacher-forced tail, and without a tokenizer
    only as the marker's token ids."""
    pytest.importorskip("trl")
    from tsallis_ref.integrations.trl import build_teacher_forced_tail

    model, tok = tm
    chars = sum((tok(c, add_special_tokens=False).input_ids for c in "</think>"), [])
    marker_ids = tok("</think>", add_special_tokens=False).input_ids
    assert chars != marker_ids
    a, b = tok("ab", add_special_tokens=False).input_ids, tok("42", add_special_tokens=False).input_ids
    ids = a + chars + b  # rationale "ab", marker as characters, the model's answer
    z, forced = finish_rationale(tok, ids, "</think>", marker_ids, [tok.eos_token_id])
    assert z == a + chars and not forced  # cut just after the marker, the answer dropped
    comp = torch.tensor([ids])
    tail = build_teacher_forced_tail(
        comp,
        torch.ones_like(comp),
        [[7]],
        marker_ids,
        [tok.eos_token_id],
        tok.pad_token_id,
        tokenizer=tok,
        marker="</think>",
    )
    assert tail["tail_ids"][0].tolist() == z + [7] and int(tail["z_mask"][0].sum()) == len(z)
    # without a tokenizer the marker is matched as its token ids only: not found here, so it is forced
    assert finish_rationale(None, ids, "</think>", marker_ids, [tok.eos_token_id]) == (ids + marker_ids, True)


def test_evaluation_forces_the_marker_after_an_early_eos_as_training_does(tm):
    """A model that ends its turn at once (EOS logit + 50): training forces the marker and (GRPO) samples an
    answer after it; the evaluation harness follows the same rule (it used to keep the empty text)."""
    import copy

    from tsallis_ref.evaluation import generate_samples

    model, tok = tm
    eager = copy.deepcopy(model)
    bias = torch.zeros(eager.config.vocab_size)
    bias[tok.eos_token_id] = 50.0
    eager.get_output_embeddings().register_forward_hook(lambda m, i, o: o + bias)  # a hook on this copy only
    torch.manual_seed(0)
    gens = generate_samples(
        eager,
        tok,
        ["Q: 1+1="],
        k=3,
        batch_size=3,
        max_new_tokens=3,
        think_budget=5,
        end_marker="</think>",
        forced_suffix="</think>",
        use_chat_template=False,
        progress=False,
    )
    assert gens == [["</think>"] * 3]
    rc = RolloutConfig(M=3, rationale_budget=5, answer_budget=3, end_of_rationale="</think>")
    ro = sample_rationales(eager, tok, [tok("Q: 1+1=", add_special_tokens=False).input_ids], rc)
    assert all(ro.forced) and all(tok.decode(z) == "</think>" for z in ro.rationale_ids)

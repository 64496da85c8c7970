"""Shared-prefix scoring and generation (tsallis_ref.shared_prefix): each prompt encoded once, its KV cache reused
by the M continuations. Values and gradients equal the unshared passes (every estimator, LoRA / full fine-tuning,
4-bit, micro-batches, prompts of different lengths); the forwards stay countable; the fallbacks (gradient
checkpointing, dropout) are taken; generation samples the same tokens for a fixed seed."""

import math
from types import SimpleNamespace

import pytest
import torch

torch.set_num_threads(1)

from conftest import tiny_cfg

from tsallis_ref import estimators as E
from tsallis_ref import trainer as T
from tsallis_ref.models import load_model_and_tokenizer, tiny_model, tiny_tokenizer
from tsallis_ref.rollout import Rollouts, generate
from tsallis_ref.scoring import score_sequences
from tsallis_ref.shared_prefix import prefill_shared_cache, score, shared_scoring_supported


def _enc(tok, s):
    return tok(s, add_special_tokens=False).input_ids


def _batch(tok):
    """Three prompts of different lengths, interleaved, with rationales / answers of different lengths (one
    empty rationale, one one-token completion)."""
    P = [_enc(tok, "Q: what is 12 + 30? Think."), _enc(tok, "x y"), _enc(tok, "Q: 7*6?")]
    rows = [0, 1, 0, 2, 1, 0, 2, 0]
    rats = [
        "two and two</think>",
        "a</think>",
        "</think>",
        "seven sixes</think>",
        "",
        "hm, long thought</think>",
        "b</think>",
        "c</think>",
    ]
    ans = ["42", "q", "42", "42", "", "42", "4", "2"]
    prompts = [P[r] for r in rows]
    z = [_enc(tok, s) for s in rats]
    a = [_enc(tok, s) + ([tok.eos_token_id] if s else []) for s in ans]
    z[4], a[4] = [], [7]  # a one-token completion
    return prompts, z, a


def _score_and_grad(model, prompts, z, a, tok, shared, mb):
    model.zero_grad()
    sc = score(
        model, prompts, z, a, pad_id=tok.pad_token_id, micro_batch_size=mb, return_tokens=True, shared_prefix=shared
    )
    tokw = torch.linspace(-1.0, 1.0, sc.logp_tokens.shape[1])
    (0.3 * sc.logp_z.sum() - 1.7 * sc.logp_y.sum() + 0.05 * (sc.logp_tokens * sc.mask * tokw).sum()).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return sc, grads


def _assert_same(sa, ga, sb, gb):
    torch.testing.assert_close(sb.logp_z, sa.logp_z, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(sb.logp_y, sa.logp_y, rtol=1e-5, atol=1e-5)
    assert torch.equal(sb.mask, sa.mask)
    torch.testing.assert_close(sb.logp_tokens, sa.logp_tokens, rtol=1e-5, atol=1e-5)
    assert ga and set(ga) == set(gb)
    assert any(float(g.abs().max()) > 0 for g in ga.values())
    for n in ga:
        torch.testing.assert_close(gb[n], ga[n], rtol=1e-4, atol=1e-6, msg=n)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("mb", [1, 3, 8])
def test_shared_scoring_equals_unshared_in_value_and_gradient(attn, mb):
    tok = tiny_tokenizer()
    model = tiny_model(tok, seed=3, attn_implementation=attn)
    assert model.config._attn_implementation == attn
    prompts, z, a = _batch(tok)
    sa, ga = _score_and_grad(model, prompts, z, a, tok, False, mb)
    sb, gb = _score_and_grad(model, prompts, z, a, tok, True, mb)
    # the shared path ran: ONE prompt forward for the three distinct prompts, one continuation forward per
    # micro-batch, one scored sequence per rationale
    assert (sb.prompt_forwards, sb.prompt_sequences) == (1, 3)
    distinct = {tuple(p) for p in prompts}
    assert sb.prompt_tokens == sum(len(p) for p in distinct)
    assert sb.forward_calls == math.ceil(8 / mb) and sb.n_sequences == 8
    assert (sa.prompt_forwards, sa.prompt_sequences, sa.prompt_tokens) == (0, 0, 0)  # unshared: no prompt pass
    # tokens processed: each distinct prompt once + the completions (unshared: every prompt M times)
    assert sb.n_tokens == sum(len(p) for p in distinct) + sum(len(x) + len(y) for x, y in zip(z, a))
    assert sa.n_tokens == sum(len(p) + len(x) + len(y) for p, x, y in zip(prompts, z, a))
    _assert_same(sa, ga, sb, gb)


def test_shared_scoring_values_match_the_per_token_reference():
    from tsallis_ref.scoring import naive_span_logprobs

    tok = tiny_tokenizer()
    model = tiny_model(tok, seed=5)
    prompts, z, a = _batch(tok)
    with torch.no_grad():
        sc = score(model, prompts, z, a, pad_id=tok.pad_token_id, micro_batch_size=3)
    assert sc.prompt_forwards == 1
    for i in range(len(prompts)):
        lz, ly = naive_span_logprobs(model, prompts[i], z[i], a[i])
        assert math.isclose(float(sc.logp_z[i]), lz, rel_tol=1e-5, abs_tol=1e-4)
        assert math.isclose(float(sc.logp_y[i]), ly, rel_tol=1e-5, abs_tol=1e-4)


# ------------------------------------------------------------------------------- every estimator, via the trainer
#: this file's tiny run (conftest.TINY_RUN): one step on the CPU, rationales of at most 10 tokens
SHARED_RUN = {"rollout": {"rationale_budget": 10}, "steps": 1, "device": "cpu"}


def _cfg(name, **kw):
    return tiny_cfg(name, SHARED_RUN, **kw)


def _rollouts(tok):
    xs = [_enc(tok, "Q: 12+30= think first."), _enc(tok, "Q: 6*7=")]
    rats = [
        _enc(tok, s)
        for s in [
            "ab</think>",
            "a longer one</think>",
            "</think>",
            "xyz</think>",
            "six sevens</think>",
            "</think>",
            "p</think>",
            "forty-two</think>",
        ]
    ]
    ans = [_enc(tok, s) + [tok.eos_token_id] for s in [" 42", " 4", "", " 42", " 42", " 0", " 42", "x"]]
    return Rollouts(prompt_ids=xs, M=4, rationale_ids=rats, forced=[False] * 8, answer_ids=ans), ans


def _unshared_reference(model, cfg, tok, ro, answers, rewards, paft_indices):
    """The estimator's gradient with every sequence scored in its own (unshared) forward."""
    m, M, B = cfg.method, ro.M, len(ro.prompt_ids)
    model.zero_grad()
    for b in range(B):
        sl = slice(b * M, (b + 1) * M)
        sc = score_sequences(
            model,
            [ro.prompt_ids[b]] * M,
            ro.rationale_ids[sl],
            answers[sl],
            pad_id=tok.pad_token_id,
            micro_batch_size=cfg.optim.micro_batch_size,
            return_tokens=(m.name == "grpo"),
        )
        lz, ly = sc.logp_z[None], sc.logp_y[None]
        if m.name == "garl":
            loss = E.garl_loss(lz, ly, m.q, baseline=m.baseline, normalize=m.normalize)
        elif m.name == "paft":
            loss = E.paft_loss(lz, ly, m.q, indices=paft_indices[b : b + 1], normalize=m.normalize)
        elif m.name == "rloo":
            loss = E.rloo_loss(lz + ly, rewards[b : b + 1])
        else:
            loss = E.grpo_loss(
                sc.logp_tokens[None],
                sc.mask[None],
                rewards[b : b + 1],
                clip_eps=m.clip_eps,
                scale_rewards=m.scale_rewards,
                loss_agg=m.loss_agg,
            )
        (loss / B).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.fixture(scope="module")
def models():
    out = {}
    for kind in ("lora", "full"):
        lora = {"enabled": kind == "lora", "r": 4, "alpha": 8}
        model, tok = load_model_and_tokenizer(_cfg("garl", model={"lora": lora}).model, torch.device("cpu"), seed=0)
        with torch.no_grad():  # a non-zero adapter
            for n, p in model.named_parameters():
                if "lora_B" in n:
                    p.normal_(0, 0.2, generator=torch.Generator().manual_seed(len(n)))
        model.train()
        out[kind] = (model, tok)
    return out


@pytest.mark.parametrize("kind", ["lora", "full"])
@pytest.mark.parametrize(
    "name,extra,optim",
    [
        ("garl", {}, {}),
        ("garl", {}, {"two_pass_scoring": True}),
        ("garl", {"baseline": "none", "q": 1.0}, {}),
        ("paft", {"K": 3}, {}),
        ("rloo", {}, {}),
        ("grpo", {}, {}),
        ("grpo", {}, {"two_pass_scoring": True}),
    ],
)
def test_every_estimator_gets_the_unshared_gradient(models, kind, name, extra, optim):
    model, tok = models[kind]
    lora = {"enabled": kind == "lora", "r": 4, "alpha": 8}
    cfg = _cfg(name, method=extra, optim=optim, model={"lora": lora})
    ro, ans = _rollouts(tok)
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0]]) if name in ("grpo", "rloo") else None
    idx = torch.tensor([[0, 0, 3], [1, 2, 2]]) if name == "paft" else None
    ref = _unshared_reference(model, cfg, tok, ro, ans, rewards, idx)
    model.zero_grad()
    out = T.accumulate_gradients(model, cfg, tok.pad_token_id, ro, ans, rewards, paft_indices=idx)
    got = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    n_mb = 2 * math.ceil(4 / 3)  # micro-batches per pass
    passes = 2 if optim.get("two_pass_scoring") else 1
    # one scoring forward per sampled rationale and pass; the prompt forwards counted apart
    assert out.scored_sequences == 8 * passes and out.forward_calls == n_mb * passes
    # one prompt forward per prompt and pass (each call scores one prompt's rows; the 1-row micro-batch of the
    # two-pass mode has no repeated prompt and is scored unshared)
    assert out.prompt_forwards >= 2 and out.prompt_forwards == 2 * passes
    assert set(got) == set(ref) and (kind == "full" or all("lora_" in n for n in got))
    assert any(float(g.abs().max()) > 0 for g in ref.values())
    for n in ref:
        torch.testing.assert_close(got[n], ref[n], rtol=1e-4, atol=1e-6, msg=n)
    assert out.logp_y.shape == (2, 4)


# ------------------------------------------------------------------------------- 4-bit, fallbacks
def test_4bit_lora_shared_gradient_equals_unshared():
    bnb = pytest.importorskip("bitsandbytes")
    cfg = _cfg("garl", model={"load_in_4bit": True, "lora": {"enabled": True, "r": 4, "alpha": 8}})
    model, tok = load_model_and_tokenizer(cfg.model, torch.device("cpu"), seed=0)
    n4 = 0
    for mod in model.modules():  # bitsandbytes' AVX512-BF16 CPU repacking is broken on this CPU: off, per instance
        if isinstance(mod, bnb.nn.Linear4bit):
            mod.support_avx512bf16_for_cpu = False
            n4 += 1
    assert n4 > 0
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.2, generator=torch.Generator().manual_seed(len(n)))
    model.train()
    prompts, z, a = _batch(tok)
    sa, ga = _score_and_grad(model, prompts, z, a, tok, False, 3)
    sb, gb = _score_and_grad(model, prompts, z, a, tok, True, 3)
    assert sb.prompt_forwards == 1
    assert all("lora_" in n for n in ga)
    _assert_same(sa, ga, sb, gb)


def _enable_checkpointing(model):
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def test_gradient_checkpointing_falls_back_to_unshared_and_keeps_the_gradient():
    tok = tiny_tokenizer()
    prompts, z, a = _batch(tok)
    ref = tiny_model(tok, seed=4)
    ref.train()
    sa, ga = _score_and_grad(ref, prompts, z, a, tok, False, 3)
    model = tiny_model(tok, seed=4)
    model.train()
    _enable_checkpointing(model)
    ok, why = shared_scoring_supported(model)
    assert not ok and "checkpointing" in why
    sb, gb = _score_and_grad(model, prompts, z, a, tok, True, 3)
    assert sb.prompt_forwards == 0  # not shared: HF drops the cache in checkpointed layers
    _assert_same(sa, ga, sb, gb)
    with torch.no_grad():  # without a backward there is no replay: shared again
        assert shared_scoring_supported(model)[0]
        sc = score(model, prompts, z, a, pad_id=tok.pad_token_id, micro_batch_size=3)
    assert sc.prompt_forwards == 1


def test_dropout_in_training_falls_back_and_eval_shares():
    tok = tiny_tokenizer()
    cfg = _cfg("garl", model={"lora": {"enabled": True, "r": 4, "alpha": 8, "dropout": 0.3}})
    model, tok = load_model_and_tokenizer(cfg.model, torch.device("cpu"), seed=0)
    model.train()
    ok, why = shared_scoring_supported(model)
    assert not ok and "dropout" in why
    model.eval()
    assert shared_scoring_supported(model) == (True, "")
    assert shared_scoring_supported(model, lm_head_checkpoint=False)[0] is False


def test_no_repeated_prompt_scores_unshared():
    tok = tiny_tokenizer()
    model = tiny_model(tok, seed=3)
    prompts, z, a = _batch(tok)
    with torch.no_grad():
        sc = score(model, prompts[:3], z[:3], a[:3], pad_id=tok.pad_token_id, micro_batch_size=3)  # 0, 1, 0
        assert sc.prompt_forwards == 1
        sc = score(model, prompts[1:4], z[1:4], a[1:4], pad_id=tok.pad_token_id, micro_batch_size=3)  # 1, 0, 2
    assert sc.prompt_forwards == 0


# ------------------------------------------------------------------------------- generation
class _TokenCount:
    """Counts the tokens the decoder embeds (a forward hook on the input embedding)."""

    def __init__(self, model):
        self.n = 0
        self.h = model.get_input_embeddings().register_forward_hook(self)

    def __call__(self, mod, args, out):
        self.n += args[0].numel()


def test_shared_generation_samples_the_same_tokens_and_prefills_each_prompt_once():
    tok = tiny_tokenizer()
    model = tiny_model(tok, seed=3)
    ctx = [tok("Q: what is 12 + 30? Think.").input_ids] * 4 + [tok("hi").input_ids] * 3
    samp = SimpleNamespace(temperature=1.0, top_p=1.0, top_k=0)
    outs, counts = [], []
    for shared in (False, True):
        torch.manual_seed(0)
        c = _TokenCount(model)
        outs.append(generate(model, tok, ctx, max_new_tokens=12, sampling=samp, shared_prefix=shared))
        c.h.remove()
        counts.append(c.n)
    assert outs[0] == outs[1]
    assert sum(len(ids) for ids, _ in outs[0]) > 20  # something was sampled
    L = max(len(c) for c in ctx)
    # prefill: unshared 7 rows x L tokens; shared 2 distinct rows x (L - 1), then the last prompt token of each row
    assert counts[0] - counts[1] == 7 * L - (2 * (L - 1) + 7)


def test_shared_prefill_gives_the_same_next_token_distribution():
    tok = tiny_tokenizer()
    model = tiny_model(tok, seed=7)
    ctx = [tok("Q: 6*7=").input_ids] * 3 + [tok("Q: what is 12 + 30?").input_ids] * 2
    L = max(len(c) for c in ctx)
    ids = torch.full((5, L), tok.pad_token_id)
    att = torch.zeros((5, L), dtype=torch.long)
    for i, c in enumerate(ctx):
        ids[i, L - len(c) :], att[i, L - len(c) :] = torch.tensor(c), 1
    assert prefill_shared_cache(model, ids[:2], att[:2]) is not None  # rows 0, 1 repeat
    assert prefill_shared_cache(model, ids[2:4], att[2:4]) is None  # distinct rows: nothing to share
    logits = []
    for shared in (False, True):
        kw = {"cache": prefill_shared_cache(model, ids, att)} if shared else {}
        torch.manual_seed(1)
        g = model.generate(
            input_ids=ids,
            attention_mask=att,
            do_sample=True,
            max_new_tokens=6,
            output_logits=True,
            return_dict_in_generate=True,
            pad_token_id=tok.pad_token_id,
            eos_token_id=[],
            **kw,
        )
        logits.append((g.sequences, torch.stack(g.logits)))
    assert torch.equal(logits[0][0], logits[1][0])
    torch.testing.assert_close(logits[1][1], logits[0][1], rtol=1e-5, atol=1e-5)


def test_sliding_window_models_are_not_shared():
    from transformers import LlamaConfig, MistralConfig, Qwen3Config

    from tsallis_ref.models import ARCHITECTURES
    from tsallis_ref.shared_prefix import full_attention_only

    assert full_attention_only(LlamaConfig()) and full_attention_only(Qwen3Config(**ARCHITECTURES["qwen3-0.6b"][1]))
    assert not full_attention_only(MistralConfig(sliding_window=64))
    assert not full_attention_only(
        Qwen3Config(use_sliding_window=True, sliding_window=16, max_window_layers=1, num_hidden_layers=2)
    )
    tok = tiny_tokenizer()
    model = tiny_model(tok, seed=3)
    assert shared_scoring_supported(model)[0]
    mistral = __import__("transformers").MistralForCausalLM(
        MistralConfig(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            sliding_window=4,
            pad_token_id=tok.pad_token_id,
        )
    )
    ok, why = shared_scoring_supported(mistral)
    assert not ok and "sliding" in why
    ids = torch.tensor([[5, 6, 7, 8]] * 2)
    assert prefill_shared_cache(mistral, ids, torch.ones_like(ids)) is None


# ------------------------------------------------------------------------------- the trainer's switch
@pytest.mark.parametrize("name", ["garl", "grpo"])
@pytest.mark.parametrize("two_pass", [False, True])
def test_optim_shared_prefix_switch_keeps_the_trainer_gradient(models, name, two_pass):
    """``cfg.optim.shared_prefix`` reaches ``accumulate_gradients``: on the same rollouts and rewards the gradient
    is the same with and without it, and only the shared run makes prompt forwards."""
    model, tok = models["lora"]
    ro, ans = _rollouts(tok)
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0]]) if name == "grpo" else None
    grads, outs = [], []
    for shared in (True, False):
        cfg = _cfg(
            name,
            optim={"shared_prefix": shared, "two_pass_scoring": two_pass},
            model={"lora": {"enabled": True, "r": 4, "alpha": 8}},
        )
        model.zero_grad()
        outs.append(T.accumulate_gradients(model, cfg, tok.pad_token_id, ro, ans, rewards))
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    passes = 2 if two_pass else 1
    assert outs[0].prompt_forwards == 2 * passes and outs[1].prompt_forwards == 0
    assert outs[0].forward_calls == outs[1].forward_calls == 2 * math.ceil(4 / 3) * passes
    assert outs[0].scored_tokens < outs[1].scored_tokens
    assert set(grads[0]) == set(grads[1]) and any(float(g.abs().max()) > 0 for g in grads[1].values())
    for n in grads[1]:
        torch.testing.assert_close(grads[0][n], grads[1][n], rtol=1e-4, atol=1e-6, msg=n)


def test_train_step_with_and_without_optim_shared_prefix_gives_the_same_gradient(models):
    """``optim.shared_prefix`` reaches the trainer's scoring and rollout calls: the same GARL step (same seed,
    same weights) gives the same samples and gradients either way, and logs its prompt forwards / prefills."""
    name = "garl"
    model, tok = models["lora"]
    start = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    examples = [
        {"id": "a", "prompt": "Q: 12+30= think first.", "answer": "42"},
        {"id": "b", "prompt": "Q: 6*7=", "answer": "42"},
    ]
    runs = []
    for shared in (True, False):
        cfg = _cfg(name, optim={"shared_prefix": shared}, model={"lora": {"enabled": True, "r": 4, "alpha": 8}})
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n in start:
                    p.copy_(start[n])
        torch.manual_seed(11)
        out = T.train_step(model, tok, T.encode_examples(tok, examples, cfg), cfg, T.StepState.create(model, cfg))
        runs.append((out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n in start:
                p.copy_(start[n])
    (sh, g_sh), (un, g_un) = runs
    assert sh.rollouts.rationale_ids == un.rollouts.rationale_ids  # same samples
    # one prompt forward per prompt when shared, none otherwise; one continuation forward per micro-batch either way
    assert sh.metrics["prompt_forwards"] == 2 and un.metrics["prompt_forwards"] == 0
    assert sh.metrics["prefill_forwards"] == 1 and un.metrics["prefill_forwards"] == 0
    assert sh.metrics["forward_passes"] == un.metrics["forward_passes"] == 2 * math.ceil(4 / 3)
    assert sh.metrics["scored_tokens"] < un.metrics["scored_tokens"]  # each prompt encoded once
    assert set(g_sh) == set(g_un) and any(float(g.abs().max()) > 0 for g in g_un.values())
    for n in g_un:
        torch.testing.assert_close(g_sh[n], g_un[n], rtol=1e-4, atol=1e-6, msg=n)


def test_optim_shared_prefix_is_a_checked_bool_that_a_resume_may_change():
    from tsallis_ref.checkpoint import config_differences
    from tsallis_ref.config import ConfigError

    on, off = _cfg("garl"), _cfg("garl", optim={"shared_prefix": False})
    assert on.optim.shared_prefix is True and off.optim.shared_prefix is False
    assert config_differences(on.to_dict(), off.to_dict()) == []  # same gradient: a resume may switch it
    assert config_differences(on.to_dict(), _cfg("garl", optim={"lr": 2e-2}).to_dict())  # the check still bites
    with pytest.raises(ConfigError, match="optim.shared_prefix"):
        _cfg("garl", optim={"shared_prefix": "yes"})

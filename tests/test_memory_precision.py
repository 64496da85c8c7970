"""Memory and precision options of the trainer: the chunked lm head, two-pass scoring (same gradient as one
pass, with LoRA dropout replayed), the precision plan (bf16 / fp16 + loss scaling, T4 vs A100/H100) and the
fp16 path end to end on the CPU (GradScaler state saved and resumed)."""

import math

import pytest
import torch

torch.set_num_threads(1)

from conftest import EXAMPLES, ROOT, tiny_cfg

from tsallis_ref import models as Mo
from tsallis_ref import trainer as T
from tsallis_ref.checkpoint import checkpoint_path, load_checkpoint
from tsallis_ref.config import ConfigError
from tsallis_ref.models import load_model_and_tokenizer, tiny_model, tiny_tokenizer
from tsallis_ref.rollout import encode_answer, sample_answers, sample_rationales
from tsallis_ref.scoring import pack, score_sequences, token_logprobs

#: this file's runs: M = 5 rationales of at most 10 tokens, micro-batches of 2, on the CPU
MEMORY_RUN = {"rollout": {"M": 5, "rationale_budget": 10}, "optim": {"micro_batch_size": 2}, "device": "cpu"}


def _cfg(name, **kw):
    return tiny_cfg(name, MEMORY_RUN, **kw)


# ------------------------------------------------------------------------------------------ chunked lm head
def test_chunked_head_matches_full_logits_in_value_and_gradient():
    tok = tiny_tokenizer()
    model = tiny_model(tok, seed=2)
    enc = lambda s: tok(s, add_special_tokens=False).input_ids
    p = [enc("Q: 2+2="), enc("Q: 10-3=")]
    z = [enc("two and two</think>"), enc("seven</think>")]
    a = [enc("4") + [tok.eos_token_id], enc(" 7") + [tok.eos_token_id]]
    ids, att, zm, am = pack(p, z, a, tok.pad_token_id)
    pos = zm | am
    out = {}
    for name, kw in {
        "full": dict(lm_head_checkpoint=False),
        "chunk3": dict(positions=pos, logits_chunk=3),
        "chunk1000": dict(positions=pos, logits_chunk=1000),
    }.items():
        model.zero_grad()
        lp = token_logprobs(model, ids, att, **kw)
        (lp * pos).sum().backward()
        out[name] = (lp.detach(), [q.grad.clone() for q in model.parameters()])
    full_lp, full_g = out["full"]
    for name in ("chunk3", "chunk1000"):
        lp, g = out[name]
        torch.testing.assert_close(lp[pos], full_lp[pos], rtol=1e-5, atol=1e-5)
        assert float(lp[~pos].abs().max()) == 0.0  # unscored positions are not computed
        for x, y in zip(g, full_g):
            torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="logits_chunk"):
        token_logprobs(model, ids, att, logits_chunk=0)


# ------------------------------------------------------------------------------------------ two-pass scoring
def _grads_and_state(cfg, model, tok, ro, answers, rewards):
    model.zero_grad()
    torch.manual_seed(123)  # the global state LoRA dropout draws from
    gen = torch.Generator().manual_seed(11)  # PAFT's resampling
    out = T.accumulate_gradients(model, cfg, tok.pad_token_id, ro, answers, rewards, gen)
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out, grads, torch.get_rng_state()


@pytest.fixture(scope="module")
def lora_tiny():
    cfg = _cfg("garl", model={"lora": {"enabled": True, "r": 4, "alpha": 8, "dropout": 0.3}})
    model, tok = load_model_and_tokenizer(cfg.model, torch.device("cpu"), seed=0)
    with torch.no_grad():  # a non-zero adapter, so that dropout changes the scores
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.2)
    model.train()
    return model, tok


@pytest.mark.parametrize(
    "name,extra",
    [("garl", {}), ("garl", {"baseline": "none", "q": 1.0}), ("paft", {"K": 3}), ("rloo", {}), ("grpo", {})],
)
def test_two_pass_scoring_gives_the_one_pass_gradient(lora_tiny, name, extra):
    model, tok = lora_tiny
    cfg1 = _cfg(name, method=extra, model={"lora": {"enabled": True, "r": 4, "alpha": 8, "dropout": 0.3}})
    cfg2 = _cfg(
        name,
        method=extra,
        model={"lora": {"enabled": True, "r": 4, "alpha": 8, "dropout": 0.3}},
        optim={"two_pass_scoring": True},
    )
    torch.manual_seed(5)
    xs = [tok(e["prompt"], add_special_tokens=False).input_ids for e in EXAMPLES[:2]]
    ro = sample_rationales(model, tok, xs, cfg1.rollout)
    rewards = None
    if name in ("grpo", "rloo"):
        ro = sample_answers(model, tok, ro, cfg1.rollout)
        answers = ro.answer_ids
        rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 1.0, 0.0, 1.0]])
    else:
        answers = [encode_answer(tok, EXAMPLES[i // 5]["answer"], cfg1.rollout) for i in range(10)]
    o1, g1, s1 = _grads_and_state(cfg1, model, tok, ro, answers, rewards)
    o2, g2, s2 = _grads_and_state(cfg2, model, tok, ro, answers, rewards)
    assert g1 and set(g1) == set(g2)
    assert any(float(g.abs().max()) > 0 for g in g1.values())
    for n in g1:
        torch.testing.assert_close(g2[n], g1[n], rtol=1e-4, atol=1e-6, msg=n)
    torch.testing.assert_close(o2.logp_y, o1.logp_y)
    assert math.isclose(o2.loss, o1.loss, rel_tol=1e-5, abs_tol=1e-7)
    assert torch.equal(s1, s2)  # the global random stream continues as after one pass
    if name == "paft":
        assert torch.equal(o1.indices, o2.indices)
    # dropout is live: the same scoring under another random state gives other scores
    torch.manual_seed(999)
    with torch.no_grad():
        other = score_sequences(
            model, [xs[0]] * 5, ro.rationale_ids[:5], answers[:5], pad_id=tok.pad_token_id, micro_batch_size=2
        )
    assert not torch.allclose(other.logp_z, o1.logp_z[0])


def test_two_pass_training_runs_and_counts_two_forwards_per_micro_batch(tmp_path):
    torch.manual_seed(0)
    cfg = _cfg("garl", output_dir=str(tmp_path), optim={"two_pass_scoring": True})
    h = T.train(cfg, examples=EXAMPLES)["metrics"]
    assert len(h) == 2 and all(math.isfinite(r["loss"]) for r in h)
    # 2 prompts x ceil(5 / 2) micro-batches, each scored twice (no grad, then with grad)
    assert h[0]["forward_passes"] == 2 * 2 * 3 and h[0]["scored_sequences"] == 2 * 10


# ------------------------------------------------------------------------------------------ precision
class _FakeCuda:
    def __init__(self, capability):
        self.capability = capability


@pytest.mark.parametrize(
    "major,expect_autocast,expect_scale",
    [(8, torch.bfloat16, False), (9, torch.bfloat16, False), (7, torch.float16, True)],
)
def test_precision_plan_on_gpus(monkeypatch, major, expect_autocast, expect_scale):
    """A100/H100 (sm >= 80): bf16 autocast; a T4 / V100 (sm 75 / 70), whose is_bf16_supported() is True by
    emulation: fp16 compute and autocast with loss scaling."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: (major, 5))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    monkeypatch.setattr(torch.version, "hip", None)
    cuda = torch.device("cuda")
    cfg = _cfg("garl", device="cuda")
    assert Mo.compute_dtype(cuda) == expect_autocast
    p32 = [torch.nn.Parameter(torch.zeros(2))]
    assert T.precision_for(cfg, cuda, p32) == (expect_autocast, expect_scale)
    # explicit choices
    assert T.precision_for(_cfg("garl", mixed_precision="no"), cuda, p32)[0] is None
    assert T.precision_for(_cfg("garl", mixed_precision=False), cuda, p32)[0] is None
    assert T.precision_for(_cfg("garl", mixed_precision="fp16", model={"dtype": "bfloat16"}), cuda, p32) == (
        torch.float16,
        True,
    )
    # half-precision trainable parameters: no autocast, no scaler (it cannot unscale fp16 gradients)
    assert T.precision_for(cfg, cuda, [torch.nn.Parameter(torch.zeros(2, dtype=torch.float16))]) == (None, False)


def test_precision_plan_on_cpu_and_bad_values():
    cpu = torch.device("cpu")
    p32 = [torch.nn.Parameter(torch.zeros(2))]
    assert Mo.compute_dtype(cpu) == torch.float32 and not Mo.native_bf16(cpu)
    assert T.precision_for(_cfg("garl"), cpu, p32) == (None, False)
    assert T.precision_for(_cfg("garl", mixed_precision="fp16"), cpu, p32) == (torch.float16, True)
    assert T.precision_for(_cfg("garl", mixed_precision="bf16"), cpu, p32) == (torch.bfloat16, False)
    for bad in ("fp8", "yes", 1):
        with pytest.raises(ConfigError, match="mixed_precision"):
            _cfg("garl", mixed_precision=bad)
    with pytest.raises(ConfigError, match="optim.logits_chunk"):
        _cfg("garl", optim={"logits_chunk": 0})


def test_lora_adapter_stays_float32_over_half_precision_weights():
    """An lr-1e-5 AdamW step is below bf16's resolution: the adapter must be float32 over bf16 base weights."""
    cfg = _cfg("garl", model={"dtype": "bfloat16", "lora": {"enabled": True, "r": 4, "alpha": 8}})
    model, _ = load_model_and_tokenizer(cfg.model, torch.device("cpu"), seed=0)
    train = [p for p in model.parameters() if p.requires_grad]
    frozen = [p for n, p in model.named_parameters() if not p.requires_grad and "layers" in n]
    assert train and all(p.dtype == torch.float32 for p in train)
    assert frozen and all(p.dtype == torch.bfloat16 for p in frozen)


def test_fp16_training_scales_the_loss_and_resumes_the_scaler(tmp_path):
    torch.manual_seed(0)
    fp16_lora = dict(
        output_dir=str(tmp_path),
        mixed_precision="fp16",
        checkpoint_every=1,
        model={"lora": {"enabled": True, "r": 4, "alpha": 8}},
    )
    res = T.train(_cfg("garl", steps=2, **fp16_lora), examples=EXAMPLES)
    h = res["metrics"]
    assert all("loss_scale" in r and r["loss_scale"] > 1 for r in h)
    assert all(math.isfinite(r["loss"]) for r in h)
    assert any(float(p.abs().max()) > 0 for n, p in res["model"].named_parameters() if "lora_B" in n)
    ck = load_checkpoint(checkpoint_path(tmp_path))
    assert ck["scaler"] and ck["scaler"]["scale"] == h[-1]["loss_scale"]
    h3 = T.train(_cfg("garl", steps=3, **fp16_lora), examples=EXAMPLES, resume=True)["metrics"]
    assert len(h3) == 1 and h3[0]["step"] == 3 and h3[0]["loss_scale"] > 1


# ------------------------------------------------------------------------------------------ generation memory
def test_kv_cache_bytes_match_the_cache_a_forward_builds():
    tok = tiny_tokenizer()
    model = tiny_model(tok, seed=0)
    L = 13
    with torch.no_grad():
        out = model(input_ids=torch.randint(10, 60, (1, L)), use_cache=True)
    cache = out.past_key_values
    tensors = []
    for layer in getattr(cache, "layers", []):
        tensors += [layer.keys, layer.values]
    if not tensors:  # older transformers: key_cache / value_cache lists
        tensors = list(cache.key_cache) + list(cache.value_cache)
    total = sum(t.numel() * t.element_size() for t in tensors)
    assert total == L * Mo.kv_cache_bytes_per_token(model.config, torch.float32)
    assert Mo.activation_dtype(model) == torch.float32


def test_qwen3_kv_cache_and_auto_generation_batch():
    import transformers

    cls_name, kw = Mo.ARCHITECTURES["qwen3-0.6b"]
    cfg = getattr(transformers, cls_name)(**kw)
    assert Mo.kv_cache_bytes_per_token(cfg, torch.bfloat16) == 28 * 2 * 8 * 128 * 2

    class _M:  # what auto_generation_batch reads: .config, modules(), named_parameters()
        config = cfg

        def modules(self):
            return []

        def named_parameters(self):
            return iter([("model.layers.0.w", torch.nn.Parameter(torch.zeros(1, dtype=torch.bfloat16)))])

        def parameters(self):
            return iter([])

    GiB = 1 << 30
    per_seq = 114688 * 4096
    # a 16 GB T4 with ~14.5 GiB free: 0.6 x 13.5 GiB of cache -> 18 sequences of 4k tokens (448 MiB each)
    assert Mo.auto_generation_batch(_M(), 256, 4096, int(14.5 * GiB)) == int(0.6 * 13.5 * GiB // per_seq) == 18
    assert Mo.auto_generation_batch(_M(), 8, 4096, 70 * GiB) == 8  # capped at n
    assert Mo.auto_generation_batch(_M(), 8, 4096, GiB // 2) == 1  # never 0
    with pytest.raises(ConfigError, match="rollout.generation_batch_size"):
        _cfg("garl", rollout={"generation_batch_size": "max"})
    assert _cfg("garl", rollout={"generation_batch_size": "auto"}).rollout.generation_batch_size == "auto"


def test_auto_generation_batch_on_cpu_generates_everything_at_once(lora_tiny):
    from tsallis_ref.config import SamplingConfig
    from tsallis_ref.rollout import generate

    model, tok = lora_tiny
    calls = []
    orig = model.generate
    model.generate = lambda *a, **k: (calls.append(k["input_ids"].shape[0]), orig(*a, **k))[1]
    try:
        out = generate(
            model, tok, [[40, 41]] * 3 + [[42]], max_new_tokens=3, sampling=SamplingConfig(), batch_size="auto"
        )
    finally:
        del model.generate
    assert calls == [4] and len(out) == 4


def test_two_pass_equals_one_pass_on_the_gpu_recipe_4bit_lora_checkpointing():
    """The GPU configuration's path (NF4 + LoRA + activation checkpointing, small micro-batches) on the CPU:
    the adapter gets a non-zero gradient, the same in one and two passes."""
    pytest.importorskip("bitsandbytes")
    lora = {"enabled": True, "r": 4, "alpha": 8}
    grads = []
    for two in (False, True):
        cfg = _cfg(
            "garl",
            model={"load_in_4bit": True, "gradient_checkpointing": True, "lora": lora},
            optim={"two_pass_scoring": two, "micro_batch_size": 2, "logits_chunk": 7},
        )
        model, tok = load_model_and_tokenizer(cfg.model, torch.device("cpu"), seed=0)
        with torch.no_grad():
            for n, p in model.named_parameters():
                if "lora_B" in n:
                    p.normal_(0, 0.2, generator=torch.Generator().manual_seed(len(n)))
        model.train()
        torch.manual_seed(5)
        xs = [tok(e["prompt"], add_special_tokens=False).input_ids for e in EXAMPLES[:2]]
        ro = sample_rationales(model, tok, xs, cfg.rollout)
        answers = [encode_answer(tok, EXAMPLES[i // 5]["answer"], cfg.rollout) for i in range(10)]
        T.accumulate_gradients(model, cfg, tok.pad_token_id, ro, answers)
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad})
    g1, g2 = grads
    assert any("lora_A" in n for n in g1) and all(float(g.abs().max()) > 0 for g in g1.values())
    for n in g1:
        torch.testing.assert_close(g2[n], g1[n], rtol=1e-4, atol=1e-6, msg=n)


def test_full_fine_tuning_keeps_float32_master_weights_where_compute_is_half(monkeypatch):
    """On a GPU "auto" computes in bf16; full fine-tuning must still hold float32 weights (autocast does the
    bf16 compute), while a LoRA run keeps its frozen base in bf16. Simulated on the CPU."""
    real = Mo.compute_dtype
    monkeypatch.setattr(
        Mo, "compute_dtype", lambda d, dtype="auto": torch.bfloat16 if dtype == "auto" else real(d, dtype)
    )
    full, _ = load_model_and_tokenizer(_cfg("garl").model, torch.device("cpu"), seed=0)
    assert all(p.dtype == torch.float32 and p.requires_grad for p in full.parameters())
    lora, _ = load_model_and_tokenizer(
        _cfg("garl", model={"lora": {"enabled": True, "r": 2}}).model, torch.device("cpu"), seed=0
    )
    assert {p.dtype for p in lora.parameters() if not p.requires_grad} == {torch.bfloat16}
    forced, _ = load_model_and_tokenizer(_cfg("garl", model={"dtype": "bfloat16"}).model, torch.device("cpu"), seed=0)
    assert {p.dtype for p in forced.parameters()} == {torch.bfloat16}  # an explicit dtype is obeyed


# ------------------------------------------------------------------------------------------ GPU step records
def test_gpu_step_table_reads_records_and_judges_t4_fit_only_for_fp16(tmp_path):
    import json

    from tsallis_ref import experiments as X

    rec = {
        "date": "2026-01-01T00:00:00+00:00",
        "hardware": "NVIDIA H100 80GB HBM3 (79 GiB)",
        "command": "python ...",
        "args": {"prompt_tokens": 1024, "two_pass": True},
        "rows": [
            {
                "M": 32,
                "rationale_budget": 2944,
                "autocast": "torch.float16",
                "step_s": 100.0,
                "generate_peak_reserved_mb": 9000.0,
                "train_peak_reserved_mb": 12000.0,
            },
            {
                "M": 32,
                "rationale_budget": 2944,
                "autocast": "torch.float16",
                "step_s": 90.0,
                "generate_peak_reserved_mb": 9000.0,
                "train_peak_reserved_mb": 16000.0,
            },
            {
                "M": 16,
                "rationale_budget": 1920,
                "autocast": "torch.bfloat16",
                "step_s": 50.0,
                "generate_peak_reserved_mb": 1000.0,
                "train_peak_reserved_mb": 1000.0,
            },
            {"M": 64, "rationale_budget": 2944, "oom": "CUDA out of memory", "peak_reserved_mb": 70000.0},
        ],
    }
    p = tmp_path / "gpu_step_x.json"
    p.write_text(json.dumps(rec))
    t = X.gpu_step_table([p])
    assert t["fits 16 GB T4"].tolist() == [True, False, None, None]
    assert t["peak reserved MiB"].tolist()[:3] == [12000.0, 16000.0, 1000.0]
    assert t["OOM"].tolist() == [False, False, False, True]
    assert set(t["scoring"]) == {"two passes"} and t["hardware"].iloc[0].startswith("NVIDIA H100")


def test_gpu_step_script_smoke_run_on_the_cpu(tmp_path):
    import importlib.util

    from tsallis_ref import experiments as X

    path = ROOT / "benchmarks" / "gpu_step.py"
    spec = importlib.util.spec_from_file_location("gpu_step", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "g.json"
    mod.main(
        [
            "--tiny-arch",
            "--M",
            "2",
            "--rationale-budget",
            "6",
            "--prompt-tokens",
            "8",
            "--steps",
            "1",
            "--two-pass",
            "--no-4bit",
            "--device",
            "cpu",
            "--json",
            str(out),
        ]
    )
    t = X.gpu_step_table([out])
    assert len(t) == 1 and t["M"].iloc[0] == 2 and t["scoring"].iloc[0] == "two passes"
    assert t["step s"].iloc[0] > 0 and t["train peak alloc MiB"].iloc[0] > 0 and not t["OOM"].iloc[0]


def test_rollouts_run_under_the_training_autocast(tmp_path):
    """The step samples its rollouts under the same autocast as it scores them (bf16 forced on the CPU)."""
    from tsallis_ref.models import load_model_and_tokenizer

    for mp in ("bf16", "auto"):
        torch.manual_seed(0)
        cfg = _cfg(
            "garl",
            output_dir=str(tmp_path),
            mixed_precision=mp,
            steps=1,
            model={"lora": {"enabled": True, "r": 4, "alpha": 8}},
        )
        model, tok = load_model_and_tokenizer(cfg.model, torch.device("cpu"), seed=0)
        model.train()
        seen = []  # generation runs the full causal-LM forward in eval mode (scoring calls the decoder)
        h = model.get_base_model().register_forward_pre_hook(
            lambda m, args: (
                seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
                if not m.training
                else None
            )
        )
        try:
            out = T.train_step(
                model, tok, T.encode_examples(tok, EXAMPLES[:2], cfg), cfg, T.StepState.create(model, cfg)
            )
        finally:
            h.remove()
        assert seen and math.isfinite(out.metrics["loss"])
        if mp == "bf16":
            assert set(seen) == {(True, torch.bfloat16)}
        else:
            assert not any(enabled for enabled, _ in seen)  # "auto" on a CPU: no autocast


def test_cold_curves_table_and_summary_rank_prompts_by_their_start():
    from tsallis_ref import experiments as X

    rec = {
        "runs": [
            {
                "q": 0.0,
                "ids": ["a", "b", "c"],
                "log_wbar_before": [-30.0, -8.0, -18.0],
                "log_wbar_after": [-35.0, -1.0, -20.0],
            },
            {
                "q": 1.0,
                "ids": ["a", "b", "c"],
                "log_wbar_before": [-30.0, -8.0, -18.0],
                "log_wbar_after": [-5.0, -2.0, -4.0],
            },
        ]
    }
    t = X.cold_curves_table(rec)
    assert t.loc[(t.q == 0.0) & (t.prompt == "a"), "start rank (0 = coldest)"].item() == 0
    assert t.loc[(t.q == 0.0) & (t.prompt == "b"), "start rank (0 = coldest)"].item() == 2
    s = X.cold_curves_summary(rec)
    assert s.loc[0.0, "rise of the coldest"] == -5.0 and s.loc[1.0, "rise of the coldest"] == 25.0
    assert s.loc[0.0, "rise of the warmest"] == 7.0 and s.loc[1.0, "min log wbar after"] == -5.0
    assert s.loc[0.0, "corr(start, rise)"] > 0.9 and s.loc[1.0, "corr(start, rise)"] < -0.9
    assert s.loc[0.0, "prompts learnt (log wbar > -1)"] == 0 and s.loc[1.0, "prompts learnt (log wbar > -1)"] == 0
    assert s.loc[0.0, "prompts that fell"] == 2 and s.loc[1.0, "prompts that fell"] == 0


def test_resolve_generation_batch(lora_tiny):
    model, _ = lora_tiny
    assert Mo.resolve_generation_batch(model, 5, 12, 100) == 5
    assert Mo.resolve_generation_batch(model, 0, 12, 100) == 12
    assert Mo.resolve_generation_batch(model, "auto", 12, 100) == 12  # a CPU model: all at once

"""The book layer's benchmark runs (paper §7) as small library calls, so the benchmarks chapter stays thin.

* :class:`Settings`: every knob of one comparison (model, 4-bit/LoRA, M, budgets, lr, steps, data sizes, eval k),
  with :data:`CPU_DEFAULTS` (SmolLM2-135M-Instruct, 4-bit NF4 + LoRA, a few steps: a *pipeline demonstration*)
  and :func:`gpu_settings` (Qwen3-0.6B, M = 32, the paper's budgets, k = 16).
* :func:`run_method`: train one method (GARL / PAFT / GRPO / RLOO) at one q in one regime (warm / cold) with
  :func:`tsallis_ref.trainer.train`, evaluate it with :func:`tsallis_ref.evaluation.evaluate` and return one labelled
  result row (hardware, date, exact settings, per-step metrics, p@1 / p@k / maj@k, wall time, peak memory).
* :func:`fixed_rationale_log_wbar`: log wbar = log mean_m p(y*|x, z_m) on a FIXED pool of rationales sampled
  from the untrained model, scored before (adapter off) and after training (adapter on): the estimated P
  on the trained prompts, free of the noise of fresh samples.
* :func:`shared_base_model`: load the (4-bit) base model once per process and give every run a fresh copy of
  the same initial LoRA adapter (loading and quantising SmolLM2 costs ~20 s on a CPU).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import torch

if TYPE_CHECKING:
    from ..config import TrainConfig

__all__ = [
    "Settings",
    "CPU_DEFAULTS",
    "gpu_settings",
    "PAPER_BUDGETS",
    "WARM_METHODS",
    "COLD_QS",
    "make_config",
    "shared_base_model",
    "run_method",
    "evaluate_model",
    "fixed_rationale_log_wbar",
    "load_split",
    "hardware_label",
    "run_label",
    "evaluate_base",
]

#: budget forcing of the paper (§7.1), the total thinking budget of which 128 tokens are reserved for the answer
PAPER_BUDGETS = {"finqa": 4096, "hotpotqa": 3072, "musique": 2048}
#: the chapter's warm-start comparison (Table 3 rows) and cold-start q grid (Table 1 rows)
WARM_METHODS = (("grpo", None), ("garl", 0.25), ("garl", 0.75), ("paft", 0.75))
COLD_QS = (0.0, 0.5, 0.75, 1.0)


@dataclass
class Settings:
    """One comparison's settings. Defaults are the CPU pipeline demonstration (see :data:`CPU_DEFAULTS`)."""

    model: str = "smollm2-gguf"  # or a hub id / folder, e.g. "Qwen/Qwen3-0.6B"
    load_in_4bit: bool = True  # NF4 (bitsandbytes); compute fp32 on CPU, bf16 on GPU
    lora_r: int = 8
    lora_alpha: int = 16
    M: int = 2  # rollouts per prompt (paper: 32)
    rationale_budget: int = 8  # tokens before the end-of-rationale marker is forced (paper: 4k/3k/2k - 128)
    answer_budget: int = 6  # tokens for the answer (paper: 128)
    end_of_rationale: str = "\nAnswer:"  # "</think>" for Qwen3
    answer_prefix: str = " "  # "\n\n" after </think> for Qwen3
    enable_thinking: Optional[bool] = None
    lr: float = 2e-3  # LoRA lr, high enough to move in a few steps (paper: not reported)
    optimizer: str = "adamw"  # "adamw" | "sgd" (TrainConfig.optim.optimizer)
    steps: int = 1
    prompts_per_step: int = 1
    n_train: int = 1  # training prompts (first n of the train sample)
    n_eval: int = 1  # evaluation prompts (first n of the dev sample)
    context_budget: Optional[int] = 24  # context tokens kept per prompt (supporting paragraphs first); None = all
    eval_k: int = 2  # samples per prompt at evaluation (paper: 16)
    temperature: float = 1.0
    seed: int = 0
    device: str = "cpu"
    num_threads: int = 1  # torch threads on the CPU (0 = leave as is)
    gradient_checkpointing: bool = False
    micro_batch_size: Optional[int] = None  # sequences per scoring forward; None = M
    two_pass_scoring: bool = False  # memory: one micro-batch's graph at a time (TrainConfig.optim)
    generation_batch_size: Any = 0  # sequences per generate call; 0 = all, "auto" = what GPU memory holds
    wbar_prompts: Optional[int] = None  # training prompts of the fixed-pool log wbar measure; None = all

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


#: the CPU pipeline demonstration that the book builds and CI run (the defaults of Settings)
CPU_DEFAULTS = Settings()


def gpu_settings(dataset: str, **over) -> Settings:
    """The paper's scale on one GPU: Qwen3-0.6B (thinking), 4-bit + LoRA, M = 32, budgets 4k/3k/2k - 128, k = 16.
    Steps / lr / prompts per step are not reported by the paper; ours are guesses (see configs/). Memory:
    activation checkpointing, two-pass scoring (one micro-batch of 8 sequences holds a graph at a time) and
    rollouts generated in batches that fit the free GPU memory, so that M = 32 does not multiply the memory."""
    s = Settings(
        model="Qwen/Qwen3-0.6B",
        load_in_4bit=True,
        lora_r=16,
        lora_alpha=32,
        M=32,
        rationale_budget=PAPER_BUDGETS[dataset] - 128,
        answer_budget=128,
        end_of_rationale="</think>",
        answer_prefix="\n\n",
        enable_thinking=True,
        lr=1e-5,
        steps=200,
        prompts_per_step=8,
        n_train=512,
        n_eval=64,
        context_budget=None,
        eval_k=16,
        device="cuda",
        num_threads=0,
        gradient_checkpointing=True,
        micro_batch_size=8,
        two_pass_scoring=True,
        generation_batch_size="auto",
        wbar_prompts=16,
    )
    return dataclasses.replace(s, **over)


def hardware_label(device: str = "cpu") -> str:
    """A short description of the hardware a run used (CPU model / GPU name, threads)."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"GPU {torch.cuda.get_device_name(0)}"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"CPU {cpu}, {torch.get_num_threads()} thread(s)"


def run_label(s: Settings, method: str, q: Optional[float], regime: str) -> str:
    qs = "" if q is None else f" q={q:g}"
    return (
        f"{method.upper()}{qs} ({regime}); {s.model}{' 4-bit NF4' if s.load_in_4bit else ''} + LoRA r={s.lora_r}; "
        f"M={s.M}, rationale {s.rationale_budget} tok, answer {s.answer_budget} tok, lr={s.lr:g}, "
        f"{s.steps} steps x {s.prompts_per_step} prompt(s), {s.n_train} train prompts, "
        f"context<={s.context_budget} tok; eval k={s.eval_k} on {s.n_eval} dev prompts; seed {s.seed}"
    )


# ---------------------------------------------------------------------------------------------------------
# Data and configs
# ---------------------------------------------------------------------------------------------------------
def load_split(dataset: str, split: str, regime: str, s: Settings, tokenizer=None) -> list[dict]:
    """``[{id, prompt, answer, aliases}]``: the first ``n_train`` (train) or ``n_eval`` (dev) examples."""
    from ..data import load_examples

    n = s.n_train if split == "train" else s.n_eval
    from ..data import AnswerFormat

    return load_examples(
        dataset,
        split=split,
        regime=regime,
        limit=n,
        context_budget=s.context_budget,
        tokenizer=tokenizer,
        answer_format=AnswerFormat.from_config(s),
    )


def make_config(
    dataset: str, method: str, q: Optional[float], regime: str, s: Settings, output_dir: str | os.PathLike
) -> TrainConfig:
    """The trainer configuration of one run (warm: the chat template; cold: the raw linearised text)."""
    from ..config import TrainConfig

    d = {
        "method": {"name": method, "q": 0.0 if q is None else float(q), "baseline": "rloo"},
        "model": {
            "name_or_path": s.model,
            "load_in_4bit": s.load_in_4bit,
            "chat_template": regime == "warm" or s.enable_thinking is not None,
            "enable_thinking": s.enable_thinking,
            "gradient_checkpointing": s.gradient_checkpointing,
            "lora": {"enabled": True, "r": s.lora_r, "alpha": s.lora_alpha},
        },
        "rollout": {
            "M": s.M,
            "rationale_budget": s.rationale_budget,
            "answer_budget": s.answer_budget,
            "end_of_rationale": s.end_of_rationale,
            "answer_prefix": s.answer_prefix,
            "sampling": {"temperature": s.temperature},
            "generation_batch_size": s.generation_batch_size,
        },
        "optim": {
            "optimizer": s.optimizer,
            "lr": s.lr,
            "prompts_per_step": s.prompts_per_step,
            "micro_batch_size": s.micro_batch_size or s.M,
            "two_pass_scoring": s.two_pass_scoring,
        },
        "data": {"dataset": dataset, "regime": regime, "split": "train", "limit": s.n_train},
        "steps": s.steps,
        "seed": s.seed,
        "output_dir": str(output_dir),
        "checkpoint_every": 0,
        "device": s.device,
        "num_threads": s.num_threads,
        "tensorboard": False,
        "progress_bar": False,
    }
    return TrainConfig.from_dict(d)


# ---------------------------------------------------------------------------------------------------------
# One base model per process
# ---------------------------------------------------------------------------------------------------------
_BASE_CACHE: dict = {}
_LOADER = None  # the loader of an open shared_base_model() context, or None


def _load_base(mcfg, device, seed=0):
    """The model and tokenizer of ``mcfg``: from the open :func:`shared_base_model` cache, or freshly loaded."""
    from ..models import load_model_and_tokenizer

    return (_LOADER or load_model_and_tokenizer)(mcfg, device, seed=seed)


@contextlib.contextmanager
def shared_base_model():
    """Inside this context, :func:`run_method` and :func:`evaluate_base` reuse one loaded model per (model
    config, device, seed), passed to :func:`tsallis_ref.trainer.train`, and restore its trainable (LoRA)
    weights to their initial values before each run, so each run starts from exactly the state a fresh load
    gives (same seed -> same LoRA init) without re-loading."""
    global _LOADER
    from ..models import load_model_and_tokenizer, load_trainable_state_dict, trainable_state_dict

    def loader(mcfg, device, seed=0):
        # the loaded weights do not depend on how prompts are encoded (chat template / thinking flag)
        wkey = {k: v for k, v in dataclasses.asdict(mcfg).items() if k not in ("chat_template", "enable_thinking")}
        key = (repr(wkey), str(device), seed)
        if key not in _BASE_CACHE:
            model, tok = load_model_and_tokenizer(mcfg, device, seed=seed)
            _BASE_CACHE[key] = (model, tok, trainable_state_dict(model))
        model, tok, init = _BASE_CACHE[key]
        load_trainable_state_dict(model, init)
        for p in model.parameters():
            p.grad = None
        return model, tok

    old, _LOADER = _LOADER, loader
    try:
        yield loader
    finally:
        _LOADER = old


# ---------------------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------------------
@torch.no_grad()
def fixed_rationale_log_wbar(
    model, tokenizer, examples: Sequence[dict], cfg, n: Optional[int] = None, seed: int = 1234
) -> dict:
    """log wbar_x = log (1/n) sum_m p(y*|x, z_m) per prompt on ONE pool of n rationales per prompt sampled from
    the *untrained* model (LoRA adapter disabled), scored with the adapter off (before) and on (after).

    Returns ``{"before": [..], "after": [..], "ids": [..]}`` (natural-log values, one per example)."""
    from ..estimators import log_mean_weight
    from ..rollout import encode_answer, encode_prompt, sample_rationales
    from ..shared_prefix import score as score_sequences

    n = n or cfg.rollout.M
    rcfg = dataclasses.replace(cfg.rollout, M=n)
    xs = [
        encode_prompt(
            tokenizer, ex["prompt"], chat_template=cfg.model.chat_template, enable_thinking=cfg.model.enable_thinking
        )
        for ex in examples
    ]
    ys = [encode_answer(tokenizer, ex["answer"], rcfg) for ex in examples]
    ctx = model.disable_adapter() if hasattr(model, "disable_adapter") else contextlib.nullcontext()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with ctx:
            ro = sample_rationales(model, tokenizer, xs, rcfg, shared_prefix=cfg.optim.shared_prefix)
    was = model.training
    model.eval()

    def score() -> list[float]:
        out = []
        for b in range(len(xs)):
            sl = slice(b * n, (b + 1) * n)
            sc = score_sequences(
                model,
                [xs[b]] * n,
                ro.rationale_ids[sl],
                [ys[b]] * n,
                pad_id=tokenizer.pad_token_id,
                micro_batch_size=cfg.optim.micro_batch_size,
                logits_chunk=cfg.optim.logits_chunk,
                shared_prefix=cfg.optim.shared_prefix,
            )
            out.append(float(log_mean_weight(sc.logp_y.unsqueeze(0).double())[0]))
        return out

    try:
        with model.disable_adapter() if hasattr(model, "disable_adapter") else contextlib.nullcontext():
            before = score()
        after = score()
    finally:
        if was:
            model.train()
    return {"before": before, "after": after, "ids": [ex["id"] for ex in examples]}


def evaluate_model(
    model, tokenizer, examples: Sequence[dict], dataset: str, regime: str, s: Settings, seed: int = 0
) -> dict:
    """p@1 / p@k / maj@k (%, relaxed substring judge, paper §7.1) of k samples per prompt, with budget forcing
    at the run's budgets and end-of-rationale marker (the harness of :mod:`tsallis_ref.evaluation`)."""
    from ..data import aggregate
    from ..evaluation import generate_samples, score_samples

    k = s.eval_k
    from ..models import resolve_generation_batch

    longest = max(len(tokenizer(e["prompt"]).input_ids) for e in examples) + 64  # + the chat template
    bs = resolve_generation_batch(
        model, s.generation_batch_size, max(1, k * len(examples)), longest + s.rationale_budget + s.answer_budget + 8
    )
    gens = generate_samples(
        model,
        tokenizer,
        [e["prompt"] for e in examples],
        k,
        batch_size=bs,
        max_new_tokens=s.answer_budget,
        temperature=s.temperature,
        seed=seed,
        use_chat_template=(regime == "warm" or s.enable_thinking is not None),
        progress=False,
        think_budget=s.rationale_budget,
        end_marker=s.end_of_rationale.strip() or s.end_of_rationale,
        forced_suffix=s.end_of_rationale + s.answer_prefix,
    )
    from ..data import AnswerFormat

    per = [
        score_samples(
            g,
            e["answer"],
            e["aliases"],
            k=k,
            dataset=dataset,
            judge="relaxed",
            answer_format=AnswerFormat.from_config(s),
        )
        for e, g in zip(examples, gens)
    ]
    return aggregate(per, ["p@1", f"p@{k}", f"maj@{k}", "reward_em"])


def run_method(
    dataset: str,
    method: str,
    q: Optional[float],
    regime: str,
    s: Settings = CPU_DEFAULTS,
    *,
    output_dir: str | os.PathLike = "runs/experiments",
    train_examples: Optional[list] = None,
    eval_examples: Optional[list] = None,
    measure_wbar: bool = True,
    evaluate: bool = True,
) -> dict:
    """Train ``method`` (q) in ``regime`` on ``dataset`` with settings ``s``; evaluate; return one result row.

    The row: ``dataset, regime, method, q, label`` (the exact settings), ``hardware``, ``date`` (UTC),
    ``metrics`` (the trainer's per-step dicts), ``log_wbar_before/after`` (fixed rationale pool, the first ``s.wbar_prompts`` trained
    prompts), ``eval`` (p@1, p@k, maj@k in %), ``train_s`` / ``eval_s`` / ``wall_s`` and ``peak_mem_mb``.
    Call it inside :func:`shared_base_model` to load the model once for many runs."""
    from .. import trainer as T

    if s.num_threads > 0:
        torch.set_num_threads(s.num_threads)
    tag = f"{dataset}_{regime}_{method}" + ("" if q is None else f"_q{q:g}")
    out = Path(output_dir) / tag
    cfg = make_config(dataset, method, q, regime, s, out)
    t0 = time.perf_counter()
    if train_examples is None:
        train_examples = load_split(dataset, "train", regime, s)
    if _LOADER is not None:  # the shared base model (seeded as train() seeds before it loads)
        from ..models import resolve_device

        torch.manual_seed(cfg.seed)
        model, tok = _LOADER(cfg.model, resolve_device(cfg.device), seed=cfg.seed)
        res = T.train(cfg, examples=train_examples, model=model, tokenizer=tok)
    else:
        res = T.train(cfg, examples=train_examples)
    t_train = time.perf_counter() - t0
    model, tok = res["model"], res["tokenizer"]
    row = {
        "dataset": dataset,
        "regime": regime,
        "method": method,
        "q": q,
        "label": run_label(s, method, q, regime),
        "hardware": hardware_label(s.device),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "settings": s.as_dict(),
        "metrics": res["metrics"],
        "train_s": t_train,
        "output_dir": str(out),
        "train_ids": [ex["id"] for ex in train_examples],
    }
    device = next(model.parameters()).device
    amp = T.autocast_context(
        device, T.precision_for(cfg, device, [p for p in model.parameters() if p.requires_grad])[0]
    )
    with amp:  # the training run's autocast (a GPU: bf16 / fp16), none on a CPU
        if measure_wbar and method in ("garl", "paft"):
            w = fixed_rationale_log_wbar(model, tok, train_examples[: s.wbar_prompts], cfg, seed=s.seed + 1234)
            row["log_wbar_before"], row["log_wbar_after"] = w["before"], w["after"]
        if evaluate:
            t1 = time.perf_counter()
            if eval_examples is None:
                eval_examples = load_split(dataset, "dev", regime, s)
            row["eval"] = evaluate_model(model, tok, eval_examples, dataset, regime, s, seed=s.seed)
            row["eval_s"] = time.perf_counter() - t1
    row["wall_s"] = time.perf_counter() - t0
    row["peak_mem_mb"] = max(m["peak_mem_mb"] for m in res["metrics"])
    return row


def evaluate_base(dataset: str, regime: str, s: Settings = CPU_DEFAULTS, *, eval_examples=None) -> dict:
    """The untrained (prompted) model's p@1 / p@k / maj@k: Table 3's "Base" row. Uses the shared base model
    when called inside :func:`shared_base_model` (the adapter is at its initial value, B = 0: the base model)."""
    from .. import trainer as T

    cfg = make_config(dataset, "garl", 0.5, regime, s, "runs/unused")
    model, tok = _load_base(cfg.model, torch.device(cfg.device if cfg.device != "auto" else "cpu"), seed=s.seed)
    t0 = time.perf_counter()
    if eval_examples is None:
        eval_examples = load_split(dataset, "dev", regime, s)
    device = next(model.parameters()).device
    with T.autocast_context(
        device, T.precision_for(cfg, device, [p for p in model.parameters() if p.requires_grad])[0]
    ):
        agg = evaluate_model(model, tok, eval_examples, dataset, regime, s, seed=s.seed)
    return {
        "dataset": dataset,
        "regime": regime,
        "method": "base",
        "q": None,
        "eval": agg,
        "eval_s": time.perf_counter() - t0,
        "hardware": hardware_label(s.device),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "label": f"base (no training, {regime}); {s.model}; eval k={s.eval_k} on {s.n_eval} dev prompts",
    }

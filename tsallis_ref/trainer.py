"""The training loop: GARL (Algorithm 1), PAFT (Algorithm 2) and the GRPO / RLOO baselines for any causal LM.

One step, top to bottom:

1. take ``prompts_per_step`` examples (x*, y*) in a seeded, resumable order;
2. **rollout**: sample M rationales per prompt with budget forcing (``rollout.sample_rationales``);
   GRPO / RLOO also sample the model's own answer and score it by exact match (binary reward);
3. **score + backward, one prompt at a time**: ONE teacher-forced forward pass per sequence
   ``[x, z_m, a_m]`` (``scoring.score_sequences``, micro-batched) gives ``logp_z`` and ``logp_y`` with
   their graphs; the core estimator of ``tsallis_ref.estimators`` turns the M values into the
   surrogate loss (the weights need all M ``logp_y`` first, so the M graphs are kept until then),
   and one backward accumulates that prompt's gradient (gradient accumulation across prompts).
   ``optim.two_pass_scoring`` trades one more forward for memory: see :func:`accumulate_gradients`;
4. clip, optimiser step (fp16: through a GradScaler, see :func:`precision_for`), log, checkpoint.
"""
from __future__ import annotations

import json
import math
import os
import re
import resource
import string
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from . import estimators as E
from .checkpoint import checkpoint_path, load_for_resume, rng_state, save_checkpoint, set_rng_state
from .config import ConfigError, TrainConfig, validate_examples
from .data.answer_format import AnswerFormat
from .models import load_model_and_tokenizer, load_trainable_state_dict, resolve_device, trainable_state_dict
from .rollout import Rollouts, encode_answer, encode_prompt, sample_answers, sample_rationales
from .scoring import COUNTER, score_sequences

__all__ = ["train", "load_examples", "normalize_answer", "exact_match", "StepOutput", "accumulate_gradients",
           "precision_for",
           "DataOrder", "MetricsLogger"]


# ---------------------------------------------------------------------------------------------------------
# Answers and rewards (GRPO / RLOO)
# ---------------------------------------------------------------------------------------------------------
_PUNCT = set(string.punctuation)
# the clock of the t_score / t_backward split; benchmarks/step_breakdown.py swaps in time.process_time on a
# busy shared CPU (CPU time of this process is insensitive to other processes' load)
CLOCK = time.perf_counter
try:  # the data module's verifier, when present in the tree
    from .data.verify import normalize_answer  # type: ignore
except Exception:  # pragma: no cover - depends on the tree
    def normalize_answer(s: str) -> str:
        """LOCAL FALLBACK (tsallis_ref.data.verify absent): SQuAD-style normalisation, i.e. lower-case,
        drop punctuation (except a decimal point between digits, so "4.2" != "42") and the articles
        a/an/the, collapse whitespace."""
        s = re.sub(r"(?<=\d)\.(?=\d)", "\x00", s.lower())
        s = "".join(ch for ch in s if ch not in _PUNCT).replace("\x00", ".")
        s = re.sub(r"\b(a|an|the)\b", " ", s)
        return " ".join(s.split())


def exact_match(prediction: str, gold: str, aliases: Sequence[str] = ()) -> float:
    """Binary reward of GRPO / RLOO: 1 if the normalised prediction equals the normalised gold (or an alias)."""
    p = normalize_answer(prediction)
    return float(any(p == normalize_answer(g) for g in [gold, *aliases]))


# ---------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------
def load_examples(cfg: TrainConfig) -> list[dict]:
    """The training examples, as the trainer's contract says: dicts ``{id, prompt, answer[, aliases]}``.

    * ``data.path`` is a JSONL of such dicts: read as is;
    * ``data.path`` is a benchmark file (FinQA / HotpotQA / MuSiQue, original or processed) and/or
      ``data.dataset`` names the benchmark: ``tsallis_ref.data.load_benchmark`` then
      ``to_training_examples(ds, data.regime)`` (the warm or cold prompt builder);
    * ``data.dataset`` alone: ``tsallis_ref.data.load_examples`` resolves the benchmark's ``data.split``
      (train / dev) under ``data.data_dir`` (default: the shared samples, ``default_data_dir()``), or a Hub id.

    ``data.context_budget`` caps the context of benchmark prompts (supporting paragraphs kept first).
    """
    d = cfg.data
    rows = None
    if d.path:
        p = Path(d.path)
        if not p.exists():
            raise ConfigError(f"config field `data.path`: file {str(p)!r} does not exist")
        if d.dataset is None and p.suffix == ".jsonl":
            with open(p) as f:
                first = next((json.loads(line) for line in f if line.strip()), None)
            if isinstance(first, dict) and {"id", "prompt", "answer"} <= set(first):
                with open(p) as f:
                    rows = [json.loads(line) for line in f if line.strip()]
    if rows is None:
        try:
            from .data import load_examples as data_load_examples  # type: ignore
        except ImportError:
            raise ConfigError("config fields `data.dataset` / `data.path`: a benchmark file needs tsallis_ref.data, "
                              "which is not available; give a JSONL of {id, prompt, answer} examples as data.path") from None
        try:   # a benchmark file (data.path), or a benchmark name resolved under data.data_dir / a Hub id
            rows = data_load_examples(d.path or d.dataset, split=d.split, data_dir=d.data_dir, regime=d.regime,
                                      limit=d.limit, context_budget=d.context_budget,
                                      dataset=d.dataset if d.path else None,
                                      answer_format=AnswerFormat.from_config(cfg.rollout))
        except ValueError as e:
            field = "data.path" if d.path else "data.dataset / data.split / data.data_dir"
            raise ConfigError(f"config field `{field}`: {e}") from e
    if d.limit is not None:
        rows = rows[: d.limit]
    return validate_examples(rows)


class DataOrder:
    """A seeded order over the examples: one permutation per epoch (``seed + epoch``), resumable from
    ``(epoch, pos)``."""

    def __init__(self, n: int, seed: int, shuffle: bool = True):
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self.epoch, self.pos = 0, 0
        self._perm = self._make(0)

    def _make(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.n)
        return np.random.default_rng(self.seed + epoch).permutation(self.n)

    def next(self, k: int) -> list[int]:
        out = []
        while len(out) < k:
            if self.pos == self.n:
                self.epoch, self.pos = self.epoch + 1, 0
                self._perm = self._make(self.epoch)
            out.append(int(self._perm[self.pos]))
            self.pos += 1
        return out

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos, "order": self._perm.tolist()}

    def load_state_dict(self, st: dict) -> None:
        self.epoch, self.pos = st["epoch"], st["pos"]
        self._perm = np.asarray(st["order"])


# ---------------------------------------------------------------------------------------------------------
# Logging
# ---------------------------------------------------------------------------------------------------------
class MetricsLogger:
    """Metrics as JSONL (one line per step), and to TensorBoard / W&B when requested and installed."""

    def __init__(self, output_dir: Path, cfg: TrainConfig, resume_step: Optional[int] = None):
        self.path = output_dir / "metrics.jsonl"
        if resume_step is None:
            self.path.write_text("")
        else:  # drop the lines a killed run wrote after its last checkpoint
            keep = []
            if self.path.exists():
                for line in self.path.read_text().splitlines():
                    try:
                        if json.loads(line)["step"] <= resume_step:
                            keep.append(line)
                    except (json.JSONDecodeError, KeyError):   # a line cut short by the kill
                        continue
            self.path.write_text("".join(l + "\n" for l in keep))
        self.tb = self.wb = None
        if cfg.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(str(output_dir / "tb"))
            except Exception:
                self.tb = None
        if cfg.wandb:
            try:
                import wandb  # type: ignore
                self.wb = wandb.init(project="tsallis-ref", config=cfg.to_dict(), resume="allow")
            except Exception:
                self.wb = None

    def log(self, step: int, metrics: dict) -> None:
        row = {"step": step, **metrics}
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)) and math.isfinite(v):
                    self.tb.add_scalar(k, v, step)
        if self.wb is not None:
            self.wb.log(metrics, step=step)

    def close(self):
        if self.tb is not None:
            self.tb.close()
        if self.wb is not None:
            self.wb.finish()


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB -> MiB (process peak)


# ---------------------------------------------------------------------------------------------------------
# One step's gradient
# ---------------------------------------------------------------------------------------------------------
@dataclass
class StepOutput:
    loss: float
    logp_z: torch.Tensor          # [B, M] detached
    logp_y: torch.Tensor          # [B, M] detached (gold answer for GARL/PAFT, own answer for GRPO/RLOO)
    indices: Optional[torch.Tensor]
    t_score: float
    t_backward: float
    scored_tokens: int


def precision_for(cfg: TrainConfig, device: torch.device, params) -> tuple[Optional[torch.dtype], bool]:
    """``(autocast dtype or None, whether to scale the loss)`` for a run (``cfg.mixed_precision``).

    ``"auto"`` (or ``true``): on a GPU, autocast in bf16 where the GPU has native bf16 (compute capability
    >= 8: A100, H100, L4, ...) and in fp16 otherwise (a Colab T4 reports bf16 as "supported" through slow
    emulation, so ``torch.cuda.is_bf16_supported()`` is not used); on a CPU, no autocast. ``"bf16"`` /
    ``"fp16"`` force a dtype (on a CPU too, e.g. to test the fp16 path); ``"no"`` (or ``false``) disables it.
    Autocast needs float32 trainable parameters (LoRA adapters are kept in float32). Whenever fp16 enters
    the forward pass (fp16 autocast, or fp16 compute weights: ``model.dtype`` or the 4-bit compute dtype on
    such a GPU) the loss is scaled with a ``torch.amp.GradScaler``, as fp16 gradients underflow otherwise."""
    from .models import compute_dtype, native_bf16
    params = list(params)
    fp32 = bool(params) and all(p.dtype == torch.float32 for p in params)
    mp = {True: "auto", False: "no"}.get(cfg.mixed_precision, cfg.mixed_precision)
    if mp == "no" or not fp32:
        autocast = None
    elif mp == "auto":
        autocast = None if device.type != "cuda" else (torch.bfloat16 if native_bf16(device) else torch.float16)
    else:
        autocast = {"bf16": torch.bfloat16, "fp16": torch.float16}[mp]
    scale = fp32 and torch.float16 in (autocast, compute_dtype(device, cfg.model.dtype))
    return autocast, scale


def autocast_context(device: torch.device, dtype: Optional[torch.dtype]):
    """``torch.autocast`` in ``dtype`` on ``device``, or a no-op context when ``dtype`` is None. The trainer
    generates its rollouts under the same autocast as it scores them (on a GPU, bf16 / fp16 matmuls and KV
    cache instead of the float32 of the trained weights)."""
    import contextlib
    return torch.autocast(device_type=device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def _estimator_loss(m, logp_z, logp_y, logp_tokens, mask, rewards, generator, paft_indices):
    """The method's surrogate for ONE prompt from its M scores (``[1, M]``; GRPO: ``[1, M, T]`` tokens).
    Returns ``(loss, PAFT indices or None)``."""
    if m.name == "garl":
        return E.garl_loss(logp_z, logp_y, m.q, baseline=m.baseline, normalize=m.normalize), None
    if m.name == "paft":
        idx = (E.paft_resample(logp_y, m.K or logp_y.shape[-1], generator=generator) if paft_indices is None
               else paft_indices.to(logp_y.device))
        return E.paft_loss(logp_z, logp_y, m.q, indices=idx, normalize=m.normalize), idx
    if m.name == "rloo":
        return E.rloo_loss(logp_z + logp_y, rewards), None
    return E.grpo_loss(logp_tokens, mask, rewards, clip_eps=m.clip_eps, scale_rewards=m.scale_rewards,
                       loss_agg=m.loss_agg), None


def _rng_get(device: torch.device):
    return (torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None)


def _rng_set(state, device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def accumulate_gradients(model, cfg: TrainConfig, pad_id: int, ro: Rollouts, answers: list[list[int]],
                         rewards: Optional[torch.Tensor] = None, generator: Optional[torch.Generator] = None,
                         autocast_dtype: Optional[torch.dtype] = None,
                         paft_indices: Optional[torch.Tensor] = None, scaler=None) -> StepOutput:
    """Score every sequence and accumulate ``grad`` of the method's surrogate (mean over prompts).

    ``paft_indices[B, K]`` (PAFT only) replaces the importance resampling by given indices (used to check
    another implementation's resampled batch, e.g. the TRL integration's, against this one). ``scaler``: a
    ``torch.amp.GradScaler`` (fp16), applied to what is backpropagated.

    ``answers[i]`` is the answer segment of sequence i (``prefix + y* + EOS`` for GARL/PAFT, the sampled
    answer for GRPO/RLOO). Prompts are processed one at a time. The weights need all M ``logp_y`` of a prompt
    before any gradient can flow, hence two modes (``cfg.optim.two_pass_scoring``), with equal gradients:

    * one pass (default): ONE forward per sequence with its graph; the M graphs of a prompt are kept until
      the core estimator has the M scores, then one backward frees them. Memory grows with M x length.
    * two passes: a no-grad forward gives the M scores; autograd of the estimator with respect to those
      scores gives each score's coefficient ``dL/dlogp`` (for GARL, Eq. 12's ``c_m / M^q``); a second forward,
      micro-batch by micro-batch, backpropagates ``sum(coef * logp)``. One micro-batch's graph at a time, at
      the cost of one more forward per sequence. The random state (LoRA dropout) of each micro-batch is
      replayed, so both forwards see the same masks."""
    m, M = cfg.method, ro.M
    two_pass = cfg.optim.two_pass_scoring
    mbs, chunk = cfg.optim.micro_batch_size, cfg.optim.logits_chunk
    device = next(model.parameters()).device
    B = len(ro.prompt_ids)
    total, lz_all, ly_all, idx_all = 0.0, [], [], []
    t_score = t_bwd = 0.0
    ntok = 0

    def backward(t: torch.Tensor) -> None:
        (scaler.scale(t) if scaler is not None else t).backward()

    def score(sl, prompt_ids):
        return score_sequences(model, [prompt_ids] * (sl.stop - sl.start), ro.rationale_ids[sl], answers[sl],
                               pad_id=pad_id, micro_batch_size=mbs, return_tokens=(m.name == "grpo"),
                               autocast_dtype=autocast_dtype, logits_chunk=chunk)

    for b in range(B):
        sl = slice(b * M, (b + 1) * M)
        rew = rewards[b:b + 1] if rewards is not None else None
        pidx = paft_indices[b:b + 1] if paft_indices is not None else None
        t0 = CLOCK()
        if not two_pass:
            sc = score(sl, ro.prompt_ids[b])
            tokens = (sc.logp_tokens.unsqueeze(0), sc.mask.unsqueeze(0)) if m.name == "grpo" else (None, None)
            logp_z, logp_y = sc.logp_z.unsqueeze(0), sc.logp_y.unsqueeze(0)
            loss, idx = _estimator_loss(m, logp_z, logp_y, *tokens, rew, generator, pidx)
            t2 = CLOCK()
            backward(loss / B)
            ntok += sc.n_tokens
        else:
            # pass 1: scores without graphs (the random state of each micro-batch is kept for pass 2)
            states, parts = [], []
            with torch.no_grad():
                for s in range(sl.start, sl.stop, mbs):
                    states.append(_rng_get(device))
                    parts.append(score(slice(s, min(s + mbs, sl.stop)), ro.prompt_ids[b]))
            end_state = _rng_get(device)
            leaf = lambda t: t.detach().clone().requires_grad_(True)
            logp_z = leaf(torch.cat([p.logp_z for p in parts])).unsqueeze(0)
            logp_y = leaf(torch.cat([p.logp_y for p in parts])).unsqueeze(0)
            tokens = (None, None)
            if m.name == "grpo":
                Tc = max(p.logp_tokens.shape[1] for p in parts)
                pad = lambda t: torch.nn.functional.pad(t, (0, Tc - t.shape[1]))
                tokens = (leaf(torch.cat([pad(p.logp_tokens) for p in parts])).unsqueeze(0),
                          torch.cat([pad(p.mask.to(torch.uint8)) for p in parts]).bool().unsqueeze(0))
            loss, idx = _estimator_loss(m, logp_z, logp_y, *tokens, rew, generator, pidx)
            leaves = [logp_z, logp_y] + ([tokens[0]] if m.name == "grpo" else [])
            coefs = torch.autograd.grad(loss / B, leaves, allow_unused=True)
            coefs = [torch.zeros_like(x) if c is None else c for x, c in zip(leaves, coefs)]
            t2 = CLOCK()
            # pass 2: the same forwards with graphs, one micro-batch at a time, backward of sum(coef * score)
            t_fwd2 = 0.0
            for j, s in enumerate(range(sl.start, sl.stop, mbs)):
                e = min(s + mbs, sl.stop)
                r = slice(s - sl.start, e - sl.start)
                _rng_set(states[j], device)
                ta = CLOCK()
                sc = score(slice(s, e), ro.prompt_ids[b])
                sur = (sc.logp_z * coefs[0][0, r]).sum() + (sc.logp_y * coefs[1][0, r]).sum()
                if m.name == "grpo":
                    ct = coefs[2][0, r, :sc.logp_tokens.shape[1]]
                    sur = sur + (sc.logp_tokens * ct * sc.mask).sum()
                t_fwd2 += CLOCK() - ta
                backward(sur)
                ntok += sc.n_tokens
            _rng_set(end_state, device)
        t3 = CLOCK()
        # scoring time: the forward(s) and the estimator; backward time: the backward(s)
        fwd2 = t_fwd2 if two_pass else 0.0
        t_score += (t2 - t0) + fwd2
        t_bwd += (t3 - t2) - fwd2
        if idx is not None:
            idx_all.append(idx)
        total += float(loss.detach()) / B
        lz_all.append(logp_z.detach())
        ly_all.append(logp_y.detach())
    return StepOutput(loss=total, logp_z=torch.cat(lz_all), logp_y=torch.cat(ly_all),
                      indices=torch.cat(idx_all) if idx_all else None, t_score=t_score, t_backward=t_bwd,
                      scored_tokens=ntok)


def step_metrics(cfg: TrainConfig, out: StepOutput, ro: Rollouts, rewards: Optional[torch.Tensor]) -> dict:
    """The per-step diagnostics explained on the algorithm pages."""
    m = cfg.method
    met: dict = {"loss": out.loss}
    if m.name in ("garl", "paft"):
        ws = E.weight_stats(out.logp_y, m.q, normalize=m.normalize)
        wbar = torch.exp(E.log_mean_weight(out.logp_y))
        met.update({
            "wbar_mean": ws["wbar_mean"], "wbar_std": float(wbar.std()) if wbar.numel() > 1 else 0.0,
            "log_wbar_mean": ws["log_wbar_mean"], "log_wbar_min": ws["log_wbar_min"], "log_wbar_max": ws["log_wbar_max"],
            "log_w_std": float(out.logp_y.double().std(dim=-1).mean()) if out.logp_y.shape[-1] > 1 else 0.0,
            "amp_mean": ws["amp_mean"], "amp_max": ws["amp_max"], "ess_frac": ws["ess_frac"],
        })
        if "max_adv" in ws:
            met["max_adv"] = ws["max_adv"]
        if out.indices is not None:
            uniq = [len(set(r.tolist())) for r in out.indices]
            met["paft_unique_frac"] = float(np.mean(uniq)) / ro.M
    if rewards is not None:
        met["reward_mean"] = float(rewards.mean())
        met["zero_var_frac"] = float((rewards.std(dim=-1) == 0).float().mean()) if rewards.shape[-1] > 1 else 1.0
    met["logp_z_mean"] = float(out.logp_z.mean())
    met["forced_frac"] = float(np.mean(ro.forced))
    met["rationale_len"] = float(np.mean([len(z) for z in ro.rationale_ids]))
    return met


# ---------------------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------------------
def _as_config(config) -> TrainConfig:
    if isinstance(config, TrainConfig):
        return config.validate()
    if isinstance(config, dict):
        return TrainConfig.from_dict(config)
    return TrainConfig.from_yaml(config)


def train(config, *, resume: bool = False, examples: Optional[Sequence[dict]] = None,
          callback: Optional[Callable[[int, dict], None]] = None) -> dict:
    """Train as ``config`` (a TrainConfig, a dict or a YAML path) says; ``examples`` overrides the data config.

    Returns ``{"model", "tokenizer", "metrics" (list of per-step dicts of this process), "step"}``.
    """
    cfg = _as_config(config)
    data = validate_examples(examples) if examples is not None else load_examples(cfg)   # errors before compute
    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    device = resolve_device(cfg.device)
    out_dir = Path(cfg.output_dir)
    ck = load_for_resume(out_dir, cfg.to_dict()) if resume else None   # config checked before anything is written
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg.to_yaml(out_dir / "config.yaml")

    # seeds: python / numpy / torch; PAFT's resampling has its own generator (saved in checkpoints)
    import random
    random.seed(cfg.seed), np.random.seed(cfg.seed), torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed + 7919)

    model, tok = load_model_and_tokenizer(cfg.model, device, seed=cfg.seed)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.optim.lr, betas=tuple(cfg.optim.betas), weight_decay=cfg.optim.weight_decay)
    order = DataOrder(len(data), cfg.seed, cfg.data.shuffle)
    autocast, scale_loss = precision_for(cfg, device, params)
    scaler = torch.amp.GradScaler(device.type, enabled=scale_loss)   # a no-op unless fp16 is in the forward

    # pre-tokenise x* and the teacher-forced answer segment of every example
    enc_x = [encode_prompt(tok, ex["prompt"], chat_template=cfg.model.chat_template,
                           enable_thinking=cfg.model.enable_thinking) for ex in data]
    enc_y = [encode_answer(tok, ex["answer"], cfg.rollout) for ex in data]

    start = 0
    if resume:
        load_trainable_state_dict(model, ck["model"])
        opt.load_state_dict(ck["optimizer"])
        if ck.get("scaler"):
            scaler.load_state_dict(ck["scaler"])
        order.load_state_dict(ck["data"])
        set_rng_state(ck["rng"], gen)
        start = ck["step"]
    logger = MetricsLogger(out_dir, cfg, resume_step=start if resume else None)

    history = []
    bar = None
    if cfg.progress_bar:
        from tqdm.auto import tqdm
        bar = tqdm(total=cfg.steps, initial=start, desc=f"{cfg.method.name}", dynamic_ncols=True)
    for step in range(start + 1, cfg.steps + 1):
        t_start = time.perf_counter()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        COUNTER.reset()
        batch = order.next(cfg.optim.prompts_per_step)

        # 2. rollouts (M per prompt, budget forcing); GRPO / RLOO also sample and verify their answers
        with autocast_context(device, autocast):
            ro = sample_rationales(model, tok, [enc_x[i] for i in batch], cfg.rollout)
        rewards = None
        if cfg.method.name in ("grpo", "rloo"):
            with autocast_context(device, autocast):
                ro = sample_answers(model, tok, ro, cfg.rollout)
            fmt = AnswerFormat.from_config(cfg.rollout)   # the answer read back as the prompt asked for it
            rewards = torch.tensor([fmt.reward(a, data[batch[i // ro.M]]["answer"], data[batch[i // ro.M]].get("aliases", ()))
                                    for i, a in enumerate(ro.answer_text)]).view(len(batch), ro.M)
            answers = ro.answer_ids
        else:
            answers = [enc_y[batch[i // ro.M]] for i in range(len(ro.rationale_ids))]
        t_gen = time.perf_counter() - t_start

        # 3. one scoring pass per sequence (two with optim.two_pass_scoring) + backward through the core
        #    estimator, prompt by prompt
        opt.zero_grad(set_to_none=True)
        so = accumulate_gradients(model, cfg, tok.pad_token_id, ro, answers, rewards, gen, autocast,
                                  scaler=scaler if scaler.is_enabled() else None)

        # 4. clip, step (fp16: unscale first; the scaler skips a step whose gradient overflowed)
        scaler.unscale_(opt)
        gn = torch.nn.utils.clip_grad_norm_(params, cfg.optim.max_grad_norm if cfg.optim.max_grad_norm > 0 else float("inf"))
        scaler.step(opt)
        scaler.update()
        dt = time.perf_counter() - t_start

        met = step_metrics(cfg, so, ro, rewards)
        met.update({"grad_norm": float(gn), "t_generate": t_gen, "t_score": so.t_score, "t_backward": so.t_backward,
                    "t_step": dt, "generated_tokens": ro.n_generated, "scored_tokens": so.scored_tokens,
                    "tokens_per_s": (ro.n_generated + so.scored_tokens) / dt, "forward_passes": COUNTER.calls,
                    "scored_sequences": COUNTER.sequences, "peak_mem_mb": _peak_memory_mb(device),
                    "epoch": order.epoch, "example_ids": [data[i]["id"] for i in batch]})
        if scaler.is_enabled():
            met["loss_scale"] = float(scaler.get_scale())
        logger.log(step, met)
        history.append({"step": step, **met})
        if callback is not None:
            callback(step, met)
        if bar is not None:
            bar.update(1)
            post = {"loss": f"{met['loss']:.3g}", "gn": f"{met['grad_norm']:.2g}"}
            post.update({"wbar": f"{met['wbar_mean']:.2e}"} if "wbar_mean" in met else {"r": f"{met['reward_mean']:.2f}"})
            bar.set_postfix(post)
        if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == cfg.steps:
            save_checkpoint(checkpoint_path(out_dir), {
                "step": step, "model": trainable_state_dict(model), "optimizer": opt.state_dict(),
                "rng": rng_state(gen), "data": order.state_dict(), "config": cfg.to_dict(),
                "scaler": scaler.state_dict() if scaler.is_enabled() else None})
    if bar is not None:
        bar.close()
    logger.close()
    return {"model": model, "tokenizer": tok, "metrics": history, "step": cfg.steps}

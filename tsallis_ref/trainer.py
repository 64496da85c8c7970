"""The training loop: GARL (Algorithm 1), PAFT (Algorithm 2) and the GRPO / RLOO / MaxRL baselines for any
causal LM.

One step (:func:`train_step`), top to bottom:

1. **rollout**: sample M rationales per prompt with budget forcing (``rollout.sample_rationales``);
   the verifier methods (GRPO / RLOO / MaxRL) also sample the model's own answer, read it back by the run's
   answer format and reward it by exact match (``data.AnswerFormat.reward``);
2. **score + backward, one prompt at a time** (:func:`accumulate_gradients`): ONE teacher-forced forward
   pass per sequence ``[x, z_m, a_m]`` (``shared_prefix.score``, micro-batched; with ``optim.shared_prefix``
   each prompt is encoded once and its KV cache reused by its M continuations) gives ``logp_z`` and
   ``logp_y`` with their graphs; the method's estimator (``estimators.ESTIMATORS[method.name]``) turns the
   M values into the prompt's share of the batch's surrogate loss, and one backward accumulates it.
   ``optim.two_pass_scoring`` trades one more forward for memory;
3. clip, optimiser step (fp16: through a GradScaler, see ``precision.precision_for``).

:func:`train` is the loop around it: examples and their order (:mod:`tsallis_ref.batches`), the model, one
:func:`train_step` per step, the metrics sink (:mod:`tsallis_ref.metrics_log`), checkpoints.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch

from . import estimators as E
from .batches import Batch, DataOrder, encode_examples, load_examples
from .checkpoint import checkpoint_path, load_for_resume, rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig, validate_examples
from .data.answer_format import AnswerFormat
from .data.verify import normalize_answer, reward_exact_match as exact_match
from .metrics_log import MetricsLogger
from .models import load_model_and_tokenizer, load_trainable_state_dict, trainable_state_dict
from .precision import (autocast_context, peak_memory_mb, precision_for, reset_peak_memory, resolve_device, rng_get,
                        rng_set, sync)
from .rollout import Rollouts, sample_answers, sample_rationales
from .shared_prefix import score

__all__ = ["train", "train_step", "StepState", "StepOutput", "Gradients", "accumulate_gradients", "step_metrics",
           "load_examples", "normalize_answer", "exact_match", "precision_for", "autocast_context", "DataOrder",
           "MetricsLogger", "Batch", "encode_examples"]

Clock = Callable[[], float]


# ---------------------------------------------------------------------------------------------------------
# One step's gradient
# ---------------------------------------------------------------------------------------------------------
@dataclass
class Gradients:
    """What :func:`accumulate_gradients` leaves besides the ``.grad`` of the parameters: the loss, the
    detached scores ``logp_z[B, M]`` / ``logp_y[B, M]`` (the gold answer for GARL / PAFT, the model's own for the
    verifier methods), PAFT's resampled ``indices[B, K]``, the time spent scoring and in backward, and the
    teacher-forced work done (tokens, forward calls, sequences, and the prompt forwards of shared-prefix
    scoring)."""

    loss: float
    logp_z: torch.Tensor
    logp_y: torch.Tensor
    indices: Optional[torch.Tensor]
    t_score: float
    t_backward: float
    scored_tokens: int
    forward_calls: int = 0
    scored_sequences: int = 0
    prompt_forwards: int = 0


def batch_totals(ro: Rollouts, answers: Sequence[Sequence[int]], rewards: Optional[torch.Tensor]) -> E.BatchTotals:
    """The whole batch's totals that the estimators need when called one prompt at a time."""
    B = len(ro.prompt_ids)
    n_tok = sum(len(z) + len(a) for z, a in zip(ro.rationale_ids, answers))
    std = float(rewards.float().std()) if rewards is not None and rewards.numel() > 1 else None
    return E.BatchTotals(n_prompts=B, n_tokens=n_tok, reward_std=std,
                         max_completion_length=ro.max_completion_length or None)


def accumulate_gradients(model, cfg: TrainConfig, pad_id: int, ro: Rollouts, answers: list[list[int]],
                         rewards: Optional[torch.Tensor] = None, generator: Optional[torch.Generator] = None, *,
                         autocast_dtype: Optional[torch.dtype] = None, paft_indices: Optional[torch.Tensor] = None,
                         scaler=None, clock: Clock = time.perf_counter) -> Gradients:
    """Score every sequence and accumulate ``grad`` of the method's surrogate on the whole batch.

    ``answers[i]`` is the answer segment of sequence i (``prefix + y* + EOS`` for GARL/PAFT, the sampled
    answer for the verifier methods). ``paft_indices[B, K]`` (PAFT only) replaces the importance resampling by
    given indices (used to check another implementation's resampled batch, e.g. the TRL integration's).
    ``scaler``: a ``torch.amp.GradScaler`` (fp16), applied to what is backpropagated. ``clock``: the clock of
    the score / backward split.

    Prompts are processed one at a time; each adds its exact share of the batch loss (the estimator gets the
    batch's totals, :class:`tsallis_ref.estimators.BatchTotals`), so the accumulated gradient is that of the
    estimator on the whole batch whatever the micro-batching. The weights need all M ``logp_y`` of a prompt
    before any gradient can flow, hence two modes (``cfg.optim.two_pass_scoring``), with equal gradients:

    * one pass (default): ONE forward per sequence with its graph; the M graphs of a prompt are kept until
      the estimator has the M scores, then one backward frees them. Memory grows with M x length.
    * two passes: a no-grad forward gives the M scores; autograd of the estimator with respect to those
      scores gives each score's coefficient ``dL/dlogp`` (for GARL, Eq. 12's ``c_m / M^q``); a second forward,
      micro-batch by micro-batch, backpropagates ``sum(coef * logp)``. One micro-batch's graph at a time, at
      the cost of one more forward per sequence. The random state (LoRA dropout) of each micro-batch is
      replayed, so both forwards see the same masks."""
    m, M = cfg.method, ro.M
    spec = E.ESTIMATORS[m.name]
    mbs, chunk = cfg.optim.micro_batch_size, cfg.optim.logits_chunk
    device = next(model.parameters()).device
    totals = batch_totals(ro, answers, rewards)
    out = Gradients(loss=0.0, logp_z=None, logp_y=None, indices=None, t_score=0.0, t_backward=0.0, scored_tokens=0)
    lz_all, ly_all, idx_all = [], [], []

    def backward(t: torch.Tensor) -> None:
        (scaler.scale(t) if scaler is not None else t).backward()

    def score_part(sl: slice, prompt_ids):
        sc = score(model, [prompt_ids] * (sl.stop - sl.start), ro.rationale_ids[sl], answers[sl], pad_id=pad_id,
                   micro_batch_size=mbs, return_tokens=spec.tokens, autocast_dtype=autocast_dtype,
                   logits_chunk=chunk, shared_prefix=cfg.optim.shared_prefix)
        out.forward_calls += sc.forward_calls
        out.scored_sequences += sc.n_sequences
        out.prompt_forwards += sc.prompt_forwards
        out.scored_tokens += sc.n_tokens
        return sc

    def estimate(b: int, logp_z, logp_y, logp_tokens=None, mask=None) -> E.EstimatorOutput:
        inputs = E.EstimatorInputs(logp_z, logp_y, rewards=None if rewards is None else rewards[b:b + 1],
                                   logp_tokens=logp_tokens, mask=mask, generator=generator,
                                   indices=None if paft_indices is None else paft_indices[b:b + 1])
        return spec(inputs, m, totals)

    for b in range(len(ro.prompt_ids)):
        sl = slice(b * M, (b + 1) * M)
        t0 = clock()
        if not cfg.optim.two_pass_scoring:
            sc = score_part(sl, ro.prompt_ids[b])
            tokens = (sc.logp_tokens.unsqueeze(0), sc.mask.unsqueeze(0)) if spec.tokens else ()
            logp_z, logp_y = sc.logp_z.unsqueeze(0), sc.logp_y.unsqueeze(0)
            est = estimate(b, logp_z, logp_y, *tokens)
            t2 = clock()
            backward(est.loss)
            t_fwd2 = 0.0
        else:
            # pass 1: scores without graphs (the random state of each micro-batch is kept for pass 2)
            states, parts = [], []
            with torch.no_grad():
                for s in range(sl.start, sl.stop, mbs):
                    states.append(rng_get(device))
                    parts.append(score_part(slice(s, min(s + mbs, sl.stop)), ro.prompt_ids[b]))
            end_state = rng_get(device)
            leaf = lambda t: t.detach().clone().requires_grad_(True)
            logp_z = leaf(torch.cat([p.logp_z for p in parts])).unsqueeze(0)
            logp_y = leaf(torch.cat([p.logp_y for p in parts])).unsqueeze(0)
            tokens = ()
            if spec.tokens:
                Tc = max(p.logp_tokens.shape[1] for p in parts)
                pad = lambda t: torch.nn.functional.pad(t, (0, Tc - t.shape[1]))
                tokens = (leaf(torch.cat([pad(p.logp_tokens) for p in parts])).unsqueeze(0),
                          torch.cat([pad(p.mask.to(torch.uint8)) for p in parts]).bool().unsqueeze(0))
            est = estimate(b, logp_z, logp_y, *tokens)
            leaves = [logp_z, logp_y] + ([tokens[0]] if spec.tokens else [])
            coefs = torch.autograd.grad(est.loss, leaves, allow_unused=True)
            coefs = [torch.zeros_like(x) if c is None else c for x, c in zip(leaves, coefs)]
            t2 = clock()
            # pass 2: the same forwards with graphs, one micro-batch at a time, backward of sum(coef * score)
            t_fwd2 = 0.0
            for j, s in enumerate(range(sl.start, sl.stop, mbs)):
                e = min(s + mbs, sl.stop)
                r = slice(s - sl.start, e - sl.start)
                rng_set(states[j], device)
                ta = clock()
                sc = score_part(slice(s, e), ro.prompt_ids[b])
                sur = (sc.logp_z * coefs[0][0, r]).sum() + (sc.logp_y * coefs[1][0, r]).sum()
                if spec.tokens:
                    sur = sur + (sc.logp_tokens * coefs[2][0, r, :sc.logp_tokens.shape[1]] * sc.mask).sum()
                t_fwd2 += clock() - ta
                backward(sur)
            rng_set(end_state, device)
        t3 = clock()
        # scoring time: the forward(s) and the estimator; backward time: the backward(s)
        out.t_score += (t2 - t0) + t_fwd2
        out.t_backward += (t3 - t2) - t_fwd2
        if est.indices is not None:
            idx_all.append(est.indices)
        out.loss += float(est.loss.detach())
        lz_all.append(logp_z.detach())
        ly_all.append(logp_y.detach())
    out.logp_z, out.logp_y = torch.cat(lz_all), torch.cat(ly_all)
    out.indices = torch.cat(idx_all) if idx_all else None
    return out


def step_metrics(cfg: TrainConfig, g: Gradients, ro: Rollouts, rewards: Optional[torch.Tensor]) -> dict:
    """The per-step diagnostics of :data:`tsallis_ref.estimators.METRIC_NAMES` explained on the algorithm pages."""
    met = {"loss": g.loss}
    met.update(E.estimator_metrics(E.ESTIMATORS[cfg.method.name], g.logp_z, g.logp_y, rewards, g.indices,
                                   cfg.method))
    met["forced_frac"] = sum(ro.forced) / len(ro.forced)
    met["rationale_len"] = sum(len(z) for z in ro.rationale_ids) / len(ro.rationale_ids)
    return met


# ---------------------------------------------------------------------------------------------------------
# The step
# ---------------------------------------------------------------------------------------------------------
@dataclass
class StepState:
    """What persists from step to step besides the model: the optimiser, the loss scaler (a no-op unless
    fp16 enters the forward pass), PAFT's resampling generator, the autocast dtype and the trained params."""

    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    generator: torch.Generator
    autocast: Optional[torch.dtype]
    params: list = field(default_factory=list)

    @classmethod
    def create(cls, model, cfg: TrainConfig, optimizer: Optional[torch.optim.Optimizer] = None) -> "StepState":
        """AdamW on the trainable parameters (``cfg.optim``) unless ``optimizer`` is given; the precision
        policy of ``precision.precision_for``; the generator seeded by ``cfg.seed``."""
        device = next(model.parameters()).device
        params = [p for p in model.parameters() if p.requires_grad]
        if optimizer is None:
            optimizer = torch.optim.AdamW(params, lr=cfg.optim.lr, betas=tuple(cfg.optim.betas),
                                          weight_decay=cfg.optim.weight_decay)
        autocast, scale_loss = precision_for(cfg, device, params)
        return cls(optimizer=optimizer, scaler=torch.amp.GradScaler(device.type, enabled=scale_loss),
                   generator=torch.Generator().manual_seed(cfg.seed + 7919), autocast=autocast, params=params)


@dataclass
class StepOutput:
    """One step: ``metrics`` (everything logged, :data:`tsallis_ref.estimators.METRIC_NAMES` plus timings,
    throughput, work and memory), the ``rollouts``, the verifier ``rewards[B, M]`` (or None), the
    :class:`Gradients`, ``timings`` (seconds by the step's clock: generate, score, backward, optimizer, step)
    and ``memory`` (peak MiB of the rollout phase and of the training phase, ``precision.peak_memory_mb``)."""

    metrics: dict
    rollouts: Rollouts
    rewards: Optional[torch.Tensor]
    gradients: Gradients
    timings: dict
    memory: dict


def verifier_rewards(ro: Rollouts, batch: Batch, cfg: TrainConfig) -> torch.Tensor:
    """``[B, M]`` binary rewards: each sampled answer, read back by the run's answer format
    (:meth:`tsallis_ref.data.AnswerFormat.reward`, the layout its prompts ask for), matched exactly with the gold
    answer or an alias."""
    fmt = AnswerFormat.from_config(cfg.rollout)
    al = batch.aliases or [()] * len(batch)
    return torch.tensor([fmt.reward(a, batch.answers[ro.prompt_of(i)], al[ro.prompt_of(i)])
                         for i, a in enumerate(ro.answer_text)], dtype=torch.float32).view(len(batch), ro.M)


def train_step(model, tokenizer, batch: Batch, cfg: TrainConfig, state: StepState, *,
               clock: Clock = time.perf_counter) -> StepOutput:
    """One optimiser step on ``batch``: rollouts, gradients, clip, step. ``clock`` times its phases (e.g.
    ``time.process_time`` on a busy shared CPU); the device is synchronised before each reading."""
    spec = E.ESTIMATORS[cfg.method.name]
    device = next(model.parameters()).device
    sync(device)
    reset_peak_memory(device)
    t0 = clock()

    # 1. rollouts (M per prompt, budget forcing); the verifier methods also sample and verify their answers
    with autocast_context(device, state.autocast):
        ro = sample_rationales(model, tokenizer, batch.prompt_ids, cfg.rollout, shared_prefix=cfg.optim.shared_prefix)
        if spec.verifier:
            ro = sample_answers(model, tokenizer, ro, cfg.rollout)
    rewards = verifier_rewards(ro, batch, cfg) if spec.verifier else None
    answers = ro.answer_ids if spec.verifier else [batch.target_ids[ro.prompt_of(i)] for i in range(len(ro.forced))]
    sync(device)
    t_gen = clock() - t0
    mem_gen = peak_memory_mb(device)
    reset_peak_memory(device)

    # 2. one scoring pass per sequence (two with optim.two_pass_scoring) + backward, prompt by prompt
    state.optimizer.zero_grad(set_to_none=True)
    g = accumulate_gradients(model, cfg, tokenizer.pad_token_id, ro, answers, rewards, state.generator,
                             autocast_dtype=state.autocast, scaler=state.scaler if state.scaler.is_enabled() else None,
                             clock=clock)

    # 3. clip, step (fp16: unscale first; the scaler skips a step whose gradient overflowed)
    sync(device)
    t1 = clock()
    state.scaler.unscale_(state.optimizer)
    max_norm = cfg.optim.max_grad_norm if cfg.optim.max_grad_norm > 0 else float("inf")
    gn = torch.nn.utils.clip_grad_norm_(state.params, max_norm)
    state.scaler.step(state.optimizer)
    state.scaler.update()
    sync(device)
    t_end = clock()
    mem_train = peak_memory_mb(device)

    timings = {"generate": t_gen, "score": g.t_score, "backward": g.t_backward, "optimizer": t_end - t1,
               "step": t_end - t0}
    met = step_metrics(cfg, g, ro, rewards)
    met.update({"grad_norm": float(gn), "t_generate": t_gen, "t_score": g.t_score, "t_backward": g.t_backward,
                "t_step": timings["step"], "generated_tokens": ro.n_generated, "scored_tokens": g.scored_tokens,
                "tokens_per_s": (ro.n_generated + g.scored_tokens) / max(timings["step"], 1e-12),
                "forward_passes": g.forward_calls, "prompt_forwards": g.prompt_forwards,
                "prefill_forwards": ro.prefill_forwards, "scored_sequences": g.scored_sequences,
                "generate_calls": ro.generate_calls,
                "peak_mem_mb": max(v for d in (mem_gen, mem_train) for k, v in d.items() if k != "peak_reserved_mb")})
    if state.scaler.is_enabled():
        met["loss_scale"] = float(state.scaler.get_scale())
    return StepOutput(metrics=met, rollouts=ro, rewards=rewards, gradients=g, timings=timings,
                      memory={"generate": mem_gen, "train": mem_train})


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
          callback: Optional[Callable[[int, dict], None]] = None, model=None, tokenizer=None,
          clock: Clock = time.perf_counter) -> dict:
    """Train as ``config`` (a TrainConfig, a dict or a YAML path) says; ``examples`` overrides the data config.

    ``model`` / ``tokenizer``: train this model (e.g. one loaded once for many runs) instead of loading
    ``config.model``. ``callback(step, metrics)`` after each step; ``clock`` times the steps' phases.
    Returns ``{"model", "tokenizer", "metrics" (list of per-step dicts of this process), "step"}``.
    """
    cfg = _as_config(config)
    if (model is None) != (tokenizer is None):
        raise ValueError("train: pass both `model` and `tokenizer`, or neither (then config.model is loaded)")
    data = validate_examples(examples) if examples is not None else load_examples(cfg)   # errors before compute
    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    out_dir = Path(cfg.output_dir)
    ck = load_for_resume(out_dir, cfg.to_dict()) if resume else None   # config checked before anything is written
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg.to_yaml(out_dir / "config.yaml")

    # seeds: python / numpy / torch; PAFT's resampling has its own generator (StepState, saved in checkpoints)
    import random
    import numpy as np
    random.seed(cfg.seed), np.random.seed(cfg.seed), torch.manual_seed(cfg.seed)
    if model is None:
        model, tokenizer = load_model_and_tokenizer(cfg.model, resolve_device(cfg.device), seed=cfg.seed)
    model.train()
    state = StepState.create(model, cfg)
    order = DataOrder(len(data), cfg.seed, cfg.data.shuffle)
    encoded = encode_examples(tokenizer, data, cfg)      # x* and the teacher-forced answer segment, once

    start = 0
    if resume:
        load_trainable_state_dict(model, ck["model"])
        state.optimizer.load_state_dict(ck["optimizer"])
        if ck.get("scaler"):
            state.scaler.load_state_dict(ck["scaler"])
        order.load_state_dict(ck["data"])
        set_rng_state(ck["rng"], state.generator)
        start = ck["step"]
    logger = MetricsLogger(out_dir, cfg, resume_step=start if resume else None)
    bar = None
    if cfg.progress_bar:
        from tqdm.auto import tqdm
        bar = tqdm(total=cfg.steps, initial=start, desc=f"{cfg.method.name}", dynamic_ncols=True)

    history = []
    for step in range(start + 1, cfg.steps + 1):
        idx = order.next(cfg.optim.prompts_per_step)
        out = train_step(model, tokenizer, encoded.select(idx), cfg, state, clock=clock)
        met = {**out.metrics, "epoch": order.epoch, "example_ids": [data[i]["id"] for i in idx]}
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
                "step": step, "model": trainable_state_dict(model), "optimizer": state.optimizer.state_dict(),
                "rng": rng_state(state.generator), "data": order.state_dict(), "config": cfg.to_dict(),
                "scaler": state.scaler.state_dict() if state.scaler.is_enabled() else None})
    if bar is not None:
        bar.close()
    logger.close()
    return {"model": model, "tokenizer": tokenizer, "metrics": history, "step": cfg.steps}

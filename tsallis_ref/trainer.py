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
:func:`train_step` per step, the metrics sink (:mod:`tsallis_ref.metrics_log`), checkpoints, and the paper's
validation protocol (Sec. 7.1, config ``eval``): p@1 / p@k / maj@k on held-out questions at step 0 and every
``eval.every`` steps (:func:`validate`), the checkpoint with the best validation maj@k kept in ``best/``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from . import estimators as E
from .batches import Batch, DataOrder, encode_examples, load_examples
from .checkpoint import checkpoint_path, load_for_resume, rng_state, save_checkpoint, set_rng_state
from .config import ConfigError, TrainConfig, validate_examples
from .data.answer_format import AnswerFormat
from .data.verify import normalize_answer
from .data.verify import reward_exact_match as exact_match
from .metrics_log import MetricsLogger
from .models import load_model_and_tokenizer, load_trainable_state_dict, trainable_state_dict
from .precision import (
    autocast_context,
    peak_memory_mb,
    precision_for,
    reset_peak_memory,
    resolve_device,
    rng_get,
    rng_set,
    sync,
)
from .rollout import Rollouts, sample_answers, sample_rationales
from .schedules import from_config
from .shared_prefix import score

__all__ = [
    "train",
    "train_step",
    "StepState",
    "StepOutput",
    "Gradients",
    "accumulate_gradients",
    "step_metrics",
    "load_examples",
    "normalize_answer",
    "exact_match",
    "precision_for",
    "autocast_context",
    "DataOrder",
    "MetricsLogger",
    "Batch",
    "encode_examples",
    "validate",
    "load_eval_examples",
    "BEST_DIR",
]

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
    return E.BatchTotals(
        n_prompts=B, n_tokens=n_tok, reward_std=std, max_completion_length=ro.max_completion_length or None
    )


def accumulate_gradients(
    model,
    cfg: TrainConfig,
    pad_id: int,
    ro: Rollouts,
    answers: list[list[int]],
    rewards: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
    *,
    autocast_dtype: Optional[torch.dtype] = None,
    paft_indices: Optional[torch.Tensor] = None,
    scaler=None,
    clock: Clock = time.perf_counter,
) -> Gradients:
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
        sc = score(
            model,
            [prompt_ids] * (sl.stop - sl.start),
            ro.rationale_ids[sl],
            answers[sl],
            pad_id=pad_id,
            micro_batch_size=mbs,
            return_tokens=spec.tokens,
            autocast_dtype=autocast_dtype,
            logits_chunk=chunk,
            shared_prefix=cfg.optim.shared_prefix,
        )
        out.forward_calls += sc.forward_calls
        out.scored_sequences += sc.n_sequences
        out.prompt_forwards += sc.prompt_forwards
        out.scored_tokens += sc.n_tokens
        return sc

    def estimate(b: int, logp_z, logp_y, logp_tokens=None, mask=None) -> E.EstimatorOutput:
        inputs = E.EstimatorInputs(
            logp_z,
            logp_y,
            rewards=None if rewards is None else rewards[b : b + 1],
            logp_tokens=logp_tokens,
            mask=mask,
            generator=generator,
            indices=None if paft_indices is None else paft_indices[b : b + 1],
        )
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
                tokens = (
                    leaf(torch.cat([pad(p.logp_tokens) for p in parts])).unsqueeze(0),
                    torch.cat([pad(p.mask.to(torch.uint8)) for p in parts]).bool().unsqueeze(0),
                )
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
                    sur = sur + (sc.logp_tokens * coefs[2][0, r, : sc.logp_tokens.shape[1]] * sc.mask).sum()
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
    met.update(E.estimator_metrics(E.ESTIMATORS[cfg.method.name], g.logp_z, g.logp_y, rewards, g.indices, cfg.method))
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
    def create(cls, model, cfg: TrainConfig, optimizer: Optional[torch.optim.Optimizer] = None) -> StepState:
        """The optimiser of ``cfg.optim.optimizer`` on the trainable parameters (AdamW, or plain SGD without
        momentum) unless ``optimizer`` is given; the precision policy of ``precision.precision_for``; the
        generator seeded by ``cfg.seed``."""
        device = next(model.parameters()).device
        params = [p for p in model.parameters() if p.requires_grad]
        if optimizer is None:
            o = cfg.optim
            if o.optimizer == "sgd":
                optimizer = torch.optim.SGD(params, lr=o.lr, momentum=0.0, weight_decay=o.weight_decay)
            else:
                optimizer = torch.optim.AdamW(
                    params, lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay
                )
        autocast, scale_loss = precision_for(cfg, device, params)
        return cls(
            optimizer=optimizer,
            scaler=torch.amp.GradScaler(device.type, enabled=scale_loss),
            generator=torch.Generator().manual_seed(cfg.seed + 7919),
            autocast=autocast,
            params=params,
        )


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
    (:meth:`tsallis_ref.data.answer_format.AnswerFormat.reward`, the layout its prompts ask for), matched exactly with the gold
    answer or an alias."""
    fmt = AnswerFormat.from_config(cfg.rollout)
    al = batch.aliases or [()] * len(batch)
    return torch.tensor(
        [fmt.reward(a, batch.answers[ro.prompt_of(i)], al[ro.prompt_of(i)]) for i, a in enumerate(ro.answer_text)],
        dtype=torch.float32,
    ).view(len(batch), ro.M)


def train_step(
    model, tokenizer, batch: Batch, cfg: TrainConfig, state: StepState, *, clock: Clock = time.perf_counter
) -> StepOutput:
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
    g = accumulate_gradients(
        model,
        cfg,
        tokenizer.pad_token_id,
        ro,
        answers,
        rewards,
        state.generator,
        autocast_dtype=state.autocast,
        scaler=state.scaler if state.scaler.is_enabled() else None,
        clock=clock,
    )

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

    timings = {
        "generate": t_gen,
        "score": g.t_score,
        "backward": g.t_backward,
        "optimizer": t_end - t1,
        "step": t_end - t0,
    }
    met = step_metrics(cfg, g, ro, rewards)
    met.update(
        {
            "grad_norm": float(gn),
            "t_generate": t_gen,
            "t_score": g.t_score,
            "t_backward": g.t_backward,
            "t_step": timings["step"],
            "generated_tokens": ro.n_generated,
            "scored_tokens": g.scored_tokens,
            "tokens_per_s": (ro.n_generated + g.scored_tokens) / max(timings["step"], 1e-12),
            "forward_passes": g.forward_calls,
            "prompt_forwards": g.prompt_forwards,
            "prefill_forwards": ro.prefill_forwards,
            "scored_sequences": g.scored_sequences,
            "generate_calls": ro.generate_calls,
            "peak_mem_mb": max(v for d in (mem_gen, mem_train) for k, v in d.items() if k != "peak_reserved_mb"),
        }
    )
    if state.scaler.is_enabled():
        met["loss_scale"] = float(state.scaler.get_scale())
    return StepOutput(
        metrics=met,
        rollouts=ro,
        rewards=rewards,
        gradients=g,
        timings=timings,
        memory={"generate": mem_gen, "train": mem_train},
    )


# ---------------------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------------------
def _as_config(config) -> TrainConfig:
    if isinstance(config, TrainConfig):
        return config.validate()
    if isinstance(config, dict):
        return TrainConfig.from_dict(config)
    return TrainConfig.from_yaml(config)


# ---------------------------------------------------------------------------------------------------------
# Validation (paper Sec. 7.1): held-out p@1, p@k, maj@k during training; the best checkpoint by maj@k
# ---------------------------------------------------------------------------------------------------------
BEST_DIR = "best"  #: ``output_dir/best/``: ``trainable.pt`` (the weights) and ``best.json`` (step, metrics)
VAL_KEYS = ("p@1", "p@k", "maj@k")


def load_eval_examples(
    cfg: TrainConfig, train_ids: Sequence[str], examples: Optional[Sequence[dict]] = None
) -> list[dict]:
    """The held-out examples of ``cfg.eval`` (or ``examples``), the first ``eval.n`` of them, checked to share no
    id with the training set: an overlap raises :class:`~tsallis_ref.config.ConfigError` naming the ids."""
    ev = cfg.eval
    if examples is None:
        if ev.path is None and (ev.dataset or cfg.data.dataset) is None:
            raise ConfigError(
                "config field `eval.path`: validation is on (eval.every > 0) but there is no "
                "held-out set: give a JSONL of held-out {id, prompt, answer} examples (eval.path) "
                "or a benchmark (eval.dataset, or data.dataset, with eval.split)"
            )
        # a file (eval.path) is read as the training files are (a JSONL of examples, or a benchmark file whose
        # format is detected); eval.dataset then only names the benchmark metrics (EM / F1, execution accuracy)
        data = dataclasses.replace(
            cfg.data,
            path=ev.path,
            dataset=None if ev.path else ev.dataset or cfg.data.dataset,
            split=ev.split,
            limit=ev.n,
        )
        try:
            examples = load_examples(dataclasses.replace(cfg, data=data))
        except ConfigError as e:
            raise ConfigError(f"held-out set of `eval` (eval.path / eval.dataset / eval.split): {e}") from None
    else:
        examples = validate_examples(examples)
    if ev.n is not None:
        examples = list(examples)[: ev.n]
    overlap = sorted(set(train_ids) & {ex["id"] for ex in examples})
    if overlap:
        shown = ", ".join(repr(i) for i in overlap[:10]) + (
            f" and {len(overlap) - 10} more" if len(overlap) > 10 else ""
        )
        raise ConfigError(
            f"config field `eval`: {len(overlap)} held-out example id(s) are also training ids "
            f"({shown}); validation must use questions the model is not trained on: pick another "
            "eval.split / eval.path, or drop these ids from one of the two sets"
        )
    return [{"aliases": [], **ex} for ex in examples]


def _eval_prompt(tokenizer, prompt: str, cfg: TrainConfig) -> str:
    """The prompt text that tokenises (without added special tokens) to the training prompt's ids x
    (:func:`tsallis_ref.rollout.encode_prompt`): the chat template as training renders it, or the raw text with the
    BOS token the tokenizer adds."""
    if cfg.model.chat_template:
        kw = {} if cfg.model.enable_thinking is None else {"enable_thinking": cfg.model.enable_thinking}
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True, **kw
        )
    with_special = tokenizer(prompt, add_special_tokens=True).input_ids
    without = tokenizer(prompt, add_special_tokens=False).input_ids
    bos = tokenizer.bos_token
    if bos and len(with_special) == len(without) + 1 and with_special[0] == tokenizer.bos_token_id:
        return bos + prompt
    return prompt


def validate(model, tokenizer, examples: Sequence[dict], cfg: TrainConfig, *, progress: bool = False) -> dict:
    """Validation metrics of the current model (paper Sec. 7.1): ``eval.k`` answers per held-out example through
    :func:`tsallis_ref.evaluation.evaluate`, with the run's answer format and budget forcing (the rationale's budget
    is ``rollout.rationale_budget``, the answer's ``eval.max_new_tokens``), the run's sampling temperature / top-p.

    Returns ``{"val/p@1", "val/p@k", "val/maj@k", "val/reward_em", "val/n", "val/k"}`` (in %). The random streams
    of training (python, numpy, torch CPU / CUDA) are saved before and restored after, so a run trains the same
    weights with validation on or off; the model is back in its training mode afterwards."""
    from .evaluation import evaluate

    ev, r = cfg.eval, cfg.rollout
    dataset = (
        (ev.dataset or cfg.data.dataset)
        if (ev.dataset or cfg.data.dataset) in ("finqa", "hotpotqa", "musique")
        else None
    )
    exs = [{**ex, "prompt": _eval_prompt(tokenizer, ex["prompt"], cfg)} for ex in examples]
    saved = rng_state()
    try:
        res = evaluate(
            model,
            tokenizer,
            exs,
            ev.k,
            dataset=dataset,
            judge=ev.judge,
            batch_size=ev.batch_size,
            max_new_tokens=ev.max_new_tokens or r.answer_budget,
            temperature=r.sampling.temperature,
            top_p=r.sampling.top_p,
            seed=ev.seed,
            use_chat_template=False,
            progress=progress,
            think_budget=r.rationale_budget,
            answer_format=r,
        )
    finally:
        set_rng_state(saved)
    agg, k = res.aggregate, ev.k
    out = {
        "val/p@1": agg["p@1"],
        "val/p@k": agg[f"p@{k}"],
        "val/maj@k": agg[f"maj@{k}"],
        "val/reward_em": agg["reward_em"],
    }
    out.update({f"val/{m}": agg[m] for m in ("em", "f1", "exec_acc") if m in agg})
    out.update({"val/n": len(exs), "val/k": k})
    return out


def _write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _save_best(out_dir: Path, model, best: dict) -> None:
    """``best/trainable.pt`` (the trainable weights, an atomic checkpoint) then ``best/best.json`` (step and
    validation metrics, written atomically after the weights, so it never names weights that are not there)."""
    d = out_dir / BEST_DIR
    save_checkpoint(
        d / "trainable.pt", {"step": best["step"], "model": trainable_state_dict(model), "metrics": best["metrics"]}
    )
    _write_json_atomic(d / "best.json", {**best, "criterion": "val/maj@k", "weights": "trainable.pt"})


def train(
    config,
    *,
    resume: bool = False,
    examples: Optional[Sequence[dict]] = None,
    eval_examples: Optional[Sequence[dict]] = None,
    callback: Optional[Callable[[int, dict], None]] = None,
    model=None,
    tokenizer=None,
    clock: Clock = time.perf_counter,
) -> dict:
    """Train as ``config`` (a TrainConfig, a dict or a YAML path) says; ``examples`` overrides the data config,
    ``eval_examples`` the held-out set of ``config.eval``.

    ``model`` / ``tokenizer``: train this model (e.g. one loaded once for many runs) instead of loading
    ``config.model``.

    GARL / PAFT: the q of each step comes from ``method.q_schedule`` (:func:`tsallis_ref.schedules.from_config`;
    null: ``method.q`` at every step), read before the step from the steps taken and the ``wbar_mean`` logged by
    the step before; it is logged as ``q`` and the schedule's state is saved in (and restored from) checkpoints. ``callback(step, metrics)`` after each step; ``clock`` times the steps' phases.

    With ``eval.every > 0`` the model is validated (:func:`validate`) at step 0 (before training), every
    ``eval.every`` steps and at the last step; the ``val/*`` metrics join that step's line of ``metrics.jsonl``
    (step 0 has a line of its own), with ``best_step`` and the validation's wall time ``val/t_s``. The
    checkpoint with the highest validation maj@k (the first one on ties) is kept in ``output_dir/best/`` and
    restored with the run's checkpoint on resume; later validations are still logged, so a collapse after the
    peak stays visible in the curve.

    Returns ``{"model", "tokenizer", "metrics" (list of per-step dicts of this process), "step", "validation"
    (the whole validation curve, ``[{"step", "val/p@1", ...}]``, resumed runs included), "best" (``{"step",
    "metrics"}`` of the best validation, or None), "best_step"}``.
    """
    cfg = _as_config(config)
    if (model is None) != (tokenizer is None):
        raise ValueError("train: pass both `model` and `tokenizer`, or neither (then config.model is loaded)")
    data = validate_examples(examples) if examples is not None else load_examples(cfg)  # errors before compute
    ev = cfg.eval
    held_out = load_eval_examples(cfg, [ex["id"] for ex in data], eval_examples) if ev.every > 0 else None
    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    out_dir = Path(cfg.output_dir)
    ck = load_for_resume(out_dir, cfg.to_dict()) if resume else None  # config checked before anything is written
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
    # the q of each step: method.q_schedule (or the fixed method.q), fed the logged wbar_mean of each step
    schedule = (
        from_config(cfg.method.q_schedule, cfg.method.q) if "q" in E.ESTIMATORS[cfg.method.name].options else None
    )
    order = DataOrder(len(data), cfg.seed, cfg.data.shuffle)
    encoded = encode_examples(tokenizer, data, cfg)  # x* and the teacher-forced answer segment, once

    start = 0
    curve: list[dict] = []
    best: Optional[dict] = None
    if resume:
        load_trainable_state_dict(model, ck["model"])
        state.optimizer.load_state_dict(ck["optimizer"])
        if ck.get("scaler"):
            state.scaler.load_state_dict(ck["scaler"])
        order.load_state_dict(ck["data"])
        set_rng_state(ck["rng"], state.generator)
        start = ck["step"]
        curve = [dict(p) for p in ck.get("validation") or []]
        best = dict(ck["best"]) if ck.get("best") else None
        if schedule is not None and ck.get("q_schedule"):
            schedule.load_state_dict(ck["q_schedule"])
    logger = MetricsLogger(out_dir, cfg, resume_step=start if resume else None)
    bar = None
    if cfg.progress_bar:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, initial=start, desc=f"{cfg.method.name}", dynamic_ncols=True)

    def run_validation(step: int) -> dict:
        nonlocal best
        t0 = time.perf_counter()
        val = validate(model, tokenizer, held_out, cfg)
        t_val = time.perf_counter() - t0
        curve.append({"step": step, **val})
        if best is None or val["val/maj@k"] > best["metrics"]["val/maj@k"]:
            best = {"step": step, "metrics": val}
            _save_best(out_dir, model, best)
        return {**val, "best_step": best["step"], "val/t_s": t_val}  # the time is logged, not in the curve

    history = []
    if held_out is not None and start == 0:
        met0 = run_validation(0)
        logger.log(0, met0)
        history.append({"step": 0, **met0})
    for step in range(start + 1, cfg.steps + 1):
        idx = order.next(cfg.optim.prompts_per_step)
        step_cfg = cfg
        if schedule is not None:
            q = schedule.q(step - 1)
            if q != cfg.method.q:
                step_cfg = dataclasses.replace(cfg, method=dataclasses.replace(cfg.method, q=q))
        out = train_step(model, tokenizer, encoded.select(idx), step_cfg, state, clock=clock)
        met = {**out.metrics, "epoch": order.epoch, "example_ids": [data[i]["id"] for i in idx]}
        if schedule is not None:
            met["q"] = step_cfg.method.q
            schedule.observe(met["wbar_mean"])
        if held_out is not None and (step % ev.every == 0 or step == cfg.steps):
            met.update(run_validation(step))
        logger.log(step, met)
        history.append({"step": step, **met})
        if callback is not None:
            callback(step, met)
        if bar is not None:
            bar.update(1)
            post = {"loss": f"{met['loss']:.3g}", "gn": f"{met['grad_norm']:.2g}"}
            post.update(
                {"wbar": f"{met['wbar_mean']:.2e}"} if "wbar_mean" in met else {"r": f"{met['reward_mean']:.2f}"}
            )
            if "val/maj@k" in met:
                post["val_maj"] = f"{met['val/maj@k']:.1f}"
            bar.set_postfix(post)
        if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == cfg.steps:
            save_checkpoint(
                checkpoint_path(out_dir),
                {
                    "step": step,
                    "model": trainable_state_dict(model),
                    "optimizer": state.optimizer.state_dict(),
                    "rng": rng_state(state.generator),
                    "data": order.state_dict(),
                    "config": cfg.to_dict(),
                    "scaler": state.scaler.state_dict() if state.scaler.is_enabled() else None,
                    "validation": curve,
                    "best": best,
                    "q_schedule": None if schedule is None else schedule.state_dict(),
                },
            )
    if bar is not None:
        bar.close()
    logger.close()
    return {
        "model": model,
        "tokenizer": tokenizer,
        "metrics": history,
        "step": cfg.steps,
        "validation": curve,
        "best": best,
        "best_step": None if best is None else best["step"],
    }

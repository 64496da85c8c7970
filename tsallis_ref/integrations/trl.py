"""GARL and PAFT as TRL trainers (subclasses of ``trl.GRPOTrainer``; tested with ``trl==1.16.0``).

Use this path when one GPU is not enough: everything TRL's ``GRPOTrainer`` does to *produce*
rollouts and to *distribute* training (``accelerate launch`` on several GPUs or nodes, DeepSpeed
ZeRO-2/3, FSDP, vLLM generation, gradient accumulation, PEFT/LoRA, logging, checkpoints) is kept;
only what turns rollouts into a gradient is replaced by the paper's estimators
(:func:`tsallis_ref.estimators.garl_loss`, Sec. 6.1 / Algorithm 1, and
:func:`tsallis_ref.estimators.paft_loss`, Sec. 6.2 / Algorithm 2). The maths lives there; this
module only feeds them ``logp_z[B, M]`` and ``logp_y[B, M]``.

How a rollout becomes ``(logp_z, logp_y)``
------------------------------------------
TRL samples ``M = num_generations`` completions per prompt. For each completion:

* the **rationale** ``z`` is the sampled completion cut at its first EOS and just after the answer marker
  if the model wrote it (the tokens after the marker, i.e. the model's own answer, are ignored: GARL does not
  grade them), the marker tokens appended otherwise (:func:`tsallis_ref.rollout.finish_rationale`);
* the teacher-forced sequence is ``[prompt, z, marker, answer_prefix + y*, (EOS)]`` where ``y*``
  is the gold answer read from the dataset column ``answer_column`` (default ``"answer"``);
* ``logp_z = sum log p(z_t | x, z_<t)`` over the rationale tokens **and the marker tokens** and
  ``logp_y = sum log p(y*_t | x, z, marker, y*_<t)`` over the answer tokens (and the EOS when
  ``answer_eos``). Both sums come from ONE forward pass over the whole sequence.

So ``w_m = exp(logp_y[m]) = p(y* | x, z_m)`` is the likelihood weight of Eq. 7.

The marker belongs to the rationale, as in :mod:`tsallis_ref.rollout` (our own trainer): ending the rationale
is one of the model's sampled decisions, so ``log p(z | x)`` must contain it. Without it
``log p(z|x) + log p(y*|x,z)`` is not ``log p(z, y* | x)`` (the IWAE gradient at q = 1 misses a term) and
the score function ``grad log p(z|x)`` does not have mean zero, which the RLOO baseline needs (Prop. 6.2).
A forced marker (budget exhausted) counts in ``logp_z`` too, in both implementations;
``tests/test_trl_parity.py`` checks that this module's gradient equals our trainer's on the same samples.

The rationale is cut by the same budget-forcing rule as our trainer's, :func:`tsallis_ref.rollout.finish_rationale`
(the shortest prefix whose decoded text contains the marker, which also catches a marker that BPE merged with its
neighbours; the marker tokens appended when it is absent). One difference remains: TRL scores left-padded prompts
without ``position_ids`` (positions shifted by the padding), which is exact for rotary (relative) position
encodings such as Llama's / Qwen's but not for learned absolute ones.

Why there are two forward passes per step (one without gradient)
----------------------------------------------------------------
GARL's and PAFT's per-sample coefficients depend on the *whole group* of ``M`` weights
(``wbar``, the leave-one-out means, PAFT's resampling), but TRL spreads the ``M`` completions of
one prompt over processes (its ``RepeatSampler``) and over gradient-accumulation micro-batches
(it shuffles the generation batch). So, like TRL's own ``old_per_token_logps`` pass, we run one
no-gradient teacher-forced pass right after generation, gather ``logp_y`` across processes and
store with every row the detached ``logp_y`` of its whole group (and, for PAFT, the group's
resampled indices, drawn identically on every rank). In the loss, each local row is put back at
its slot of its group, with the live (differentiable) values at that slot and the stored values
elsewhere, and :func:`~tsallis_ref.estimators.garl_loss` / :func:`~tsallis_ref.estimators.paft_loss` are called on these ``[n, M]`` tensors. The
coefficients are computed from the stored values and the gradient flows only through the live
slot, so summed over all rows, processes and micro-batches the update is exactly the gradient of
``garl_loss(logp_z, logp_y, q)`` (``reduction="mean"``) over the whole generation batch; the
tests check this against a direct computation.

TRL features: what stays valid, what is disabled
------------------------------------------------
Valid: ``accelerate`` multi-GPU / multi-node (DDP), DeepSpeed ZeRO-2/3, FSDP, gradient
accumulation (``gradient_accumulation_steps`` a multiple of ``steps_per_generation``), vLLM
generation (``use_vllm=True``, colocate or server mode, when vLLM is installed), PEFT/LoRA,
gradient checkpointing, bf16, ``log_completions``, checkpoints.

Disabled (a ``ValueError`` at config time, because they do not define the paper's estimators):

* ``beta != 0`` (KL to a reference model: no KL term is described for GARL/PAFT);
* ``num_iterations > 1`` and ``gradient_accumulation_steps % steps_per_generation != 0``: GARL is
  on-policy REINFORCE; reusing samples after an update needs an importance ratio / clipping that
  the paper does not define. Hence the PPO ratio, ``epsilon``/``delta`` clipping, ``loss_type``,
  ``importance_sampling_level``, ``off_policy_mask_threshold`` have no effect;
* ``vllm_importance_sampling_correction`` (defaults to ``False`` here; the vLLM/trainer
  mismatch is not corrected, as in the paper, which samples from the model itself);
* ``mask_truncated_completions``, ``top_entropy_quantile < 1``, entropy bonus.

Meaningless but harmless: ``reward_funcs``. GARL/PAFT use no verifier; reward functions you pass
are evaluated and logged (``rewards/<name>/mean``) as *monitors* only and never enter the
gradient. ``scale_rewards`` and ``multi_objective_aggregation`` only affect those logs.

Sampling ``temperature`` other than 1 samples ``z`` from a tempered model and TRL scores
log-probs under the same temperature, so GARL then targets the tempered model's ``l_q``; the
paper uses the model itself (temperature 1, the default here), and a warning says so.

The surrogate's value (logged as ``loss``) has no meaning; watch ``garl/*`` / ``paft/*`` instead:
``log_wbar_mean`` (log of the estimated P, Sec. 4.1), ``amp_max`` (``wbar^-q``), ``max_adv``
(the amplified advantage ``c_m / M^q`` of Fig. 3), ``ess_frac``, ``logp_z_mean``, ``rationale_len``: the names of
:data:`tsallis_ref.estimators.METRIC_NAMES`, as our trainer logs them.

The completions table (``log_completions=True``) shows what was trained on: TRL fills its ``advantage`` column
with the GRPO advantages of the (monitor) rewards; this module overwrites them, row by row, with the coefficient
each completion's rationale log-probability ``log p(z_m|x)`` gets in the surrogate: GARL's ``coef_z`` (``c_m / M^q``
of Eq. 12 with the RLOO baseline, ``a_m / M^q`` of Eq. 9 without; :func:`~tsallis_ref.estimators.garl_coefficients`),
PAFT's SFT weight ``(n_m / K) wbar^(1-q) / M^q`` (Eq. 14; :func:`~tsallis_ref.estimators.paft_coefficients`). An extra
column ``log_w`` holds ``log w_m = logp_y[m]``, the log-likelihood of the gold answer after the rationale.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

try:
    from trl import GRPOConfig, GRPOTrainer
except ImportError as e:  # pragma: no cover - exercised only without trl
    raise ImportError(
        "tsallis_ref.integrations.trl needs TRL: pip install 'tsallis-ref[trl]' (tested with trl==1.16.0)"
    ) from e

from ..data.answer_format import AnswerFormat
from ..estimators import (
    DEFAULT_Q,
    ESTIMATORS,
    EstimatorInputs,
    estimator_metrics,
    garl_coefficients,
    paft_coefficients,
    paft_resample,
)
from ..losses import check_q
from ..rollout import find_subsequence, finish_rationale

__all__ = [
    "GARLConfig",
    "PAFTConfig",
    "GARLTrainer",
    "PAFTTrainer",
    "TESTED_TRL_VERSION",
    "build_teacher_forced_tail",
    "find_subsequence",
]

TESTED_TRL_VERSION = "1.16.0"


# ----------------------------------------------------------------------------------------------
# Configs
# ----------------------------------------------------------------------------------------------


@dataclass
class GARLConfig(GRPOConfig):
    """``GRPOConfig`` plus the GARL knobs of Sec. 6.1 (names follow the paper).

    Args:
        q: the J_Q exponent in [0, 1] (q = 0: RB-REINFORCE / RLOO, q = 1: IWAE gradient).
        baseline: ``"rloo"`` (Eq. 12, the paper's default) or ``"none"`` (plug-in, Eq. 9).
        normalize: divide by ``M^q`` as Algorithms 1-2 do (a q-dependent learning-rate rescaling).
        answer_column: dataset column holding the gold answer ``y*`` (a string).
        answer_marker: text between rationale and answer (e.g. ``"</think>"`` or ``"\\nAnswer:"``);
            teacher-forced, counted in ``logp_z`` (it ends the rationale), never in ``logp_y``.
        answer_prefix: text put before ``y*`` when it is tokenized (``" "`` so that ``"Answer: 42"``
            tokenizes as a BPE tokenizer would tokenize it in running text).
        answer_eos: append EOS after ``y*`` (counted in ``logp_y``: "answers exactly y*, then stops").
    """

    q: float = field(default=DEFAULT_Q, metadata={"help": "J_Q exponent q in [0, 1] (default: estimators.DEFAULT_Q)."})
    baseline: str = field(default="rloo", metadata={"help": "'rloo' (Eq. 12) or 'none' (Eq. 9)."})
    normalize: bool = field(default=True, metadata={"help": "Divide by M^q (Algorithms 1-2)."})
    answer_column: str = field(default="answer", metadata={"help": "Dataset column with the gold answer y*."})
    answer_marker: str = field(default="\nAnswer:", metadata={"help": "Text between rationale and answer."})
    answer_prefix: str = field(default=" ", metadata={"help": "Text before y* when tokenizing it."})
    answer_eos: bool = field(default=False, metadata={"help": "Append EOS after y* (scored in logp_y)."})
    # TRL's GRPO default is True; it needs an extra forward pass and GARL does not use the ratio.
    vllm_importance_sampling_correction: bool = field(default=False, metadata={"help": "Not supported by GARL/PAFT."})

    def _check_garl(self) -> None:
        check_q(self.q)
        if self.baseline not in ("rloo", "none"):
            raise ValueError(f"baseline must be 'rloo' or 'none'; got {self.baseline!r}")
        if self.beta != 0.0:
            raise ValueError(f"beta = {self.beta}: GARL/PAFT have no KL term to a reference model. Set beta=0.0.")
        if self.num_iterations != 1:
            raise ValueError(
                f"num_iterations = {self.num_iterations}: GARL/PAFT are on-policy estimators with no "
                "importance ratio or clipping. Set num_iterations=1."
            )
        if self.gradient_accumulation_steps % self.steps_per_generation != 0:
            raise ValueError(
                f"gradient_accumulation_steps ({self.gradient_accumulation_steps}) must be a multiple of "
                f"steps_per_generation ({self.steps_per_generation}) so that every rollout is used by the "
                "policy that generated it. Leave steps_per_generation unset (it then equals "
                "gradient_accumulation_steps)."
            )
        if self.vllm_importance_sampling_correction:
            raise ValueError("vllm_importance_sampling_correction=True is not supported by GARL/PAFT; set it to False.")
        if self.mask_truncated_completions:
            raise ValueError(
                "mask_truncated_completions=True is not supported: a truncated rationale is still a "
                "sample of z. Set it to False."
            )
        if self.top_entropy_quantile < 1.0 or self.entropy_coef != 0.0 or self.use_adaptive_entropy:
            raise ValueError(
                "entropy masking / entropy bonuses are not part of GARL/PAFT; set top_entropy_quantile=1.0, "
                "entropy_coef=0.0, use_adaptive_entropy=False."
            )
        if not isinstance(self.answer_marker, str) or not self.answer_marker.strip():
            raise ValueError("answer_marker must be a non-empty string such as '\\nAnswer:' or '</think>'.")
        if not isinstance(self.answer_prefix, str):
            raise ValueError(f"answer_prefix must be a string (e.g. ' ' after 'Answer:'); got {self.answer_prefix!r}")
        if self.temperature != 1.0:
            warnings.warn(
                f"temperature = {self.temperature}: rationales are sampled from, and scored under, the "
                "tempered model, so GARL/PAFT then target l_q of the tempered model (the paper uses 1.0).",
                stacklevel=3,
            )

    def __post_init__(self):
        super().__post_init__()
        self._check_garl()

    @property
    def answer_format(self) -> AnswerFormat:
        """The run's answer format (:class:`tsallis_ref.data.answer_format.AnswerFormat`, the rule our trainer, its prompts,
        rewards and evaluation follow): ``answer_marker`` ends the rationale, ``answer_prefix + y*`` is the target."""
        return AnswerFormat(self.answer_marker, self.answer_prefix)


@dataclass
class PAFTConfig(GARLConfig):
    """``GARLConfig`` plus PAFT's ``K`` (Sec. 6.2): resampled rationales per prompt (``None``: K = M)."""

    K: Optional[int] = field(default=None, metadata={"help": "Resampled rationales per prompt (None: K = M)."})

    def __post_init__(self):
        super().__post_init__()
        if self.K is not None and (isinstance(self.K, bool) or not isinstance(self.K, int) or self.K < 1):
            raise ValueError(f"K must be a positive integer (the paper uses K = M); got {self.K!r}")


# ----------------------------------------------------------------------------------------------
# Sequence construction (pure functions, tested directly)
# ----------------------------------------------------------------------------------------------


def build_teacher_forced_tail(
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    answer_ids: list[list[int]],
    marker_ids: list[int],
    eos_ids: list[int],
    pad_id: int,
    *,
    tokenizer=None,
    marker: Optional[str] = None,
) -> dict[str, torch.Tensor]:
    """Right-padded tails ``[z, y]`` for each row, with masks of the z and y positions; z ends with the marker
    (written or forced), cut by the budget-forcing rule of our trainer, :func:`tsallis_ref.rollout.finish_rationale`
    (with ``tokenizer`` and the ``marker`` text, the marker is found in the decoded text; without, as ``marker_ids``).

    ``completion_ids[n, C]`` / ``completion_mask[n, C]``: TRL's right-padded completions.
    ``answer_ids[i]``: tokens of ``y*`` for row i (with the EOS already appended if wanted).
    Returns ``tail_ids``, ``tail_mask``, ``z_mask``, ``y_mask`` (all ``[n, T]``) on the device of
    ``completion_ids``.
    """
    n = completion_ids.shape[0]
    if len(answer_ids) != n:
        raise ValueError(f"need one gold answer per completion: {len(answer_ids)} answers for {n} completions")
    rows = []
    for i in range(n):
        ids = completion_ids[i][completion_mask[i].bool()].tolist()
        z, _forced = finish_rationale(tokenizer, ids, marker, marker_ids, eos_ids)
        y = list(answer_ids[i])
        if not y:
            raise ValueError(f"row {i}: the gold answer tokenizes to no tokens; check the gold-answer column")
        rows.append((z, y))
    T = max(len(z) + len(y) for z, y in rows)
    tail = torch.full((n, T), pad_id, dtype=torch.long)
    tmask = torch.zeros((n, T), dtype=torch.long)
    zmask = torch.zeros((n, T), dtype=torch.bool)
    ymask = torch.zeros((n, T), dtype=torch.bool)
    for i, (z, y) in enumerate(rows):
        seq = z + y
        L = len(seq)
        tail[i, :L] = torch.tensor(seq, dtype=torch.long)
        tmask[i, :L] = 1
        zmask[i, : len(z)] = True  # the marker belongs to z (see the module docstring)
        ymask[i, len(z) : L] = True
    dev = completion_ids.device
    return {"tail_ids": tail.to(dev), "tail_mask": tmask.to(dev), "z_mask": zmask.to(dev), "y_mask": ymask.to(dev)}


def _no_reward(completions, **kwargs):
    """Placeholder reward for TRL's bookkeeping: GARL/PAFT use no verifier reward."""
    return [0.0] * len(completions)


# ----------------------------------------------------------------------------------------------
# Trainers
# ----------------------------------------------------------------------------------------------


class GARLTrainer(GRPOTrainer):
    """GARL (Sec. 6.1, Algorithm 1) on TRL's GRPO machinery. See the module docstring.

    Same arguments as ``trl.GRPOTrainer`` with ``args`` a :class:`GARLConfig`; ``reward_funcs``
    is optional and used only as logged monitors. The train dataset needs a ``"prompt"`` column
    and the gold-answer column ``args.answer_column``.
    """

    _tag_names = ["trl", "garl", "tsallis-ref"]
    _name = "GARL"
    _estimator = "garl"

    def __init__(self, model, reward_funcs=None, args: Optional[GARLConfig] = None, train_dataset=None, **kwargs):
        if args is None:
            raise ValueError(
                f"{type(self).__name__} needs args={'PAFTConfig' if self._estimator == 'paft' else 'GARLConfig'}(...)"
            )
        want = PAFTConfig if self._estimator == "paft" else GARLConfig
        if not isinstance(args, want):
            raise TypeError(f"{type(self).__name__}: args must be a {want.__name__}; got {type(args).__name__}")
        if (
            train_dataset is not None
            and hasattr(train_dataset, "column_names")
            and train_dataset.column_names is not None
        ):
            if args.answer_column not in train_dataset.column_names:
                raise ValueError(
                    f"the train dataset has no gold-answer column {args.answer_column!r} (columns: "
                    f"{train_dataset.column_names}); add one or set answer_column=..."
                )
        if reward_funcs is None or (isinstance(reward_funcs, list) and not reward_funcs):
            reward_funcs = [_no_reward]
        super().__init__(model, reward_funcs=reward_funcs, args=args, train_dataset=train_dataset, **kwargs)
        # 4-bit layers: generation (eval, no grad) must not repack them into bitsandbytes' CPU inference layout
        from ..models import disable_cpu_4bit_repacking

        disable_cpu_4bit_repacking(self.model)
        tok = self._tokenizer
        self._marker_ids = tok(args.answer_format.end_of_rationale, add_special_tokens=False)["input_ids"]
        if not self._marker_ids:
            raise ValueError(f"answer_marker {args.answer_marker!r} tokenizes to no tokens")
        self._n_generations_done = 0

    # -- teacher forcing -----------------------------------------------------------------------
    def _answer_ids(self, answers: list) -> list[list[int]]:
        tok = self._tokenizer
        fmt = self.args.answer_format
        out = []
        for a in answers:
            if a is None:
                raise ValueError(f"a row has no gold answer in column {self.args.answer_column!r}")
            ids = tok(fmt.target(str(a)), add_special_tokens=False)["input_ids"]
            if self.args.answer_eos:
                ids = ids + [self.eos_token_ids[0]]
            out.append(ids)
        return out

    def _sequence_logps(self, model, prompt_ids, prompt_mask, tail_ids, tail_mask, z_mask, y_mask, batch_size=None):
        """``(logp_z[n], logp_y[n])`` from ONE teacher-forced forward over ``[prompt, z, marker, y*]``."""
        input_ids = torch.cat([prompt_ids, tail_ids], dim=1)
        attention_mask = torch.cat([prompt_mask, tail_mask], dim=1)
        per_token, _, _ = self._get_per_token_logps_and_entropies(
            model, input_ids, attention_mask, tail_ids.size(1), batch_size=batch_size
        )
        logp_z = (per_token * z_mask.to(per_token.dtype)).sum(-1)
        logp_y = (per_token * y_mask.to(per_token.dtype)).sum(-1)
        return logp_z, logp_y

    # -- after TRL generated: build sequences, score y*, gather the groups ---------------------
    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        out = super()._generate_and_score_completions(inputs)
        mode = "train" if self.model.training else "eval"
        M = self.num_generations if mode == "train" else self.num_generations_eval
        col = self.args.answer_column
        if col not in inputs[0]:
            raise ValueError(f"the batch has no gold-answer column {col!r}; columns: {list(inputs[0])}")
        eos_ids = list(self.eos_token_ids)
        tail = build_teacher_forced_tail(
            out["completion_ids"],
            out["completion_mask"],
            self._answer_ids([x[col] for x in inputs]),
            self._marker_ids,
            eos_ids,
            self._tokenizer.pad_token_id,
            tokenizer=self._tokenizer,
            marker=self.args.answer_format.end_of_rationale,
        )
        out.update(tail)
        batch_size = self.args.per_device_train_batch_size if mode == "train" else self.args.per_device_eval_batch_size
        with torch.no_grad():
            logp_z, logp_y = self._sequence_logps(
                self.model,
                out["prompt_ids"],
                out["prompt_mask"],
                tail["tail_ids"],
                tail["tail_mask"],
                tail["z_mask"],
                tail["y_mask"],
                batch_size,
            )
        # Groups of M rows are contiguous in the *global* (gathered) order, as TRL's advantages assume.
        all_logp_y = self.accelerator.gather(logp_y.float().contiguous())
        all_logp_z = self.accelerator.gather(logp_z.float().contiguous())
        if all_logp_y.numel() % M != 0:
            raise RuntimeError(f"gathered {all_logp_y.numel()} rows, not a multiple of M = {M}")
        groups_y = all_logp_y.view(-1, M)
        n = logp_y.shape[0]
        start = self.accelerator.process_index * n
        rows = torch.arange(start, start + n, device=logp_y.device)
        out["group_logp_y"] = groups_y[rows // M]  # [n, M] detached, the whole group of each row
        out["slot"] = rows % M
        self._add_estimator_inputs(out, groups_y, rows // M, mode)
        # diagnostics (paper Fig. 3 and Sec. 4.1), identical on every rank, under the names of
        # estimators.METRIC_NAMES with the method as prefix ("garl/wbar_mean", "paft/unique_frac")
        stats = estimator_metrics(
            ESTIMATORS[self._estimator],
            all_logp_z.view(-1, M),
            groups_y,
            indices=out.get("_group_indices"),
            options=self.args,
        )
        stats["rationale_len"] = self.accelerator.gather(tail["z_mask"].sum(-1).float()).mean().item()
        stats["logp_y_mean"] = all_logp_y.mean().item()
        pre = self._estimator
        for k, v in stats.items():
            if v is not None:
                self._metrics[mode][f"{pre}/{k.removeprefix(pre + '_')}"].append(v)
        self._log_coefficients(groups_y, out.get("_group_indices"))
        out.pop("_group_indices", None)
        self._n_generations_done += 1
        return out

    def _coefficients(self, groups_y: torch.Tensor, indices: Optional[torch.Tensor]) -> torch.Tensor:
        """``[G, M]`` coefficient of each ``log p(z_m|x)`` in the surrogate (GARL: Eq. 12 / Eq. 9)."""
        return garl_coefficients(
            groups_y, self.args.q, baseline=self.args.baseline, normalize=self.args.normalize
        ).coef_z

    def _log_coefficients(self, groups_y: torch.Tensor, indices: Optional[torch.Tensor]) -> None:
        """Replace the GRPO advantages TRL just logged for this generation batch (``self._logs["advantages"]``,
        the completions table's ``advantage`` column, global row order) by the method's coefficients, and log
        ``log w_m`` in the extra column ``log_w``."""
        coef = self._coefficients(groups_y, indices).flatten().tolist()
        adv = self._logs["advantages"]
        n = len(coef)
        if len(adv) < n:  # TRL did not log this batch's advantages: nothing to replace
            return
        for _ in range(n):
            adv.pop()
        adv.extend(coef)
        self._logs["extra"]["log_w"].extend(groups_y.flatten().tolist())

    def _add_estimator_inputs(self, out, groups_y, group_of_row, mode) -> None:
        """Hook for PAFT (the resampled indices); GARL needs nothing more."""

    # -- the loss --------------------------------------------------------------------------------
    def _regroup(self, logp_z, logp_y, inputs):
        """Put each local row back at its slot of its group: live values there, stored values elsewhere.

        ``LY`` has the *stored* value at every slot (the live slot carries the gradient through
        ``logp_y - logp_y.detach()``, which is exactly 0 in value), so the detached coefficients
        the estimators compute are those of the whole group at generation time.
        """
        G = inputs["group_logp_y"].to(logp_y.dtype)
        M = G.shape[1]
        onehot = torch.nn.functional.one_hot(inputs["slot"], M).to(logp_y.dtype)
        LY = G + onehot * (logp_y - logp_y.detach()).unsqueeze(1)
        LZ = onehot * logp_z.unsqueeze(1)
        return LZ, LY, M

    def _estimator_loss(self, LZ, LY, inputs):
        """The sum over the rows of the method's per-prompt surrogates (``estimators.ESTIMATORS``)."""
        idx = inputs["paft_indices"] if self._estimator == "paft" else None
        out = ESTIMATORS[self._estimator](EstimatorInputs(LZ, LY, indices=idx), self.args)
        return out.loss * LZ.shape[0]

    def _compute_loss(self, model, inputs):
        logp_z, logp_y = self._sequence_logps(
            model,
            inputs["prompt_ids"],
            inputs["prompt_mask"],
            inputs["tail_ids"],
            inputs["tail_mask"],
            inputs["z_mask"],
            inputs["y_mask"],
        )
        LZ, LY, M = self._regroup(logp_z, logp_y, inputs)
        n = logp_z.shape[0]
        mode = "train" if self.model.training else "eval"
        S = self.current_gradient_accumulation_steps if mode == "train" else 1
        # Per row the estimator's sum has weight 1/M; the mean over the B = P*S*n/M prompts of the generation
        # batch, after DDP averages over P processes and accumulation sums S micro-batches, needs M/(S*n).
        loss = self._estimator_loss(LZ, LY, inputs) * (M / (S * n))
        self._metrics[mode][f"{self._estimator}/surrogate"].append(
            self.accelerator.gather(loss.detach().reshape(1) * S).mean().item()
        )
        return loss


class PAFTTrainer(GARLTrainer):
    """PAFT (Sec. 6.2, Algorithm 2) on TRL's GRPO machinery.

    The K importance-resampled indices of each group are drawn once per generation batch from the
    gathered weights with a generator seeded by ``(args.seed, generation count)``, so every rank
    draws the same ones. Teacher forcing runs over the M sampled rationales weighted by how often
    each was resampled, which equals SFT on the K resampled copies (duplicates cost nothing extra).
    """

    _tag_names = ["trl", "paft", "tsallis-ref"]
    _name = "PAFT"
    _estimator = "paft"

    def _add_estimator_inputs(self, out, groups_y, group_of_row, mode) -> None:
        M = groups_y.shape[1]
        K = self.args.K or M
        h = hashlib.sha256(f"paft:{self.args.seed}:{self._n_generations_done}:{mode}".encode()).digest()
        gen = torch.Generator(device="cpu").manual_seed(int.from_bytes(h[:8], "little") % (2**63))
        idx = paft_resample(groups_y.detach().double().cpu(), K, generator=gen)  # [G, K]
        out["paft_indices"] = idx.to(groups_y.device)[group_of_row]  # [n, K]
        out["_group_indices"] = idx  # for the diagnostics (paft/unique_frac)

    def _coefficients(self, groups_y: torch.Tensor, indices: Optional[torch.Tensor]) -> torch.Tensor:
        """``[G, M]`` PAFT's SFT weight of each rationale, ``(n_m / K) wbar^(1-q) / M^q`` (Eq. 14)."""
        return paft_coefficients(
            groups_y.detach().double().cpu(), self.args.q, indices.cpu(), normalize=self.args.normalize
        )

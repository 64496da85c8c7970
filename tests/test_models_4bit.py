"""4-bit NF4 + LoRA on the CPU: a training forward never runs on bitsandbytes' CPU inference layout.

bitsandbytes repacks a ``Linear4bit`` weight in place the first time it runs in eval mode without gradients on a
CPU that reports AVX512-BF16; the training pass after a generation would then run through a kernel without
autograd. :func:`tsallis_ref.models.disable_cpu_4bit_repacking` (called by ``load_model_and_tokenizer``) rules
that out on every CPU.
"""

import pytest
import torch

from tsallis_ref.config import LoRAConfig, ModelConfig
from tsallis_ref.models import disable_cpu_4bit_repacking, load_model_and_tokenizer

bnb = pytest.importorskip("bitsandbytes")

# SmolLM2-135M's layer shapes (hidden 576, 9 heads, 3 KV heads, MLP 1536), two layers only
SMOLLM2_SHAPE = {
    "hidden_size": 576,
    "num_hidden_layers": 2,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "intermediate_size": 1536,
}


def _load(**tiny):
    mcfg = ModelConfig(
        name_or_path="tiny",
        load_in_4bit=True,
        lora=LoRAConfig(enabled=True, r=4, alpha=8),
        tiny=dict(SMOLLM2_SHAPE, **tiny),
    )
    return load_model_and_tokenizer(mcfg, device="cpu", seed=0)


def _linear4bit(model):
    return [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]


def _lora_grads(model, ids):
    model.train()
    model.zero_grad(set_to_none=True)
    out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad and p.grad is not None}


@pytest.fixture(scope="module")
def model_tok():
    return _load()


def test_lora_gradients_after_a_no_grad_generation_equal_those_without(model_tok):
    model, tok = model_tok
    ids = torch.tensor([tok.encode("the answer is 42, said the model")])
    before = _lora_grads(model, ids)
    assert before and all("lora_" in n for n in before)
    # one round of generation, as the trainer's rollout does: eval mode, no gradients
    model.eval()
    with torch.no_grad():
        model.generate(input_ids=ids[:, :6], max_new_tokens=4, do_sample=False)
    after = _lora_grads(model, ids)
    assert before.keys() == after.keys()
    for n in before:
        scale = float(before[n].norm()) or 1.0
        rel = float((after[n] - before[n]).norm()) / scale
        assert rel < 1e-5, f"{n}: LoRA gradient changed by {rel:.3g} (relative norm) after a no-grad generation"
    assert all(not getattr(m.weight.quant_state, "packing_format_for_cpu", False) for m in _linear4bit(model))
    # the B matrices start at zero, so the A gradients vanish; the B gradients carry the check
    assert any(float(g.abs().max()) > 0 for n, g in after.items() if "lora_B" in n)


def test_the_guard_is_in_place_whatever_the_cpu(model_tok):
    model, _ = model_tok
    layers = _linear4bit(model)
    assert layers, "the 4-bit model holds no Linear4bit"
    for m in layers:
        if hasattr(m, "support_avx512bf16_for_cpu"):  # bitsandbytes versions with the CPU repacking
            assert m.support_avx512bf16_for_cpu is False
        assert not getattr(m.weight.quant_state, "packing_format_for_cpu", False)


def test_a_repacked_layer_is_restored():
    F = pytest.importorskip("bitsandbytes.functional")
    if not hasattr(F, "_convert_weight_packed_for_cpu"):
        pytest.skip(f"bitsandbytes {bnb.__version__} has no CPU packed layout")
    # the conversion itself is plain torch (only the packed matmul needs AVX512-BF16), so it runs on any CPU
    model, tok = _load(num_hidden_layers=1)
    layer = _linear4bit(model)[0]
    x = torch.randn(3, layer.in_features)
    model.train()
    with torch.no_grad():
        y0 = layer(x)
    shape0 = tuple(layer.weight.data.shape)
    layer.weight.data, state = F._convert_weight_packed_for_cpu(layer.weight.data, layer.weight.quant_state)
    assert state.packing_format_for_cpu and tuple(layer.weight.data.shape) != shape0
    layer.support_avx512bf16_for_cpu = True  # as bitsandbytes sets it on an AVX512-BF16 CPU
    n = disable_cpu_4bit_repacking(model)
    assert n == len(_linear4bit(model))
    assert layer.support_avx512bf16_for_cpu is False
    assert not layer.weight.quant_state.packing_format_for_cpu
    assert layer.quant_state is layer.weight.quant_state
    assert tuple(layer.weight.data.shape) == shape0
    with torch.no_grad():
        y1 = layer(x)
    # the packing rounds the scales (absmax) to bf16 and the inverse re-quantises them: equal up to that rounding
    rel = float((y1 - y0).norm() / y0.norm())
    assert rel < 2e-2, f"restored layer's output differs by {rel:.3g} (relative norm)"


def test_guard_on_a_model_without_4bit_layers_is_a_no_op():
    from tsallis_ref.models import tiny_model, tiny_tokenizer

    model = tiny_model(tiny_tokenizer())
    w = model.lm_head.weight.detach().clone()
    assert disable_cpu_4bit_repacking(model) == 0
    assert torch.equal(model.lm_head.weight, w)


def test_loading_4bit_logs_no_notice_about_the_unused_cpu_kernel():
    """On a CPU that reports AVX512-BF16, importing bitsandbytes logs that an optional Hub kernel for the CPU
    inference layout is missing; the library turns that layout off, so its 4-bit path imports quietly."""
    import subprocess
    import sys

    code = (
        "from tsallis_ref.config import LoRAConfig, ModelConfig\n"
        "from tsallis_ref.models import load_model_and_tokenizer\n"
        "cfg = ModelConfig(name_or_path='tiny', load_in_4bit=True, lora=LoRAConfig(enabled=True, r=4, alpha=8))\n"
        "load_model_and_tokenizer(cfg, device='cpu', seed=0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "gemm_4bit_forward" not in out.stderr + out.stdout

"""Step time, throughput and peak memory of one training step at the paper's scale (issue 5, section 5).

Builds the policy as the trainer does (4-bit NF4 + LoRA, gradient checkpointing) and runs full steps of one
method (budget-forced rollouts, one scoring pass (two with --two-pass), backward, an AdamW step on the adapter) for each requested
(M, rationale budget), reporting generate / score / backward seconds, generated and scored tokens per second
and the peak GPU memory of the rollout phase and of the scoring + backward + optimiser phase separately
(``torch.cuda.max_memory_allocated`` and ``max_memory_reserved``; on the CPU the process's peak resident
memory, which never goes down, so there the second figure includes the first). A setting that runs out of memory is reported as ``OOM`` and the next one runs.

Where no weights can travel (no hub), ``--model arch:qwen3-0.6b`` builds Qwen3-0.6B's architecture with random
weights (``tsallis_ref.models.ARCHITECTURES``): a step costs what the shapes cost, and a random model almost
never samples EOS, so every rationale runs to its budget (the worst case). Prompts are ``--prompt-tokens``
tokens long. With a real checkpoint, pass its hub id or folder instead.

    # the paper's set-up on one GPU: M = 32, HotpotQA's budget 3072 - 128, then smaller settings
    python benchmarks/gpu_step.py --model arch:qwen3-0.6b --M 32 16 8 --rationale-budget 2944 1920 896 \\
        --prompt-tokens 1024 --json runs/gpu_step.json
    # the same with the memory-bounded scoring (one micro-batch's graph at a time)
    python benchmarks/gpu_step.py --model arch:qwen3-0.6b --M 32 16 8 --rationale-budget 2944 1920 896 \
        --prompt-tokens 1024 --two-pass --json runs/gpu_step_two_pass.json
    # a 16 GB Colab T4 has no native bf16: "auto" picks fp16 compute + autocast with loss scaling there;
    # on an A100 / H100 the same T4 arithmetic can be forced with
    python benchmarks/gpu_step.py --model arch:qwen3-0.6b --dtype float16 --mixed-precision fp16 ...
    # CPU smoke run (tiny shapes)
    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/gpu_step.py --tiny-arch --M 4 --rationale-budget 16 \\
        --prompt-tokens 32 --steps 1
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import platform
import sys

import torch

from tsallis_ref.config import TrainConfig
from tsallis_ref.metrics_log import write_json
from tsallis_ref.models import load_model_and_tokenizer, resolve_device
from tsallis_ref.precision import peak_memory_mb
from tsallis_ref.rollout import encode_answer
from tsallis_ref.trainer import Batch, StepState, train_step

#: small shapes of the same architecture, for a CPU smoke run of this script
TINY_ARCH = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    vocab_size=1024,
)


def _mean(xs) -> float:
    xs = list(xs)
    return sum(xs) / len(xs)


def _hardware(device: torch.device) -> str:
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        return f"{p.name} ({p.total_memory / 2**30:.0f} GiB), torch {torch.__version__}, CUDA {torch.version.cuda}"
    return f"CPU {platform.machine()} ({torch.get_num_threads()} threads), torch {torch.__version__}"


def run_setting(a, M: int, budget: int, device: torch.device) -> dict:
    cfg = TrainConfig.from_dict(
        {
            "method": {"name": a.method, "q": a.q},
            "model": {
                "name_or_path": a.model,
                "load_in_4bit": not a.no_4bit,
                "dtype": a.dtype,
                "lora": {"enabled": True, "r": a.lora_r, "alpha": 2 * a.lora_r},
                "gradient_checkpointing": not a.no_grad_ckpt,
                "arch_overrides": TINY_ARCH if a.tiny_arch else {},
            },
            "rollout": {
                "M": M,
                "rationale_budget": budget,
                "answer_budget": a.answer_tokens,
                "end_of_rationale": "</think>",
                "answer_prefix": "\n\n",
                "generation_batch_size": a.generation_batch,
            },
            "optim": {
                "micro_batch_size": a.micro_batch,
                "prompts_per_step": a.prompts,
                "lr": 1e-5,
                "two_pass_scoring": a.two_pass,
            },
            "mixed_precision": a.mixed_precision,
            "data": {"path": "unused"},
            "device": str(device),
        }
    )
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    model, tok = load_model_and_tokenizer(cfg.model, device, seed=0)
    model.train()
    g = torch.Generator().manual_seed(0)
    vocab = [i for i in range(len(tok)) if i not in tok.all_special_ids]
    xs = [[vocab[int(j)] for j in torch.randint(len(vocab), (a.prompt_tokens,), generator=g)] for _ in range(a.prompts)]
    gold = "42"
    ys = [encode_answer(tok, gold, cfg.rollout) for _ in xs]
    state = StepState.create(model, cfg)  # AdamW on the adapter, the run's precision policy
    batch = Batch(
        ids=[str(i) for i in range(len(xs))],
        prompt_ids=xs,
        target_ids=ys,
        answers=[gold] * len(xs),
        aliases=[()] * len(xs),
    )
    steps = []
    warm = dataclasses.replace(
        cfg, rollout=dataclasses.replace(cfg.rollout, rationale_budget=min(budget, a.warmup_budget))
    )
    for s in range(a.steps + 1):  # step 0 warms up (allocator, kernels) on short rollouts; not recorded
        out = train_step(model, tok, batch, cfg if s > 0 else warm, state)  # the trainer's own step
        if s == 0:
            continue
        t, ro = out.timings, out.rollouts
        steps.append(
            {
                "generate_s": t["generate"],
                "score_s": t["score"],
                "backward_s": t["backward"],
                "optim_s": t["optimizer"],
                "step_s": t["step"],
                "generated_tokens": ro.n_generated,
                "scored_tokens": out.gradients.scored_tokens,
                "generated_tok_per_s": ro.n_generated / t["generate"],
                "scored_tok_per_s": out.gradients.scored_tokens / max(t["score"] + t["backward"], 1e-9),
                "rationale_len_mean": sum(map(len, ro.rationale_ids)) / len(ro.rationale_ids),
                **{f"generate_{k}": v for k, v in out.memory["generate"].items()},
                **{f"train_{k}": v for k, v in out.memory["train"].items()},
            }
        )
    autocast, scale_loss = state.autocast, state.scaler.is_enabled()
    rec = {
        "M": M,
        "rationale_budget": budget,
        **{
            k: min(d[k] for d in steps)
            if k.endswith("_s")
            else (max if k.endswith("_mb") else _mean)(d[k] for d in steps)
            for k in steps[0]
        },
        "autocast": str(autocast),
        "loss_scaling": scale_loss,
        "steps": steps,
    }
    del model, state
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rec


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="arch:qwen3-0.6b", help="arch:<key>, a hub id or a local folder")
    ap.add_argument("--tiny-arch", action="store_true", help="shrink the arch: model (CPU smoke run)")
    ap.add_argument("--method", default="garl", choices=["garl", "paft", "grpo", "rloo"])
    ap.add_argument("--q", type=float, default=0.75)
    ap.add_argument("--M", type=int, nargs="+", default=[32])
    ap.add_argument(
        "--rationale-budget",
        type=int,
        nargs="+",
        default=[2944],
        help="one per --M value, or one for all (HotpotQA: 3072 - 128)",
    )
    ap.add_argument("--prompt-tokens", type=int, default=1024)
    ap.add_argument("--answer-tokens", type=int, default=128, help="answer budget (GRPO/RLOO sample it)")
    ap.add_argument("--prompts", type=int, default=1, help="prompts per step")
    ap.add_argument("--micro-batch", type=int, default=8)
    ap.add_argument(
        "--generation-batch",
        default="auto",
        help="sequences per generate call: an integer (0 = all) or 'auto' (what free GPU memory holds)",
    )
    ap.add_argument(
        "--two-pass",
        action="store_true",
        help="optim.two_pass_scoring: a no-grad scoring pass, then one micro-batch's graph at a time",
    )
    ap.add_argument("--mixed-precision", default="auto", choices=["auto", "bf16", "fp16", "no"])
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float16", "float32"])
    ap.add_argument("--no-4bit", action="store_true")
    ap.add_argument("--no-grad-ckpt", action="store_true")
    ap.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up step")
    ap.add_argument("--warmup-budget", type=int, default=32, help="rationale budget of the (untimed) warm-up step")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    if a.generation_batch != "auto":
        a.generation_batch = int(a.generation_batch)
    budgets = a.rationale_budget * len(a.M) if len(a.rationale_budget) == 1 else a.rationale_budget
    if len(budgets) != len(a.M):
        ap.error("give one --rationale-budget, or one per --M value")
    device = resolve_device(a.device)
    head = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "hardware": _hardware(device),
        "command": " ".join(["python", "benchmarks/gpu_step.py"] + (argv or sys.argv[1:])),
        "args": vars(a),
    }
    print(f"{head['date']}  {head['hardware']}\n{head['command']}")
    print(
        f"{'M':>4} {'budget':>6} {'step s':>8} {'gen s':>8} {'score s':>8} {'bwd s':>8} {'gen tok/s':>10} "
        f"{'scored tok/s':>12} {'gen peak MiB':>12} {'train peak MiB':>14} {'peak resv MiB':>13} {'rat. len':>8}"
    )
    rows = []
    for M, budget in zip(a.M, budgets):
        try:
            r = run_setting(a, M, budget, device)
        except torch.OutOfMemoryError as e:
            r = {"M": M, "rationale_budget": budget, "oom": str(e).split("\n")[0], **peak_memory_mb(device)}
        if "oom" in r:
            gc.collect()
            torch.cuda.empty_cache()
            print(f"{M:4d} {budget:6d}  OOM ({r['oom'][:80]})")
            rows.append(r)
            continue
        nan = float("nan")
        gen = r.get("generate_peak_allocated_mb", r.get("generate_peak_rss_mb", nan))
        trn = r.get("train_peak_allocated_mb", r.get("train_peak_rss_mb", nan))
        resv = max(r.get("generate_peak_reserved_mb", nan), r.get("train_peak_reserved_mb", nan))
        print(
            f"{M:4d} {budget:6d} {r['step_s']:8.2f} {r['generate_s']:8.2f} {r['score_s']:8.2f} {r['backward_s']:8.2f} "
            f"{r['generated_tok_per_s']:10.0f} {r['scored_tok_per_s']:12.0f} {gen:12.0f} {trn:14.0f} {resv:13.0f} "
            f"{r['rationale_len_mean']:8.0f}"
        )
        rows.append(r)
    out = {**head, "rows": rows}
    if a.json:
        write_json(a.json, out)
    return out


if __name__ == "__main__":
    main(sys.argv[1:])

"""Peak memory of the scoring + backward phase: one pass vs two passes, and the chunked lm head (CPU).

The trainer's step keeps, in its default one-pass mode, the autograd graphs of all M sequences of a prompt
until the weights are known; ``optim.two_pass_scoring`` scores without graphs first and then runs forward +
backward one micro-batch at a time; ``optim.logits_chunk`` bounds how many tokens' logits exist at once.
This script measures what each costs, on the CPU, with a Llama-shaped random model (vocabulary 32k, so that
the logits matter as they do for real models) and fixed random rationales (no generation: only the scoring
phase is measured). Each setting runs in its own process; the figure is the growth of the process's peak
resident memory (``VmHWM``, reset through ``/proc/self/clear_refs`` right before the phase) during ONE call
of :func:`tsallis_ref.trainer.accumulate_gradients`. Times are CPU times of that call (process_time), so a
busy shared CPU does not distort the ratios.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/score_memory.py --json runs/score_memory.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
import time

SETTINGS = [  # (label, two_pass, logits_chunk)
    ("one pass, whole-sequence logits", False, 10**9),
    ("one pass, logits in chunks of 1024", False, 1024),
    ("two passes, logits in chunks of 1024", True, 1024),
]


def _vm_hwm_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def _reset_hwm() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def child(M: int, two_pass: bool, chunk: int, a) -> dict:
    import torch

    torch.set_num_threads(1)
    from transformers import LlamaConfig, LlamaForCausalLM

    from tsallis_ref.config import TrainConfig
    from tsallis_ref.rollout import Rollouts
    from tsallis_ref.trainer import accumulate_gradients

    torch.manual_seed(0)
    conf = LlamaConfig(
        vocab_size=a.vocab,
        hidden_size=a.hidden,
        intermediate_size=4 * a.hidden,
        num_hidden_layers=a.layers,
        num_attention_heads=8,
        num_key_value_heads=4,
        max_position_embeddings=a.prompt_tokens + a.rationale_tokens + 16,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(conf).train()
    make_cfg = lambda m: TrainConfig.from_dict(
        {
            "method": {"name": "garl", "q": 0.75},
            "model": {"name_or_path": "tiny"},
            "rollout": {"M": m, "rationale_budget": a.rationale_tokens, "answer_budget": 8},
            "optim": {"micro_batch_size": a.micro_batch, "two_pass_scoring": two_pass, "logits_chunk": chunk},
            "data": {"path": "unused"},
            "device": "cpu",
        }
    )
    cfg = make_cfg(M)
    g = torch.Generator().manual_seed(1)
    rand = lambda n: torch.randint(10, a.vocab, (n,), generator=g).tolist()
    x = rand(a.prompt_tokens)
    ro = Rollouts(prompt_ids=[x], M=M, rationale_ids=[rand(a.rationale_tokens) for _ in range(M)], forced=[True] * M)
    answers = [rand(4) for _ in range(M)]
    # warm-up on a small batch (allocator, lazy init), then the measured call
    warm = Rollouts(prompt_ids=[x[:8]], M=2, rationale_ids=ro.rationale_ids[:2], forced=[True] * 2)
    accumulate_gradients(model, make_cfg(2), 0, warm, answers[:2])
    model.zero_grad(set_to_none=False)  # keep the .grad buffers: they are not part of the comparison
    base = _vm_hwm_kib()
    _reset_hwm()
    before = _vm_hwm_kib()
    t0 = time.process_time()
    accumulate_gradients(model, cfg, 0, ro, answers)
    cpu_s = time.process_time() - t0
    peak = _vm_hwm_kib()
    return {
        "M": M,
        "two_pass": two_pass,
        "logits_chunk": chunk,
        "peak_growth_mib": (peak - before) / 1024,
        "rss_before_mib": before / 1024,
        "hwm_before_reset_mib": base / 1024,
        "cpu_s": cpu_s,
        "scored_tokens": M * (a.prompt_tokens + a.rationale_tokens + 4),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--M", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--vocab", type=int, default=32768)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--rationale-tokens", type=int, default=448)
    ap.add_argument("--micro-batch", type=int, default=4)
    ap.add_argument("--json", default=None)
    ap.add_argument("--child", nargs=3, metavar=("M", "TWO_PASS", "CHUNK"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        r = child(int(a.child[0]), a.child[1] == "1", int(a.child[2]), a)
        print("RESULT " + json.dumps(r))
        return r
    head = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} CPU, 1 torch thread, {platform.python_version()}",
        "command": " ".join(
            ["python", "benchmarks/score_memory.py"] + list(argv if argv is not None else sys.argv[1:])
        ),
    }
    print(f"{head['date']}  {head['machine']}\n{head['command']}")
    print(
        f"model: Llama-shaped, vocab {a.vocab}, hidden {a.hidden}, {a.layers} layers; one prompt of "
        f"{a.prompt_tokens} tokens, rationales of {a.rationale_tokens} tokens, micro-batch {a.micro_batch}"
    )
    print(f"{'M':>4}  {'setting':38} {'peak growth MiB':>15} {'CPU s':>7}")
    rows = []
    passthrough = [
        f"--{k.replace('_', '-')}={v}"
        for k, v in vars(a).items()
        if k in ("vocab", "hidden", "layers", "prompt_tokens", "rationale_tokens", "micro_batch")
    ]
    for M in a.M:
        for label, two, chunk in SETTINGS:
            cmd = [sys.executable, __file__, "--child", str(M), "1" if two else "0", str(chunk)] + passthrough
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            r = json.loads(next(l for l in out.splitlines() if l.startswith("RESULT "))[7:])
            r["setting"] = label
            rows.append(r)
            print(f"{M:4d}  {label:38} {r['peak_growth_mib']:15.0f} {r['cpu_s']:7.1f}")
    for M in a.M:
        sub = {r["setting"]: r for r in rows if r["M"] == M}
        one, ch, two = (sub[s[0]] for s in SETTINGS)
        print(
            f"M={M}: chunked head {one['peak_growth_mib'] / max(ch['peak_growth_mib'], 1e-9):.1f}x less memory "
            f"than whole-sequence logits; two passes {ch['peak_growth_mib'] / max(two['peak_growth_mib'], 1e-9):.1f}x "
            f"less than one pass, at {two['cpu_s'] / ch['cpu_s']:.2f}x its CPU time"
        )
    out = {**head, "args": {k: v for k, v in vars(a).items() if k != "child"}, "rows": rows}
    if a.json:
        from tsallis_ref.metrics_log import write_json

        write_json(a.json, out)
    return out


if __name__ == "__main__":
    main(sys.argv[1:])

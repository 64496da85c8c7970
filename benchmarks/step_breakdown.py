"""Step-time breakdown (generate / score / backward) and forward passes per step for GARL, PAFT, GRPO and RLOO,
on the same model, prompts and M, measured side by side in one run (issue 4, section 5).

Each step is the trainer's own ``train_step``, timed by the clock passed to it. Each round seeds the RNG
identically before every method, so all methods draw the *same* rationale pool from the same model (unchanged:
the optimiser is SGD with learning rate 0, so its step costs what a step costs and moves nothing); GRPO / RLOO then also sample their answers. Methods are
interleaved round by round (rotating order) so that machine-load drift hits them equally; the median (or the
minimum, ``--stat min``) over rounds is reported.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/step_breakdown.py            # tiny random Llama, CPU
    PYTHONPATH=. python benchmarks/step_breakdown.py --model smollm2-gguf --M 8 --rationale-budget 64

Target: GARL and PAFT within 5% of RLOO on score + backward (they add O(M) scalar work, no forward pass).
The row ``garl-2pass`` is GARL with ``optim.two_pass_scoring`` (memory flat in M, one more forward per
sequence): its cost against one-pass GARL is the price of that memory saving.
Columns: medians of seconds per step; "fwd calls" = teacher-forced forward calls (one per micro-batch) and
"fwd seqs" = sequences scored (each exactly once); "gen calls" = ``generate`` calls (GRPO/RLOO also sample
answers); "per-token" = (score+backward seconds per scored token) / RLOO's, which removes the difference
between a short gold answer (GARL/PAFT) and an ``answer_budget``-long sampled one (GRPO/RLOO).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from tsallis_ref.config import TrainConfig
from tsallis_ref.metrics_log import write_json
from tsallis_ref.models import load_model_and_tokenizer, resolve_device
from tsallis_ref.trainer import StepState, encode_examples, train_step

METHODS = ["rloo", "grpo", "garl", "paft", "garl-2pass"]  # garl-2pass: GARL with optim.two_pass_scoring
PROMPTS = [
    ("Q: 12+7=", "19"),
    ("Q: 3*4=", "12"),
    ("Q: 9-5=", "4"),
    ("Q: 6+6=", "12"),
    ("Q: 20/4=", "5"),
    ("Q: 7*3=", "21"),
    ("Q: 15-8=", "7"),
    ("Q: 2+9=", "11"),
]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="tiny", help="tiny (a random Llama) or a model id / smollm2-gguf")
    ap.add_argument("--hidden", type=int, default=128, help="--model tiny: hidden size")
    ap.add_argument("--layers", type=int, default=4, help="--model tiny: decoder layers")
    ap.add_argument("--M", type=int, default=8, help="rationales per prompt")
    ap.add_argument("--prompts", type=int, default=2, help="prompts per step")
    ap.add_argument("--rationale-budget", type=int, default=96, help="rationale tokens")
    ap.add_argument("--answer-budget", type=int, default=8, help="answer tokens (GRPO / RLOO)")
    ap.add_argument("--micro-batch", type=int, default=4, help="sequences per forward call")
    ap.add_argument("--rounds", type=int, default=7, help="timed rounds (methods interleaved)")
    ap.add_argument("--q", type=float, default=0.75, help="GARL / PAFT q")
    ap.add_argument("--lora", action="store_true", help="train LoRA adapters (r 8)")
    ap.add_argument("--load-in-4bit", action="store_true", help="4-bit NF4 base weights")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--device", default="auto", help="cpu, cuda or auto")
    ap.add_argument(
        "--stat",
        choices=["median", "min"],
        default="median",
        help="statistic over rounds (min is the robust choice on a shared, busy machine)",
    )
    ap.add_argument(
        "--clock",
        choices=["process", "wall"],
        default=None,
        help="process = CPU time of this process (default on a CPU: robust to other processes' load); "
        "wall = perf_counter (default on a GPU)",
    )
    ap.add_argument("--json", default=None, help="write the figures to this JSON file")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)

    base = {
        "model": {
            "name_or_path": a.model,
            "load_in_4bit": a.load_in_4bit,
            "lora": {"enabled": a.lora or a.load_in_4bit},
            "chat_template": a.model != "tiny",
            "tiny": {
                "hidden_size": a.hidden,
                "num_hidden_layers": a.layers,
                "num_attention_heads": 4,
                "intermediate_size": 4 * a.hidden,
            },
        },
        "rollout": {
            "M": a.M,
            "rationale_budget": a.rationale_budget,
            "answer_budget": a.answer_budget,
            "end_of_rationale": "</think>" if a.model == "tiny" else "\nAnswer:",
            "answer_prefix": "" if a.model == "tiny" else " ",
        },
        "optim": {"micro_batch_size": a.micro_batch, "prompts_per_step": a.prompts},
        "data": {"path": "unused"},
        "device": a.device,
    }
    cfgs = {
        m: TrainConfig.from_dict(
            {
                **base,
                "method": {"name": m.split("-")[0], "q": a.q},
                "optim": {**base["optim"], "two_pass_scoring": m.endswith("2pass")},
            }
        )
        for m in METHODS
    }
    device = resolve_device(a.device)
    a.clock = a.clock or ("wall" if device.type == "cuda" else "process")
    clock = time.perf_counter if a.clock == "wall" else time.process_time
    model, tok = load_model_and_tokenizer(cfgs["garl"].model, device, seed=0)
    model.train()
    batch = encode_examples(
        tok, [{"id": str(i), "prompt": p, "answer": y} for i, (p, y) in enumerate(PROMPTS[: a.prompts])], cfgs["garl"]
    )
    params = [p for p in model.parameters() if p.requires_grad]
    states = {m: StepState.create(model, cfgs[m], optimizer=torch.optim.SGD(params, lr=0.0)) for m in METHODS}

    rec = {
        m: {
            "generate": [],
            "score": [],
            "backward": [],
            "fwd_calls": [],
            "fwd_seqs": [],
            "gen_calls": [],
            "scored_tokens": [],
        }
        for m in METHODS
    }
    for r in range(a.rounds + 1):  # round 0 is a warm-up, not recorded
        k = r % len(METHODS)
        order = METHODS[k:] + METHODS[:k]
        for m in order:
            torch.manual_seed(1000 + r)  # same rationale pool for every method this round
            out = train_step(model, tok, batch, cfgs[m], states[m], clock=clock)
            if r == 0:
                continue
            d, t = rec[m], out.timings
            d["generate"].append(t["generate"]), d["score"].append(t["score"]), d["backward"].append(t["backward"])
            d["fwd_calls"].append(out.gradients.forward_calls), d["fwd_seqs"].append(out.gradients.scored_sequences)
            d["gen_calls"].append(out.rollouts.generate_calls), d["scored_tokens"].append(out.gradients.scored_tokens)

    stat = statistics.median if a.stat == "median" else min
    med = {m: {k: stat(v) for k, v in d.items()} for m, d in rec.items()}
    ref = med["rloo"]
    print(
        f"device={device} model={a.model} hidden={a.hidden} layers={a.layers} M={a.M} prompts/step={a.prompts} "
        f"rationale_budget={a.rationale_budget} answer_budget={a.answer_budget} micro_batch={a.micro_batch} "
        f"rounds={a.rounds} stat={a.stat} clock={a.clock} threads={a.threads} lora={a.lora or a.load_in_4bit} 4bit={a.load_in_4bit}"
    )
    hdr = (
        f"{'method':10} {'generate s':>10} {'score s':>8} {'backward s':>10} {'score+bwd s':>11} {'step s':>7} "
        f"{'gen calls':>9} {'fwd calls':>9} {'fwd seqs':>8} {'scored tok':>10} {'(score+bwd)/RLOO':>16} "
        f"{'per-token':>9} {'step/RLOO':>9}"
    )
    print(hdr)
    out = {"args": vars(a), a.stat: med, "raw": rec}
    for m in METHODS:
        d = med[m]
        sb, step = d["score"] + d["backward"], d["generate"] + d["score"] + d["backward"]
        sb_ref, step_ref = ref["score"] + ref["backward"], ref["generate"] + ref["score"] + ref["backward"]
        d["score_bwd_ratio"], d["step_ratio"] = sb / sb_ref, step / step_ref
        d["score_bwd_per_token_ratio"] = (sb / d["scored_tokens"]) / (sb_ref / ref["scored_tokens"])
        print(
            f"{m:10} {d['generate']:10.4f} {d['score']:8.4f} {d['backward']:10.4f} {sb:11.4f} {step:7.4f} "
            f"{d['gen_calls']:9.0f} {d['fwd_calls']:9.0f} {d['fwd_seqs']:8.0f} {d['scored_tokens']:10.0f} "
            f"{d['score_bwd_ratio']:16.3f} {d['score_bwd_per_token_ratio']:9.3f} {d['step_ratio']:9.3f}"
        )
    if a.json:
        write_json(a.json, out)
    return out


if __name__ == "__main__":
    main(sys.argv[1:])

"""Escape step against p0 and learning rate: post-train from corrupted starts (one per target p0) with
several methods, a grid of learning rates (SGD, or Adam with a given eps) and several seeds, and record the P and p(S_0) curves
and the escape steps as JSON (the escape-time test of Theorem 5.2 in book/cold_start_miniature.ipynb).

    OMP_NUM_THREADS=1 python scripts/run_miniature_escape.py --p0 1e-2 --runs garl:0 garl:1 grpo:0 \
        --lrs 0.03 0.1 0.3 1 --seeds 0 1 --out data/miniature/escape_lrgrid_1e-2.json

Defaults: the sharper pre-trained decoder (data/miniature/pretrained_decoder_2000.json), the
"sequence" answer channel with typo probability 0.05 (no partial credit for wrong rationales, see
tsallis_ref.miniature.TinyDecoder), no gradient clipping, M = 128, B = 4, escape when P >= 0.5,
runs stopped 20 steps after their escape. The JSON holds the command line, the date and the
machine, and is rewritten after every run, so a killed sweep keeps what it did.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import time
from pathlib import Path

import torch

from tsallis_ref import miniature as mini
from tsallis_ref.experiments.miniature_records import new_record
from tsallis_ref.metrics_log import write_json


def _r(v, digits=4):
    return [float(f"{x:.{digits}g}") for x in v]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--p0", type=float, nargs="+", required=True, help="target initial success probabilities")
    ap.add_argument("--runs", nargs="+", default=["grpo:0", "garl:0", "garl:0.5", "garl:1", "paft:1"], help="method:q")
    ap.add_argument("--lrs", type=float, nargs="+", default=[0.1], help="learning rates (every run at every lr)")
    ap.add_argument(
        "--optimizers",
        nargs="+",
        default=["sgd"],
        help="every run under each of these: 'sgd', or 'adam:EPS' (Adam with that eps, e.g. adam:1e-8)",
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--M", type=int, default=128)
    ap.add_argument("--B", type=int, default=4)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--n-eval", type=int, default=32)
    ap.add_argument("--delta", type=float, default=0.5, help="escape threshold on P")
    ap.add_argument("--stop-after-escape", type=int, default=20, help="steps run after the escape (-1: run all steps)")
    ap.add_argument("--grad-clip", type=float, default=math.inf, help="max total gradient norm (inf: no clipping)")
    ap.add_argument("--answer-channel", default="sequence", choices=list(mini.ANSWER_CHANNELS))
    ap.add_argument("--answer-noise", type=float, default=0.05)
    ap.add_argument("--no-pathwise", action="store_true", help="GARL/PAFT: zero the gradient through log p(y*|x,z)")
    ap.add_argument("--pretrained", default="data/miniature/pretrained_decoder_2000.json")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    dec = mini.decoder_from_json(json.loads(Path(a.pretrained).read_text()))
    task = dec.task
    rec = new_record("scripts/run_miniature_escape.py", argv, args=vars(a), p0_measured={}, runs=[])
    t0 = time.time()
    for p0 in a.p0:
        start = mini.make_start(dec, p0)
        for r in a.runs:
            method, q = r.split(":")
            for opt, lr in [(o, lr) for o in a.optimizers for lr in a.lrs]:
                optimizer, _, eps = opt.partition(":")
                for seed in a.seeds:
                    cfg = mini.MiniTrainConfig(
                        method=method,
                        q=float(q),
                        optimizer=optimizer,
                        adam_eps=float(eps) if eps else 1e-8,
                        steps=a.steps,
                        B=a.B,
                        M=a.M,
                        lr=lr,
                        eval_every=a.eval_every,
                        n_eval=a.n_eval,
                        seed=seed,
                        delta=a.delta,
                        pathwise=not a.no_pathwise,
                        grad_clip=a.grad_clip,
                        answer_channel=a.answer_channel,
                        answer_noise=a.answer_noise,
                        stop_after_escape=None if a.stop_after_escape < 0 else a.stop_after_escape,
                    )
                    if str(p0) not in rec["p0_measured"]:  # P of the start under the post-training answer channel
                        m = mini.apply_answer_channel(copy.deepcopy(start), cfg)
                        xs = task.random_inputs(cfg.n_train, torch.Generator().manual_seed(20_000 + cfg.seed))[
                            : cfg.n_eval
                        ]
                        rec["p0_measured"][str(p0)] = (
                            mini.estimate_log_success(m, xs, task.gold(xs)).exp().mean().item()
                        )
                    h = mini.train_miniature(start, cfg)
                    print(
                        f"p0={p0:g} {mini.mini_run_label(method, float(q)):>11} {opt} lr={lr:g} seed {seed}: "
                        f"P {h['P'][0]:.2e} -> "
                        f"{h['P'][-1]:.2e} (max {max(h['P']):.2e}), p(S0) -> {h['p_s0'][-1]:.2e}, "
                        f"escape step {h['escape_step']}, {h['seconds']:.0f} s",
                        flush=True,
                    )
                    rec["runs"].append(
                        {
                            "p0_target": p0,
                            "method": method,
                            "q": float(q),
                            "lr": lr,
                            "optimizer": optimizer,
                            "adam_eps": cfg.adam_eps if optimizer == "adam" else None,
                            "seed": seed,
                            "label": mini.mini_run_label(method, float(q)),
                            "eval_step": h["eval_step"],
                            "P": _r(h["P"]),
                            "p_s0": _r(h["p_s0"]),
                            "escape_step": h["escape_step"],
                            "steps_run": len(h["loss"]),
                            "seconds": round(h["seconds"], 1),
                        }
                    )
                    rec["seconds"] = round(time.time() - t0, 1)
                    write_json(a.out, rec, compact=True)
    print(f"wrote {a.out} ({os.path.getsize(a.out) / 1e3:.0f} kB) in {rec['seconds']} s")


if __name__ == "__main__":
    main()

"""Cold start at large M: post-train from one corrupted start (target p0) with several methods and
seeds, a chosen answer-channel typo probability, and record the P and p(S_0) curves as JSON.

    OMP_NUM_THREADS=1 python scripts/run_miniature_sweep.py --p0 1e-3 --M 128 --B 4 --steps 120 \
        --answer-noise 0.005 --lr 0.3 --runs garl:1 garl:0 grpo:0 garl:0.5 --seeds 0 1 \
        --out data/miniature/sweep_p0_1e-3_M128.json

The pre-trained decoder is loaded from data/miniature/pretrained_decoder.json (written by
scripts/run_miniature.py). The JSON is rewritten after every run, so a killed sweep keeps what it did.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from tsallis_ref import miniature as mini
from tsallis_ref.experiments.miniature_records import new_record
from tsallis_ref.metrics_log import write_json


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--p0", type=float, required=True)
    ap.add_argument("--M", type=int, default=128)
    ap.add_argument("--B", type=int, default=4)
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--lr", type=float, default=0.3)
    ap.add_argument("--grad-clip", type=float, default=1.0, help="max gradient norm (inf: no clipping)")
    ap.add_argument("--answer-noise", type=float, default=0.005)
    ap.add_argument("--runs", nargs="+", default=["garl:1", "garl:0", "grpo:0", "garl:0.5"], help="method:q")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--no-pathwise", action="store_true", help="GARL/PAFT: zero the gradient through log p(y*|x,z)")
    ap.add_argument("--n-eval", type=int, default=32)
    ap.add_argument("--pretrained", default="data/miniature/pretrained_decoder.json")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    dec = mini.decoder_from_json(json.loads(Path(a.pretrained).read_text()))
    start = mini.make_start(dec, a.p0)
    rec = new_record("scripts/run_miniature_sweep.py", argv, args=vars(a), runs=[])
    for r in a.runs:
        method, q = r.split(":")
        for seed in a.seeds:
            cfg = mini.MiniTrainConfig(
                method=method,
                q=float(q),
                steps=a.steps,
                B=a.B,
                M=a.M,
                lr=a.lr,
                eval_every=10,
                seed=seed,
                pathwise=not a.no_pathwise,
                n_eval=a.n_eval,
                answer_noise=a.answer_noise,
                grad_clip=a.grad_clip,
            )
            h = mini.train_miniature(start, cfg)
            e = mini.escape_step(h, 10 * h["P"][0])
            print(
                f"p0={a.p0:g} M={a.M} {mini.mini_run_label(method, float(q))} seed {seed}: P {h['P'][0]:.2e} -> "
                f"{h['P'][-1]:.2e} (max {max(h['P']):.2e}), p(S0) {h['p_s0'][0]:.2e} -> {h['p_s0'][-1]:.2e}, "
                f"10x step {e}, {h['seconds']:.0f} s",
                flush=True,
            )
            rec["runs"].append(
                {
                    "method": method,
                    "q": float(q),
                    "label": mini.mini_run_label(method, float(q)),
                    "seed": seed,
                    "eval_step": h["eval_step"],
                    "P": h["P"],
                    "p_s0": h["p_s0"],
                    "seconds": round(h["seconds"], 1),
                }
            )
            write_json(a.out, rec, compact=True)


if __name__ == "__main__":
    main()

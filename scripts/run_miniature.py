"""Run the cold-start-in-miniature grid at a chosen scale and record it as JSON in data/miniature/.

    OMP_NUM_THREADS=1 python scripts/run_miniature.py --steps 300 --seeds 0 1 2 \
        --out data/miniature/cold_start_grid.json

Everything comes from tsallis_ref.miniature: pre-training, the corrupted starts (one per p0),
post-training with GRPO, RLOO, GARL(q) and PAFT(q) from the same start, and the noisy-label
variant. The JSON holds the configuration, the seeds, the date, the machine and the P curves.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from tsallis_ref.experiments.miniature_records import new_record
from tsallis_ref.metrics_log import write_json
from tsallis_ref.miniature import MiniTask, decoder_from_json, decoder_to_json, machine_info, pretrain, run_grid


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--p0", type=float, nargs="+", default=[1e-1, 1e-2, 1e-3], help="target initial success probabilities"
    )
    ap.add_argument("--qs", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0], help="GARL q values")
    ap.add_argument("--paft-qs", type=float, nargs="*", default=[0.75, 1.0], help="PAFT q values")
    ap.add_argument(
        "--baselines", nargs="*", default=["grpo", "rloo"], choices=["grpo", "rloo"], help="verifier-reward baselines"
    )
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--B", type=int, default=4)
    ap.add_argument("--M", type=int, default=16)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--pretrain-steps", type=int, default=600)
    ap.add_argument("--noise-frac", type=float, default=0.25, help="noisy-label variant: fraction of flipped answers")
    ap.add_argument("--noise-p0", type=float, default=0.3, help="noisy-label variant: start p0")
    ap.add_argument("--noise-steps", type=int, default=200)
    ap.add_argument(
        "--noise-qs", type=float, nargs="+", default=[0.0, 0.5, 1.0], help="noisy-label variant: GARL q values"
    )
    ap.add_argument(
        "--noise-flip",
        default="last",
        choices=["last", "all"],
        help="noisy-label variant: flip the last answer digit or every digit",
    )
    ap.add_argument(
        "--noise-answer-noise",
        type=float,
        default=None,
        help="noisy-label variant: answer-channel typo probability (default: the decoder's)",
    )
    ap.add_argument("--skip-noise", action="store_true")
    ap.add_argument(
        "--pretrained", default=None, help="load the pre-trained decoder from this JSON instead of pre-training"
    )
    ap.add_argument("--save-pretrained", default=None, help="write the pre-trained decoder to this JSON")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="data/miniature/cold_start_grid.json")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    t0 = time.time()
    task = MiniTask()
    if a.pretrained:
        with open(a.pretrained) as f:
            prec = json.load(f)
        model, losses = decoder_from_json(prec), [prec["meta"].get("final_loss", float("nan"))]
        a.pretrain_steps = prec["meta"].get("steps")
    else:
        model, losses = pretrain(task, steps=a.pretrain_steps, seed=0)
        if a.save_pretrained:
            with open(a.save_pretrained, "w") as f:
                json.dump(
                    decoder_to_json(
                        model,
                        steps=a.pretrain_steps,
                        seed=0,
                        final_loss=losses[-1],
                        produced_by="scripts/run_miniature.py",
                        machine=machine_info(),
                    ),
                    f,
                )
    runs = [(b, 0.0) for b in a.baselines] + [("garl", q) for q in a.qs] + [("paft", q) for q in a.paft_qs]
    common = dict(steps=a.steps, B=a.B, M=a.M, lr=a.lr, eval_every=a.eval_every)
    rec = new_record(
        "scripts/run_miniature.py",
        argv,
        task={"V": task.V, "L": task.L, "K": task.K},
        pretrain={"steps": a.pretrain_steps, "final_loss": losses[-1], "n_params": model.n_params()},
        seeds=a.seeds,
    )
    rec["cold_start"] = run_grid(model, a.p0, runs, seeds=a.seeds, verbose=True, **common)
    if not a.skip_noise:
        nruns = [("garl", q) for q in a.noise_qs]
        rec["noisy_labels"] = run_grid(
            model,
            [a.noise_p0],
            nruns,
            seeds=a.seeds,
            verbose=True,
            **{
                **common,
                "steps": a.noise_steps,
                "noise_frac": a.noise_frac,
                "flip": a.noise_flip,
                "answer_noise": a.noise_answer_noise,
            },
        )
    rec["seconds"] = round(time.time() - t0, 1)
    write_json(a.out, rec, compact=True)
    print(f"wrote {a.out} ({os.path.getsize(a.out) / 1e3:.0f} kB) in {rec['seconds']} s")


if __name__ == "__main__":
    main()

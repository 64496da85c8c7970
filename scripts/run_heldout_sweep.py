"""The held-out sweep of issue 14 (``scripts/run_heldout.py`` once per dataset / method / q / seed), resumable:
runs whose record exists in ``data/heldout/`` are skipped, an interrupted run continues from its checkpoint.

    PYTHONPATH=$PWD python scripts/run_heldout_sweep.py --jobs 2                # run (or continue) the whole sweep
    PYTHONPATH=$PWD python scripts/run_heldout_sweep.py --list                  # the plan and what is recorded

Datasets: HotpotQA and FinQA (FinQA is the column of the paper's Table 1, HotpotQA one of Tables 2 and 3; MuSiQue
runs the same way with ``--datasets musique``). Per dataset: GRPO, RLOO, MaxRL, GARL q in {0, 0.5, 0.75, 1}, PAFT q in {0.75, 1} at seed 0, and GRPO, GARL q=0.75,
GARL q=1 again at seed 1 (12 runs). Each run is one process with one torch thread; ``--jobs`` runs go side by side.
A run's output goes to ``runs/heldout/logs/<label>.log``. Extra arguments after ``--`` go to every run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]


def plan(datasets) -> list[tuple[str, str, float | None, int]]:
    """The runs of ``tsallis_ref.experiments.heldout.PLAN`` (the plan the chapter reports against) in the order
    they start: per dataset, the first multi-seed method on both seeds (so the two seeds' untrained-model tests
    are computed at once, side by side), then the other multi-seed runs by seed, then the single-seed runs."""
    from tsallis_ref.experiments.heldout import PLAN

    multi = [k for k, seeds in PLAN.items() if len(seeds) > 1]
    seeds = sorted({s for k in multi for s in PLAN[k]})
    order = [(*multi[0], s) for s in PLAN[multi[0]]]
    order += [(*k, s) for s in seeds for k in multi[1:] if s in PLAN[k]]
    order += [(*k, s) for k, ss in PLAN.items() if k not in multi for s in ss]
    return [(ds, m, q, s) for ds in datasets for m, q, s in order]


def label(ds: str, method: str, q: float | None, seed: int) -> str:
    """The run's label, as ``scripts/run_heldout.py`` names its record."""
    from run_heldout import label_of

    return label_of(SimpleNamespace(smoke=False, dataset=ds, method=method, q=q, seed=seed))


def argv_of(ds: str, method: str, q: float | None, seed: int, extra: list[str]) -> list[str]:
    a = ["--dataset", ds, "--method", method, "--seed", str(seed), "--quiet"]
    if q is not None:
        a += ["--q", f"{q:g}"]
    if ds == "finqa":
        a += ["--judge", "finqa_exec"]
    return a + extra


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["hotpotqa", "finqa"], choices=["finqa", "hotpotqa", "musique"])
    ap.add_argument("--jobs", type=int, default=2, help="runs side by side (one torch thread each)")
    ap.add_argument("--list", action="store_true", help="print the plan with each run's state and exit")
    ap.add_argument("--record-dir", default=str(REPO / "data" / "heldout"))
    ap.add_argument("extra", nargs="*", help="arguments passed to every run (after --)")
    a = ap.parse_args(argv)
    rec_dir, logs = Path(a.record_dir), REPO / "runs" / "heldout" / "logs"
    runs = plan(a.datasets)
    todo = [r for r in runs if not (rec_dir / f"{label(*r)}.json").exists()]
    for r in runs:
        state = (
            "recorded" if r not in todo else ("started" if (REPO / "runs" / "heldout" / label(*r)).exists() else "-")
        )
        print(f"{label(*r):32s} {state}")
    if a.list or not todo:
        return 0
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}

    def one(r) -> int:
        # the record's command names the record folder relative to the repository when it is inside it
        rd = rec_dir.resolve()
        rd = str(rd.relative_to(REPO)) if rd.is_relative_to(REPO) else str(rd)
        cmd = [sys.executable, "scripts/run_heldout.py", *argv_of(*r, a.extra), "--record-dir", rd]
        t = time.time()
        with open(logs / f"{label(*r)}.log", "a") as f:
            rc = subprocess.call(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT)
        print(f"{time.strftime('%H:%M:%S')} {label(*r)}: exit {rc} after {time.time() - t:.0f} s", flush=True)
        return rc

    with ThreadPoolExecutor(a.jobs) as ex:
        rcs = list(ex.map(one, todo))
    return max(rcs)


if __name__ == "__main__":
    sys.exit(main())

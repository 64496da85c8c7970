"""GARL / PAFT through ``accelerate launch`` with 2 CPU processes (gloo backend).

The pytest test launches this same file as a script on 2 processes. Each rank:

1. draws one generation batch through TRL's own (distributed) sampler and generation, where
   the M = 4 completions of a prompt are split between the two ranks, accumulates the
   compute_loss gradients of its 2 micro-batches, and all-reduces them (mean over ranks, as
   DDP does); rank 0 compares the result with the direct reference over all gathered rows;
2. trains 2 optimizer steps with ``trainer.train()`` (DDP-wrapped model) and rank 0 writes the
   log history.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

CONFIG = ROOT / "configs" / "accelerate" / "cpu_2proc_gloo.yaml"


def run_rank(estimator: str, out: Path) -> None:  # executed inside `accelerate launch`
    import copy

    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    sys.path.insert(0, str(ROOT / "tests"))
    from accelerate.utils import gather_object
    from test_trl_integration import reference_grads, rows_of, unique_dataset
    from trl_helpers import cpu_trainer_args, generation_batch_grads

    from tsallis_ref.testing import trl_model, trl_tokenizer

    tok = trl_tokenizer()
    model = trl_model(tok, dtype=torch.float64, seed=1)
    ref = copy.deepcopy(model)
    ga, M, q = 2, 4, 0.5
    args, tr_cls = cpu_trainer_args(
        estimator,
        out / f"run_{estimator}",
        bs=3,
        M=M,
        ga=ga,
        max_steps=2,
        logging_steps=1,
        learning_rate=1e-3,
        q=q,
        seed=5,
        dataloader_num_workers=0,
    )
    ds = unique_dataset(6)
    trainer = tr_cls(model, args=args, train_dataset=ds, processing_class=tok)
    rank, world = trainer.accelerator.process_index, trainer.accelerator.num_processes
    assert world == 2, f"expected 2 processes, got {world}"

    # 1. one generation batch, gradients summed over micro-batches and averaged over ranks
    micro, _ = generation_batch_grads(trainer, ga)
    for p in model.parameters():
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
        p.grad /= world
    local_rows = [r for inp in micro for r in rows_of(inp, tok)]
    rows = gather_object(local_rows)
    local_prompts = {r[0] for r in local_rows}
    all_prompts = gather_object([sorted(local_prompts)])
    result = {}
    if rank == 0:
        answers = {r["prompt"]: r["answer"] for r in ds}
        g_ref, _ = reference_grads(ref, tok, rows, answers, M, q, estimator)
        gmax = max(g.abs().max().item() for g in g_ref.values())
        worst = max((p.grad - g_ref[n]).abs().max().item() for n, p in model.named_parameters())
        shared = set(all_prompts[0]) & set(all_prompts[1])
        result = {
            "n_rows": len(rows),
            "n_groups": len({r[0] for r in rows}),
            "grad_max": gmax,
            "grad_max_abs_diff": worst,
            "groups_split_across_ranks": len(shared),
        }
    model.zero_grad()
    trainer._step, trainer._buffered_inputs = 0, None

    # 2. a short real training run
    trainer.train()
    if rank == 0:
        result["log_history"] = trainer.state.log_history
        (out / f"{estimator}.json").write_text(json.dumps(result))


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """One `accelerate launch` (2 processes) that runs GARL, then PAFT; returns the output folder."""
    pytest.importorskip("trl")
    out = tmp_path_factory.mktemp("launch")
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        ACCELERATE_USE_CPU="true",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    port = str(29500 + (os.getpid() % 2000))
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(CONFIG),
        "--main_process_port",
        port,
        str(Path(__file__).resolve()),
        "garl,paft",
        str(out),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ["garl", "paft"])
def test_accelerate_launch_two_cpu_processes(launched, estimator):
    res = json.loads((launched / f"{estimator}.json").read_text())
    # the distributed gradient equals the direct reference over the whole generation batch
    assert res["n_rows"] == 12 and res["n_groups"] == 3
    assert res["groups_split_across_ranks"] >= 1, "the test must split a group of M between the ranks"
    assert res["grad_max"] > 1e-8
    assert res["grad_max_abs_diff"] < 1e-5 and res["grad_max_abs_diff"] <= 1e-5 * res["grad_max"], res
    # training ran 2 steps and logged the loss and the estimator's diagnostics
    logs = [r for r in res["log_history"] if "loss" in r]
    assert len(logs) == 2 and logs[-1]["step"] == 2
    for r in logs:
        assert r["loss"] == r["loss"]  # not NaN
        assert f"{estimator}/log_wbar_mean" in r and r[f"{estimator}/log_wbar_mean"] < 0
        assert f"{estimator}/max_adv" in r and "grad_norm" in r
    if estimator == "paft":
        assert 0 < logs[0]["paft/unique_frac"] <= 1


if __name__ == "__main__":
    for est in sys.argv[1].split(","):
        run_rank(est, Path(sys.argv[2]))

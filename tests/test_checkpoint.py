"""Checkpoints: atomic writes, and a real run killed with SIGKILL then resumed ends in the same state as an
uninterrupted run (weights bitwise equal on one CPU thread, metrics equal)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tsallis_ref.checkpoint import load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TIMING = {"t_generate", "t_score", "t_backward", "t_step", "tokens_per_s", "peak_mem_mb"}


def test_save_is_atomic_and_leaves_no_tmp(tmp_path):
    p = tmp_path / "c.pt"
    save_checkpoint(p, {"step": 1, "x": torch.arange(3)})
    save_checkpoint(p, {"step": 2, "x": torch.arange(4)})
    assert load_checkpoint(p)["step"] == 2 and not (tmp_path / "c.pt.tmp").exists()
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        load_checkpoint(tmp_path / "missing.pt")


def _write_config(d: Path, method: str, steps: int) -> Path:
    ex = [{"id": f"e{i}", "prompt": f"Q: {i}+{i}=", "answer": str(2 * i)} for i in range(5)]
    (d / "ex.jsonl").write_text("".join(json.dumps(e) + "\n" for e in ex))
    cfg = d / "cfg.yaml"
    cfg.write_text(f"""
method: {{name: {method}, q: 0.5, K: 3}}
model: {{name_or_path: tiny, tiny: {{hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 128}}}}
rollout: {{M: 4, rationale_budget: 48, answer_budget: 3}}
optim: {{lr: 1.0e-2, prompts_per_step: 2, micro_batch_size: 4}}
data: {{path: {d / 'ex.jsonl'}}}
steps: {steps}
checkpoint_every: 2
output_dir: {d / 'run'}
num_threads: 1
tensorboard: false
progress_bar: false
""")
    return cfg


def _cli(cfg: Path, *extra):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "tsallis_ref", "train", "--config", str(cfg), *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _final(run: Path):
    ck = load_checkpoint(run / "checkpoint.pt")
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    rows = [{k: v for k, v in r.items() if k not in TIMING} for r in rows]
    return ck, rows


@pytest.mark.slow
@pytest.mark.parametrize("method", ["paft"])
def test_killed_run_resumes_with_identical_state(tmp_path, method):
    steps = 12
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    # 1. the uninterrupted reference run
    p = _cli(_write_config(a, method, steps))
    assert p.wait(timeout=300) == 0, p.stderr.read().decode()[-2000:]
    # 2. the same run, SIGKILLed once a checkpoint exists and before it finished
    cfg_b = _write_config(b, method, steps)
    p = _cli(cfg_b)
    ck = b / "run" / "checkpoint.pt"
    deadline = time.time() + 300
    while not ck.exists() and time.time() < deadline and p.poll() is None:
        time.sleep(0.02)
    alive = p.poll() is None
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert alive, "the run finished before it could be killed: make steps slower"
    killed_at = load_checkpoint(ck)["step"]
    assert 0 < killed_at < steps
    # 3. resume and compare
    p = _cli(cfg_b, "--resume")
    assert p.wait(timeout=300) == 0, p.stderr.read().decode()[-2000:]
    ck_a, rows_a = _final(a / "run")
    ck_b, rows_b = _final(b / "run")
    assert ck_a["step"] == ck_b["step"] == steps
    assert [r["step"] for r in rows_b] == list(range(1, steps + 1))
    for k, v in ck_a["model"].items():
        assert torch.equal(v, ck_b["model"][k]), k
    for ra, rb in zip(rows_a, rows_b):
        assert ra.keys() == rb.keys()
        for k in ra:
            if isinstance(ra[k], float):
                assert abs(ra[k] - rb[k]) <= 1e-6 * max(1.0, abs(ra[k])), (ra["step"], k, ra[k], rb[k])
            else:
                assert ra[k] == rb[k], (ra["step"], k)

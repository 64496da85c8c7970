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
from conftest import ROOT

from tsallis_ref.checkpoint import CheckpointError, config_differences, load_checkpoint, previous_path, save_checkpoint

TIMING = {"t_generate", "t_score", "t_backward", "t_step", "tokens_per_s", "peak_mem_mb"}


def test_save_is_atomic_and_leaves_no_tmp(tmp_path):
    p = tmp_path / "c.pt"
    save_checkpoint(p, {"step": 1, "x": torch.arange(3)})
    save_checkpoint(p, {"step": 2, "x": torch.arange(4)})
    assert load_checkpoint(p)["step"] == 2 and not (tmp_path / "c.pt.tmp").exists()
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        load_checkpoint(tmp_path / "missing.pt")


def test_the_previous_checkpoint_is_kept(tmp_path):
    p = tmp_path / "checkpoint.pt"
    for step in (1, 2, 3):
        save_checkpoint(p, {"step": step, "x": torch.full((2,), float(step))})
    assert previous_path(p) == tmp_path / "checkpoint.prev.pt"
    assert load_checkpoint(p)["step"] == 3
    prev = torch.load(previous_path(p), weights_only=True)
    assert prev["step"] == 2 and torch.equal(prev["x"], torch.full((2,), 2.0))
    assert sorted(f.name for f in tmp_path.iterdir()) == ["checkpoint.prev.pt", "checkpoint.pt"]


def test_a_truncated_checkpoint_falls_back_to_the_previous_one(tmp_path):
    p = tmp_path / "checkpoint.pt"
    save_checkpoint(p, {"step": 2, "x": torch.arange(1000)})
    save_checkpoint(p, {"step": 4, "x": torch.arange(1000)})
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])  # killed mid-copy, disk full, ...
    with pytest.warns(
        RuntimeWarning,
        match=r"checkpoint\.pt is unreadable.*previous checkpoint .*checkpoint\.prev\.pt"
        r" \(step 2\)",
    ):
        ck = load_checkpoint(p)
    assert ck["step"] == 2 and torch.equal(ck["x"], torch.arange(1000))
    # the resumed run's next save does not rotate the truncated file into the previous one's place
    save_checkpoint(p, {"step": 3, "x": torch.arange(3)})
    assert load_checkpoint(p)["step"] == 3 and load_checkpoint(previous_path(p))["step"] == 2
    save_checkpoint(p, {"step": 4, "x": torch.arange(4)})
    assert load_checkpoint(previous_path(p))["step"] == 3
    # the latest missing (a crash between the two renames of a file system without hard links): same
    p.unlink()
    with pytest.warns(RuntimeWarning, match="is missing"):
        assert load_checkpoint(p)["step"] == 3


def test_an_unreadable_checkpoint_without_a_previous_one_names_the_file_and_the_fix(tmp_path):
    p = tmp_path / "checkpoint.pt"
    save_checkpoint(p, {"step": 2, "x": torch.arange(1000)})
    p.write_bytes(p.read_bytes()[:300])
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt is unreadable.*Fix: .*without --resume") as e:
        load_checkpoint(p)
    assert str(p) in str(e.value)
    previous_path(p).write_bytes(b"not a checkpoint")  # a previous one that is broken too
    with pytest.raises(CheckpointError, match=r"and so is the previous checkpoint .*checkpoint\.prev\.pt"):
        load_checkpoint(p)


class _Payload:
    """Unpickling this runs a shell command that writes a file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"echo pwned > {self.marker}",)


@pytest.mark.parametrize("fmt", ["torch", "pickle"])
def test_a_crafted_pickle_is_refused_and_its_payload_never_runs(tmp_path, fmt):
    import pickle

    marker = tmp_path / "pwned"
    p = tmp_path / "checkpoint.pt"
    state = {"step": 1, "model": {"w": torch.zeros(2)}, "evil": _Payload(marker)}
    with open(p, "wb") as f:
        torch.save(state, f) if fmt == "torch" else pickle.dump(state, f)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt is unreadable \(UnpicklingError"):
        load_checkpoint(p)
    assert not marker.exists(), "the crafted checkpoint ran its payload"


def test_save_refuses_objects_that_are_not_plain_data(tmp_path):
    import numpy as np

    with pytest.raises(CheckpointError, match=r"entry `state\.rng\.numpy` is a numpy\.ndarray.*tolist"):
        save_checkpoint(tmp_path / "c.pt", {"step": 1, "rng": {"numpy": np.zeros(3)}})
    assert not (tmp_path / "c.pt").exists() and not (tmp_path / "c.pt.tmp").exists()


def test_rng_states_survive_a_weights_only_round_trip(tmp_path):
    import random

    import numpy as np

    from tsallis_ref.checkpoint import rng_state, set_rng_state

    gen = torch.Generator().manual_seed(5)
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    save_checkpoint(tmp_path / "c.pt", {"step": 1, "rng": rng_state(gen)})
    draws = (random.random(), float(np.random.rand()), float(torch.rand(1)), float(torch.rand(1, generator=gen)))
    random.seed(9), np.random.seed(9), torch.manual_seed(9), gen.manual_seed(9)
    set_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"], gen)
    again = (random.random(), float(np.random.rand()), float(torch.rand(1)), float(torch.rand(1, generator=gen)))
    assert draws == again


def test_a_checkpoint_of_an_earlier_version_still_resumes(tmp_path):
    """Earlier checkpoints held numpy's RNG key as an array (torch.save of np.random.get_state())."""
    import random

    import numpy as np

    from tsallis_ref.checkpoint import set_rng_state

    np.random.seed(4)
    legacy = {
        "step": 3,
        "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()},
    }
    x = float(np.random.rand())
    torch.save(legacy, tmp_path / "checkpoint.pt")
    ck = load_checkpoint(tmp_path / "checkpoint.pt")
    np.random.seed(0)
    set_rng_state(ck["rng"])
    assert ck["step"] == 3 and float(np.random.rand()) == x


def test_config_differences_name_each_field():
    from tsallis_ref.config import TrainConfig

    a = TrainConfig.from_dict({"optim": {"lr": 1e-3}, "method": {"q": 0.5}, "data": {"path": "x.jsonl"}}).to_dict()
    b = TrainConfig.from_dict(
        {
            "optim": {"lr": 2e-3, "micro_batch_size": 2},
            "method": {"q": 0.5},
            "steps": 500,
            "data": {"path": "x.jsonl"},
            "output_dir": "elsewhere",
            "model": {"tiny": {"hidden_size": 64}},
        }
    ).to_dict()
    diff = config_differences(a, b)
    assert (
        len(diff) == 2
        and diff[0].startswith("model.tiny: ")
        and diff[1] == "optim.lr: 0.001 in the checkpoint, 0.002 now"
    )
    assert config_differences(a, a) == []
    old = dict(a, method={k: v for k, v in a["method"].items() if k != "clip_eps"})  # written before clip_eps existed
    assert config_differences(old, a) == []


def test_resume_checks_the_config(tmp_path):
    from tsallis_ref.config import ConfigError, TrainConfig
    from tsallis_ref.trainer import train

    ex = [{"id": f"e{i}", "prompt": f"Q: {i}+{i}=", "answer": str(2 * i)} for i in range(3)]
    base = {
        "method": {"name": "garl", "q": 0.5},
        "model": {"name_or_path": "tiny"},
        "rollout": {"M": 2, "rationale_budget": 4, "answer_budget": 2},
        "optim": {"lr": 1e-2, "prompts_per_step": 1, "micro_batch_size": 2},
        "steps": 1,
        "checkpoint_every": 1,
        "data": {"path": "unused.jsonl"},
        "output_dir": str(tmp_path / "run"),
        "tensorboard": False,
        "progress_bar": False,
    }
    train(TrainConfig.from_dict(base), examples=ex)
    written = (tmp_path / "run" / "config.yaml").read_text()
    changed = dict(base, optim=dict(base["optim"], lr=5e-2), method=dict(base["method"], q=1.0))
    with pytest.raises(
        ConfigError,
        match=r"--resume: the config differs .*checkpoint\.pt.*"
        r"method\.q: 0\.5 in the checkpoint, 1\.0 now; optim\.lr: 0\.01 in the checkpoint, 0\.05 now",
    ):
        train(TrainConfig.from_dict(changed), examples=ex, resume=True)
    assert (tmp_path / "run" / "config.yaml").read_text() == written  # refused before anything was written
    # more steps, smaller micro-batches: allowed
    res = train(
        TrainConfig.from_dict(dict(base, steps=2, optim=dict(base["optim"], micro_batch_size=1))),
        examples=ex,
        resume=True,
    )
    assert [r["step"] for r in res["metrics"]] == [2]
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 2
    assert load_checkpoint(tmp_path / "run" / "checkpoint.prev.pt")["step"] == 1


def _write_config(d: Path, method: str, steps: int) -> Path:
    ex = [{"id": f"e{i}", "prompt": f"Q: {i}+{i}=", "answer": str(2 * i)} for i in range(5)]
    (d / "ex.jsonl").write_text("".join(json.dumps(e) + "\n" for e in ex))
    cfg = d / "cfg.yaml"
    cfg.write_text(f"""
method: {{name: {method}, q: 0.5, K: 3}}
model: {{name_or_path: tiny, tiny: {{hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 128}}}}
rollout: {{M: 4, rationale_budget: 32, answer_budget: 3}}
optim: {{lr: 1.0e-2, prompts_per_step: 2, micro_batch_size: 4}}
data: {{path: {d / "ex.jsonl"}}}
steps: {steps}
checkpoint_every: 2
output_dir: {d / "run"}
num_threads: 1
tensorboard: false
progress_bar: false
""")
    return cfg


def _cli(cfg: Path, *extra):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "tsallis_ref", "train", "--config", str(cfg), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _final(run: Path):
    ck = load_checkpoint(run / "checkpoint.pt")
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    rows = [{k: v for k, v in r.items() if k not in TIMING} for r in rows]
    return ck, rows


@pytest.mark.slow
@pytest.mark.parametrize("method", ["paft"])
def test_killed_run_resumes_with_identical_state(tmp_path, method):
    steps = 8
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    # 1. the uninterrupted reference run, in this process (same code path as the CLI, one thread)
    torch.set_num_threads(1)
    from tsallis_ref.trainer import train

    train(str(_write_config(a, method, steps)))
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

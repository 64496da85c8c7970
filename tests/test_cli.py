"""The command line: --help, a bad config exits with a clear error, a tiny run through the CLI."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))


def _run(*args):
    return subprocess.run([sys.executable, "-m", "tsallis_ref", *args], env=ENV, capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


def test_help():
    r = _run("train", "--help")
    assert r.returncode == 0 and "--config" in r.stdout and "--resume" in r.stdout


def test_bad_config_exits_with_the_field_name(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("method: {name: rloo}\nrollout: {M: 1}\ndata: {path: x.jsonl}\n")
    r = _run("train", "--config", str(cfg))
    assert r.returncode == 2 and "rollout.M" in r.stderr and "Traceback" not in r.stderr


def test_tiny_preset_through_the_cli(tmp_path):
    out = tmp_path / "run"
    r = _run("train", "--config", "configs/tiny_cpu.yaml", "--set", f"output_dir={out}", "--set", "steps=2",
             "--set", "method.name=paft", "--set", "tensorboard=false")
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in rows] == [1, 2] and "paft_unique_frac" in rows[0]
    assert (out / "checkpoint.pt").exists() and (out / "config.yaml").exists()

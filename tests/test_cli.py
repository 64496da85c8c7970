"""The command line: --help, a bad config exits with a clear error, a tiny run through the CLI."""

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT

ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", "tsallis_ref", *args], env=ENV, capture_output=True, text=True, timeout=300, cwd=ROOT
    )


def test_help_explains_every_config_field():
    from tsallis_ref.config import iter_fields

    r = _run("train", "--help")
    assert r.returncode == 0 and "--config" in r.stdout and "--resume" in r.stdout
    lines = r.stdout.splitlines()
    for key, tp, default, text in iter_fields():
        line = next((l for l in lines if l.strip().startswith(key + " (")), None)
        assert line is not None, f"train --help does not list {key}"
        assert tp in line and text[:40] in line, line


@pytest.mark.parametrize(
    "yaml_text,key",
    [
        ("optim: {betas: 0.9}", "optim.betas"),  # every field's checks: tests/test_config.py
        ("base: missing.yaml", "missing.yaml"),
        ("method: {name: garl", "not valid YAML"),
    ],
)
def test_bad_config_is_one_line_and_exit_2(tmp_path, yaml_text, key):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml_text + ("\ndata: {path: x.jsonl}\n" if "data:" not in yaml_text else "\n"))
    r = _run("train", "--config", str(cfg))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and key in r.stderr and r.stderr.startswith("error: ")


def test_set_values_are_type_checked(tmp_path):
    r = _run("train", "--config", "configs/tiny_cpu.yaml", "--set", "rollout.M=many")
    assert r.returncode == 2 and "`rollout.M`: expected an integer; got 'many'" in r.stderr


def test_bad_config_exits_with_the_field_name(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("method: {name: rloo}\nrollout: {M: 1}\ndata: {path: x.jsonl}\n")
    r = _run("train", "--config", str(cfg))
    assert r.returncode == 2 and "rollout.M" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_tiny_preset_through_the_cli(tmp_path):
    out = tmp_path / "run"
    r = _run(
        "train",
        "--config",
        "configs/tiny_cpu.yaml",
        "--set",
        f"output_dir={out}",
        "--set",
        "steps=2",
        "--set",
        "method.name=paft",
        "--set",
        "tensorboard=false",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in rows] == [1, 2] and "paft_unique_frac" in rows[0]
    assert (out / "checkpoint.pt").exists() and (out / "config.yaml").exists()

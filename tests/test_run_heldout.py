"""scripts/run_heldout.py end to end in its --smoke mode (the tiny model from config, real HotpotQA samples from
../shared/data): the record holds the validation curve, the training curve, disjoint id sets and the test metrics
of the final and the best checkpoint; a second invocation resumes from the checkpoint and records the same curve."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]
if not (REPO.parent / "shared" / "data" / "hotpotqa").is_dir():
    pytest.skip("the benchmark samples (../shared/data) are not here", allow_module_level=True)


def _script():
    spec = importlib.util.spec_from_file_location("run_heldout", REPO / "scripts" / "run_heldout.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_smoke_run_records_the_protocol_and_resumes(tmp_path):
    mod = _script()
    argv = ["--smoke", "--quiet", "--runs-root", str(tmp_path / "runs"), "--record-dir", str(tmp_path / "rec")]
    rec = mod.main(argv)
    path = tmp_path / "rec" / f"{rec['label']}.json"
    saved = json.loads(path.read_text())
    assert saved["label"] == "smoke_hotpotqa_garl_q0.75_seed0" and not saved["resumed"]
    assert saved["command"].startswith("python scripts/run_heldout.py --smoke")
    assert [p["step"] for p in saved["validation_curve"]] == [0, 1, 2]
    assert [p["step"] for p in saved["train_curve"]] == [1, 2] and "log_wbar_mean" in saved["train_curve"][0]
    ids = saved["ids"]
    assert len(ids["train"]) == 4 and len(ids["validation"]) == 2 and len(ids["test"]) == 2
    assert not (
        set(ids["train"]) & set(ids["validation"])
        or set(ids["train"]) & set(ids["test"])
        or set(ids["validation"]) & set(ids["test"])
    )
    assert saved["test_final"]["test/n"] == 2 and saved["test_best"]["test/k"] == 2
    majs = [p["val/maj@k"] for p in saved["validation_curve"]]
    assert saved["best_step"] == saved["validation_curve"][majs.index(max(majs))]["step"]
    assert saved["settings"]["eval"]["every"] == 1 and saved["settings"]["model"]["name_or_path"] == "tiny"
    # the same command again: the run is complete, it resumes from its checkpoint and keeps the curve and the best
    again = mod.main(argv)
    assert again["resumed"] and again["validation_curve"] == saved["validation_curve"]
    assert again["best"] == saved["best"] and again["test_final"] == saved["test_final"]

"""scripts/run_heldout.py end to end in its --smoke mode (the tiny model from config, real HotpotQA samples from
../shared/data): the record holds the validation curve, the training curve, disjoint id sets and the test metrics
of the best checkpoint (and of the final model with --test-final); a best checkpoint at step 0 takes the untrained
model's test from the per-seed cache; a second invocation resumes from the checkpoint and records the same curve."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from tsallis_ref.config import TrainConfig

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
    rec = mod.main(argv + ["--test-final"])
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
    base = tmp_path / "rec" / "base" / "hotpotqa_seed0.json"
    assert base.exists() == (saved["best_step"] == 0)
    if base.exists():  # the untrained model's test, kept for every method of this seed
        assert json.loads(base.read_text())["test"] == saved["test_best"]
    assert saved["settings"]["eval"]["every"] == 1 and saved["settings"]["model"]["name_or_path"] == "tiny"
    # the same command again: the run is complete, it resumes from its checkpoint and keeps the curve and the best
    again = mod.main(argv)
    assert again["resumed"] and again["validation_curve"] == saved["validation_curve"]
    assert again["best"] == saved["best"] and again["test_best"] == saved["test_best"]
    assert again["test_final"] is None  # only the best checkpoint is tested unless --test-final


def test_smoke_records_stay_out_of_the_recorded_results():
    mod = _script()
    assert mod.parse(["--smoke"]).record_dir == str(REPO / "runs" / "heldout" / "smoke_records")
    assert mod.parse([]).record_dir == str(REPO / "data" / "heldout")
    assert mod.parse(["--smoke", "--record-dir", "/x"]).record_dir == "/x"


def test_base_test_cache_is_used_only_for_the_same_settings(tmp_path):
    mod = _script()
    a = mod.parse(["--smoke", "--record-dir", str(tmp_path)])
    cfg = TrainConfig.from_dict(mod.build_config(a, tmp_path / "run", tmp_path / "val.jsonl"))
    exs = [{"id": "a"}, {"id": "b"}]
    calls = []

    def compute():
        calls.append(1)
        return {"test/p@1": float(len(calls))}

    assert mod.base_test(a, cfg, exs, compute) == {"test/p@1": 1.0}
    assert mod.base_test(a, cfg, exs, compute) == {"test/p@1": 1.0} and len(calls) == 1  # cached
    assert mod.base_test(a, cfg, exs[:1], compute) == {"test/p@1": 2.0}  # other test questions: computed again
    b = mod.parse(["--smoke", "--record-dir", str(tmp_path), "--k", "3"])
    b.k = 3
    cfg3 = TrainConfig.from_dict(mod.build_config(b, tmp_path / "run", tmp_path / "val.jsonl"))
    assert mod.base_test(b, cfg3, exs[:1], compute) == {"test/p@1": 3.0}  # other k: computed again


def test_sweep_runs_the_plan_the_chapter_reports_against(monkeypatch):
    from tsallis_ref.experiments.heldout import PLAN

    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    spec = importlib.util.spec_from_file_location("run_heldout_sweep", REPO / "scripts" / "run_heldout_sweep.py")
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    runs = sweep.plan(["hotpotqa", "finqa"])
    want = {(ds, m, q, s) for ds in ("hotpotqa", "finqa") for (m, q), ss in PLAN.items() for s in ss}
    assert len(runs) == len(want) == 24 and set(runs) == want
    assert runs[:2] == [("hotpotqa", "grpo", None, 0), ("hotpotqa", "grpo", None, 1)]  # both seeds' bases first
    assert sweep.label("hotpotqa", "garl", 0.75, 1) == "hotpotqa_garl_q0.75_seed1"
    assert sweep.label("finqa", "grpo", None, 0) == "finqa_grpo_seed0"

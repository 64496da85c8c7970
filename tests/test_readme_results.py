"""The README's summary of the held-out results says what the records in ``data/heldout/`` hold: every number it
quotes is recomputed here from the records, and each qualitative claim (no FinQA run left step 0, no verifier
reward on HotpotQA, GARL q = 0.75 above GRPO on every seed) is checked against them."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("pandas")

from tsallis_ref.experiments import heldout as H  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RECORD_DIR = REPO / "data" / "heldout"
RECORDS = H.load_records(RECORD_DIR)
BASE = H.load_base(RECORD_DIR)
if not RECORDS:
    pytest.skip(f"no held-out record in {RECORD_DIR}", allow_module_level=True)

# the README with its line breaks folded, so a sentence can be matched across lines
README = " ".join((REPO / "README.md").read_text().split())


def _runs(ds: str, method: str, q: float | None = None) -> list[dict]:
    runs = [r for r in RECORDS if r["dataset"] == ds and r["method"] == method and (q is None or r["q"] == q)]
    assert runs, f"no {ds} {method} q={q} record"
    return sorted(runs, key=lambda r: r["seed"])


def _p1(runs: list[dict]) -> str:
    return " / ".join(f"{r['test_best']['test/p@1']:.1f}" for r in runs)


def _signal(runs: list[dict], column: str) -> str:
    t = H.signal_table(runs)
    return " / ".join(f"{v:.1f}" for v in t.sort_values("seed")[column])


def test_the_readme_quotes_the_records():
    assert f"What the {len(RECORDS)} recorded runs show" in README
    # FinQA: the untrained model's test, every run at step 0, GARL q = 0.75's log wbar
    finqa_base = sorted((b for b in BASE if b["dataset"] == "finqa"), key=lambda b: b["seed"])
    untrained = " / ".join(f"{b['test']['test/p@1']:.1f}" for b in finqa_base)
    assert f"test p@1 {untrained} % on seeds" in README
    assert all(r["best_step"] == 0 for r in RECORDS if r["dataset"] == "finqa")
    garl = _runs("finqa", "garl", 0.75)
    assert (
        f"from {_signal(garl, 'first 5 steps')} over the first five steps to {_signal(garl, 'last 5 steps')} "
        "over the last five" in README
    )
    # HotpotQA: no verifier reward; GARL q = 0.75 against GRPO and GARL q = 1; PAFT
    for method in ("grpo", "rloo", "maxrl"):
        for r in _runs("hotpotqa", method):
            assert all(p["reward_mean"] == 0 for p in r["train_curve"]), r["label"]
    g75, grpo, g1 = _runs("hotpotqa", "garl", 0.75), _runs("hotpotqa", "grpo"), _runs("hotpotqa", "garl", 1.0)
    assert all(a["test_best"]["test/p@1"] > b["test_best"]["test/p@1"] for a, b in zip(g75, grpo, strict=True))
    assert all(a["test_best"]["test/p@1"] > b["test_best"]["test/p@1"] for a, b in zip(g75, g1, strict=True))
    assert f"(test p@1 {_p1(g75)} against {_p1(grpo)})" in README
    assert f"above GARL q = 1 ({_p1(g1)})" in README
    paft = {q: _runs("hotpotqa", "paft", q) for q in (0.75, 1.0)}
    assert f"(q = 0.75: {_p1(paft[0.75])}, q = 1: {_p1(paft[1.0])})" in README
    best = max(r["test_best"]["test/p@1"] for r in RECORDS if r["dataset"] == "hotpotqa")
    assert best == paft[0.75][0]["test_best"]["test/p@1"]  # "PAFT ... scored highest"

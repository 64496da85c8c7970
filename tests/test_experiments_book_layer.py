"""The book layer (tsallis_ref.experiments): a package of runs, the paper's tables and record readers."""
import math

import pytest

pd = pytest.importorskip("pandas")

from tsallis_ref import experiments as X  # noqa: E402
from tsallis_ref.experiments import paper, records, runs  # noqa: E402

ROW = {"dataset": "hotpotqa", "method": "grpo", "q": None, "regime": "warm",
       "eval": {"p@1": 12.5, "p@2": 25.0, "maj@2": 12.5, "n_examples": 1}, "settings": {"eval_k": 2}}


def test_package_reexports_every_public_name():
    for mod in (runs, paper, records):
        for name in mod.__all__:
            assert getattr(X, name) is getattr(mod, name), name
    assert callable(X.evaluate_base) and callable(X.shared_base_model)


def test_core_does_not_import_the_book_layer():
    import subprocess
    import sys
    code = ("import sys, tsallis_ref, tsallis_ref.trainer, tsallis_ref.data; "
            "print(any(m.startswith('tsallis_ref.experiments') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_table3_marks_rows_not_run_and_for_reader_says_so():
    t = X.table3([ROW], "hotpotqa")
    assert bool(t.loc["GRPO", "ran"]) and t.loc["GRPO", "ours m@k"] == 12.5
    assert not bool(t.loc["Base (no training, prompted)", "ran"])
    assert math.isnan(t.loc["Base (no training, prompted)", "ours m@k"])
    shown = X.for_reader(t)
    assert "ran" not in shown.columns
    assert shown.loc["GRPO", "ours m@k"] == "12.5"
    assert shown.loc["Base (no training, prompted)", "ours m@k"] == "not run"
    assert shown.loc["GARL (q=0) = RB-RLOO", "paper m@16"] == "21.6*"   # the paper's marks are kept


def test_for_reader_rejects_bad_digits():
    with pytest.raises(ValueError, match="digits"):
        X.for_reader(X.table1([], "finqa"), digits=-1)

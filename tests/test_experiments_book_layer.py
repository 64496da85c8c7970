"""The book layer (tsallis_ref.experiments): a package of runs, the paper's tables and record readers."""

import math

import pytest

pd = pytest.importorskip("pandas")

from tsallis_ref import experiments as X  # noqa: E402
from tsallis_ref.experiments import paper, records, runs  # noqa: E402

ROW = {
    "dataset": "hotpotqa",
    "method": "grpo",
    "q": None,
    "regime": "warm",
    "eval": {"p@1": 12.5, "p@2": 25.0, "maj@2": 12.5, "n_examples": 1},
    "settings": {"eval_k": 2},
}


def test_package_reexports_every_public_name():
    for mod in (runs, paper, records):
        for name in mod.__all__:
            assert getattr(X, name) is getattr(mod, name), name
    assert callable(X.evaluate_base) and callable(X.shared_base_model)


def test_core_does_not_import_the_book_layer():
    import subprocess
    import sys

    code = (
        "import sys, tsallis_ref, tsallis_ref.trainer, tsallis_ref.data; "
        "print(any(m.startswith('tsallis_ref.experiments') for m in sys.modules))"
    )
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
    assert shown.loc["GARL (q=0) = RB-RLOO", "paper m@16"] == "21.6*"  # the paper's marks are kept


def test_for_reader_rejects_bad_digits():
    with pytest.raises(ValueError, match="digits"):
        X.for_reader(X.table1([], "finqa"), digits=-1)


def _run(label, lr, seed, P, q=1.0, p0=1e-3):
    return {
        "label": label,
        "lr": lr,
        "seed": seed,
        "q": q,
        "p0_target": p0,
        "eval_step": [5 * i for i in range(len(P))],
        "P": P,
    }


def test_miniature_outcomes_and_best_stable_lr():
    from tsallis_ref.experiments import miniature_records as MR

    runs = [
        _run("GARL q=1", 0.01, 0, [1e-3, 0.6, 0.7]),
        _run("GARL q=1", 0.01, 1, [1e-3, 0.2, 0.6]),  # escape 5, 10
        _run("GARL q=1", 0.1, 0, [1e-3, 0.6, 1e-6]),
        _run("GARL q=1", 0.1, 1, [1e-3, 0.7, 0.8]),  # one collapses
        _run("GRPO", 0.01, 0, [1e-3, 1e-3, 1e-3]),
        _run("GRPO", 0.01, 1, [1e-3, 1e-5, 1e-6]),
    ]  # stall, collapse
    out = MR.outcomes(runs, 0.5)
    assert out["GARL q=1", 0.01, 1] == ("escaped", 10)
    assert out["GARL q=1", 0.1, 0] == ("escaped, then collapsed", 5)
    assert out["GRPO", 0.01, 0] == ("stalled", None) and out["GRPO", 0.01, 1] == ("collapsed", None)
    # lr 0.1 has a collapse, so the stable lr is 0.01 (median of 5 and 10: the upper one); GRPO has none
    assert MR.best_stable_lr(out) == {"GARL q=1": (0.01, 10)}
    sweep, stable = MR.p0_sweep(runs, [("GARL q=1", 1.0, 0.01), ("GARL q=1", 1.0, 0.1)], 0.5)
    assert len(sweep["GARL q=1", 1.0, 0.01]) == 2 and stable["GARL q=1", 1.0, 0.01]
    assert not stable["GARL q=1", 1.0, 0.1]


def test_fit_escape_constant_recovers_the_constant_of_eq15():
    from tsallis_ref.experiments import miniature_records as MR
    from tsallis_ref.theory import escape_time

    pts = [(p0, 3.7 * escape_time(p0, 0.5, 0.5)) for p0 in (1e-1, 1e-2, 1e-4)]
    assert MR.fit_escape_constant(pts, 0.5, 0.5) == pytest.approx(3.7, rel=1e-12)
    with pytest.raises(ValueError, match="no"):
        MR.fit_escape_constant([], 0.5, 0.5)
    with pytest.raises(ValueError, match="p0"):
        MR.fit_escape_constant([(0.7, 10)], 0.5, 0.5)


def test_load_records_names_a_missing_file(tmp_path):
    from tsallis_ref.experiments import miniature_records as MR

    with pytest.raises(FileNotFoundError, match="nothere.json"):
        MR.load_records([tmp_path / "nothere.json"])


def test_new_record_starts_with_the_command_and_machine_that_provenance_reads():
    from tsallis_ref.experiments import miniature_records as MR

    rec = MR.new_record("scripts/run_x.py", ["--p0", "0.1"], args={"p0": [0.1]}, runs=[])
    assert list(rec) == ["produced_by", "machine", "args", "runs"]
    assert rec["produced_by"] == "scripts/run_x.py --p0 0.1" and rec["runs"] == [] and rec["args"] == {"p0": [0.1]}
    line = MR.provenance(rec, "x.json")
    assert line.startswith("x.json:\nscripts/run_x.py --p0 0.1\n  date ")
    import torch

    assert f"torch {torch.__version__}" in line and "?" not in line


def test_wrap_command_breaks_a_long_command_into_shell_lines():
    cmd = (
        "scripts/run_miniature_escape.py --p0 1e-3 --runs garl:1 paft:1 garl:0.5 --lrs 0.003 0.01 0.03 0.1 0.3 "
        "--seeds 0 1 --steps 200 --out data/miniature/escape_lrgrid_1e-3_a.json"
    )
    out = X.wrap_command(cmd, width=60)
    lines = out.split("\n")
    assert len(lines) > 1 and all(len(line) <= 60 for line in lines), out
    assert all(line.endswith(" \\") for line in lines[:-1]) and not lines[-1].endswith("\\")
    assert all(line.startswith("    --") for line in lines[1:]), out  # an option starts each continued line
    # joined the way a shell joins them, the words are the command's
    assert out.replace(" \\\n", " ").split() == cmd.split()
    assert "--lrs 0.003 0.01 0.03 0.1 0.3" in out  # an option keeps its values where they fit
    assert X.wrap_command("python short.py --x 1") == "python short.py --x 1"
    with pytest.raises(ValueError, match="width"):
        X.wrap_command(cmd, width=8)


def test_provenance_lines_fit_a_code_block():
    from tsallis_ref.experiments import miniature_records as MR

    rec = {
        "produced_by": "scripts/run_miniature_sweep.py --pretrained data/miniature/pretrained_decoder_2000.json "
        "--p0 1e-3 --M 128 --B 4 --steps 120 --answer-noise 0.005 --lr 0.003 --grad-clip inf --seeds 0 1",
        "machine": {"date_utc": "2026-11-23", "processor": "x86_64", "torch": "2.13.0+cpu", "torch_threads": 1},
    }
    text = MR.provenance(rec, "sweep.json")
    assert text.startswith("sweep.json:\nscripts/run_miniature_sweep.py")
    assert max(map(len, text.split("\n"))) <= 75, text
    assert text.endswith("date 2026-11-23, x86_64, torch 2.13.0+cpu, 1 thread")

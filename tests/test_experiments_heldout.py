"""tsallis_ref.experiments.heldout on synthetic records shaped like scripts/run_heldout.py's: reading and checking a
folder, the id-disjointness check, the paper-shaped tables (ours beside the paper's on the same dataset, "not run"
where nothing ran, per-seed values), the per-run tables, what every seed shows, and the learning-curve figures."""

import json
import math

import pytest

pd = pytest.importorskip("pandas")

from tsallis_ref.experiments import heldout as H  # noqa: E402


def record(dataset="hotpotqa", method="garl", q=0.75, seed=0, val_maj=(0.0, 6.2, 12.5, 6.2), test=(10.0, 20.0, 12.0),
           signal=(-9.0, -8.0, -7.0), ids=None):  # fmt: skip
    """A record as scripts/run_heldout.py writes it (only the fields the chapter reads, plus a few)."""
    q = None if method in H.VERIFIER else q
    steps = [10 * i for i in range(len(val_maj))]
    best = steps[val_maj.index(max(val_maj))]
    name = "reward_mean" if method in H.VERIFIER else "log_wbar_mean"
    label = f"{dataset}_{method}{'' if q is None else f'_q{q:g}'}_seed{seed}"
    return {
        "label": label,
        "command": f"python scripts/run_heldout.py --dataset {dataset} --method {method} --seed {seed}",
        "date": "2026-12-02T01:00:00+00:00",
        "hardware": "CPU test, 1 thread(s)",
        "resumed": False,
        "settings": {
            "model": {"name_or_path": "smollm2-gguf", "load_in_4bit": False, "lora": {"r": 8}},
            "rollout": {"M": 4, "rationale_budget": 32, "answer_budget": 16},
            "optim": {"optimizer": "adamw", "lr": 1e-3, "prompts_per_step": 2},
            "data": {"regime": "cold", "context_budget": 64},
            "eval": {"k": 4, "every": 10, "judge": "relaxed"},
            "steps": steps[-1],
        },
        "dataset": dataset,
        "method": method,
        "q": q,
        "seed": seed,
        "ids": ids or {"train": ["a", "b", "c"], "validation": ["v1", "v2"], "test": ["t1", "t2", "t3"]},
        "validation_curve": [
            {"step": s, "val/p@1": m / 2, "val/p@k": m * 2, "val/maj@k": m, "val/n": 2, "val/k": 4}
            for s, m in zip(steps, val_maj)
        ],
        "train_curve": [{"step": i + 1, "loss": 0.1 * i, name: v} for i, v in enumerate(signal)],
        "best": {"step": best},
        "best_step": best,
        "test_final": None,
        "test_best": {"test/p@1": test[0], "test/p@k": test[1], "test/maj@k": test[2], "test/n": 3, "test/k": 4},
    }


def write(folder, rec):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{rec['label']}.json").write_text(json.dumps(rec))


def test_load_records_reads_checks_and_names_a_malformed_file(tmp_path):
    assert H.load_records(tmp_path / "nothing") == []  # nothing recorded yet
    write(tmp_path, record(method="grpo", seed=1))
    write(tmp_path, record(method="grpo", seed=0))
    smoke = record()
    smoke["label"] = "smoke_hotpotqa_garl_q0.75_seed0"
    write(tmp_path, smoke)
    recs = H.load_records(tmp_path)
    assert [r["label"] for r in recs] == ["hotpotqa_grpo_seed0", "hotpotqa_grpo_seed1"]  # by name, no smoke run
    assert len(H.load_records(tmp_path, include_smoke=True)) == 3
    bad = record(method="paft", q=1.0)
    del bad["validation_curve"][1]["val/maj@k"]
    write(tmp_path, bad)
    with pytest.raises(H.RecordError, match=r"hotpotqa_paft_q1_seed0\.json: field `val/maj@k` is missing "
                                            r"\(validation_curve\[1\]\)"):  # fmt: skip
        H.load_records(tmp_path)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r.pop("ids"), "field `ids.train` is missing"),
        (lambda r: r.update(seed="0"), "field `seed` is str '0', expected int"),
        (lambda r: r.update(seed=True), "field `seed` is bool"),
        (lambda r: r.update(q=1.5), r"field `q` is 1.5; garl needs a commitment q in \[0, 1\]"),
        (lambda r: r.update(method="ppo"), "field `method` is 'ppo'"),
        (lambda r: r.update(best_step=7), "field `best_step` is 7, not a step of `validation_curve`"),
        (lambda r: r["train_curve"][0].pop("log_wbar_mean"), r"field `log_wbar_mean` is missing \(train_curve\[0\]\)"),
        (lambda r: r["test_best"].pop("test/p@k"), "field `test_best.test/p@k` is missing"),
        (lambda r: r.update(validation_curve=[]), "field `validation_curve` is empty"),
    ],
)
def test_validate_record_names_the_field(change, message):
    r = record()
    H.validate_record(r, "x.json")  # the unchanged record passes
    change(r)
    with pytest.raises(H.RecordError, match="record x.json: " + message):
        H.validate_record(r, "x.json")


def test_a_verifier_method_has_no_q_and_its_signal_is_the_reward():
    r = record(method="grpo")
    assert r["q"] is None and "reward_mean" in r["train_curve"][0]
    H.validate_record(r)
    r["q"] = 0.5
    with pytest.raises(H.RecordError, match="a verifier method has q null"):
        H.validate_record(r)


def test_label_must_match_the_file_name(tmp_path):
    r = record()
    (tmp_path / "other.json").write_text(json.dumps(r))
    with pytest.raises(H.RecordError, match="other.json: field `label` is 'hotpotqa_garl_q0.75_seed0'"):
        H.load_records(tmp_path)


def test_assert_disjoint_finds_shared_and_repeated_ids():
    good = record()
    assert H.assert_disjoint([good, record(seed=1)]) == 2
    assert all(v == [] for v in H.id_overlaps(good).values())
    leak = record(ids={"train": ["a", "b"], "validation": ["v1", "b"], "test": ["t1"]})
    assert H.id_overlaps(leak)["train & validation"] == ["b"]
    with pytest.raises(AssertionError, match=r"hotpotqa_garl_q0.75_seed0: .*'train & validation': \['b'\]"):
        H.assert_disjoint([good, leak])
    twice = record(ids={"train": ["a"], "validation": ["v1"], "test": ["t1", "t1"]})
    with pytest.raises(AssertionError, match="duplicates"):
        H.assert_disjoint([twice])
    test_leak = record(ids={"train": ["a"], "validation": ["v1"], "test": ["a"]})
    assert H.id_overlaps(test_leak)["train & test"] == ["a"]


def test_load_base_reads_the_untrained_models_tests(tmp_path):
    assert H.load_base(tmp_path) == []
    (tmp_path / "base").mkdir()
    key = {"dataset": "finqa", "seed": 1, "eval": {"k": 4}}
    test = {"test/p@1": 1.0, "test/p@k": 3.0, "test/maj@k": 2.0}
    (tmp_path / "base" / "finqa_seed1.json").write_text(json.dumps({"key": key, "test": test}))
    assert H.load_base(tmp_path) == [{"dataset": "finqa", "seed": 1, "k": 4, "judge": None, "test": test}]
    key["eval"]["judge"] = "finqa_exec"  # the judge the test was scored with, when the file names it
    (tmp_path / "base" / "finqa_seed1.json").write_text(json.dumps({"key": key, "test": test}))
    assert H.load_base(tmp_path)[0]["judge"] == "finqa_exec"
    (tmp_path / "base" / "finqa_seed2.json").write_text(json.dumps({"key": key, "test": {"test/p@1": 1.0}}))
    with pytest.raises(H.RecordError, match=r"finqa_seed2\.json: field `test.test/p@k` is missing"):
        H.load_base(tmp_path)


def test_table1_on_finqa_puts_ours_beside_the_papers_column_with_per_seed_values():
    recs = [
        record("finqa", "garl", 0.75, 0, test=(10.0, 20.0, 12.0)),
        record("finqa", "garl", 0.75, 1, test=(20.0, 30.0, 16.0)),
        record("hotpotqa", "garl", 0.75, 0, test=(50.0, 60.0, 55.0)),  # another dataset: not in FinQA's rows
        record("finqa", "rloo", None, 0, test=(1.0, 2.0, 3.0)),
    ]
    t = H.table1(recs, "finqa")
    row = t.loc["GARL q=0.75"]
    assert (row["paper p@1"], row["paper p@16"], row["paper m@16"]) == (30.5, 61.1, 38.3)
    assert row["ours p@1"] == (10.0, 20.0) and row["ours maj@k"] == (12.0, 16.0) and row["seeds"] == (0, 1)
    assert t.loc["GARL q=0.25", "ours p@1"] == () and pd.isna(t.loc["RLOO", "paper p@1"])
    assert list(t.index[:6]) == [
        "GRPO",
        "GARL q=0 (RB-RLOO)",
        "GARL q=0.25",
        "GARL q=0.5",
        "GARL q=0.75",
        "GARL q=1",
    ]  # the paper's rows first, in its order
    assert {"RLOO", "MaxRL", "PAFT q=0.75", "PAFT q=1"} <= set(t.index)  # the plan's other rows
    r = H.for_reader(t)
    assert r.loc["GARL q=0.75", "ours p@1"] == "15.0 (10.0, 20.0)"
    assert r.loc["GARL q=0.75", "paper p@1"] == "30.5" and r.loc["RLOO", "paper p@1"] == "-"
    assert r.loc["RLOO", "ours maj@k"] == "3.0" and r.loc["GRPO", "ours p@1"] == "not run"
    assert r.loc["GARL q=0.75", "seeds"] == "0, 1"


def test_table1_on_hotpotqa_has_no_paper_column():
    t = H.table1([record("hotpotqa", "garl", 1.0, 0, test=(5.0, 6.0, 7.0))], "hotpotqa")
    assert not [c for c in t.columns if c.startswith("paper")]
    assert t.loc["GARL q=1", "ours p@k"] == (6.0,) and t.loc["GRPO", "ours p@1"] == ()


def test_table2_says_warm_grpo_was_not_run_and_shows_our_cold_grpo():
    recs = [record("hotpotqa", "grpo", seed=s, test=(0.0, 0.0, float(s))) for s in (0, 1)]
    recs.append(record("hotpotqa", "garl", 0.75, 0, test=(3.0, 4.0, 5.0)))
    t = H.table2(recs, "hotpotqa")
    assert t.loc["GRPO (warm)", "paper p@1"] == 29.1 and t.loc["GRPO (warm)", "ours p@1"] == ()
    assert t.loc["GRPO (cold)", "ours maj@k"] == (0.0, 1.0) and pd.isna(t.loc["GRPO (cold)", "paper p@1"])
    assert t.loc["GARL q=0.75 (cold)", "paper m@16"] == 57.2 and t.loc["GARL q=0.75 (cold)", "ours p@1"] == (3.0,)
    assert H.for_reader(t).loc["GRPO (warm)", "ours maj@k"] == "not run"
    assert H.table2(recs, "finqa").loc["GRPO (cold)", "paper p@1"] == 0.0  # FinQA: the paper's Table 1 GRPO row
    with pytest.raises(ValueError, match="dataset='gsm8k'"):
        H.table2(recs, "gsm8k")


def test_table3_base_row_is_the_untrained_models_test():
    recs = [record("hotpotqa", "paft", 0.75, 0, test=(1.0, 2.0, 9.0))]
    base = [{"dataset": "hotpotqa", "seed": s, "k": 4, "test": {"test/p@1": 1.0, "test/p@k": 2.0,
                                                                 "test/maj@k": 2.0 + s}} for s in (1, 0)]  # fmt: skip
    t = H.table3(recs, base, "hotpotqa")
    assert t.loc["Base (untrained)", "paper m@16 (warm start)"] == "22.2"
    assert t.loc["Base (untrained)", "ours maj@k (cold start)"] == (2.0, 3.0)  # seed order
    assert t.loc["PAFT q=0.75", "paper m@16 (warm start)"] == "47.9"
    assert t.loc["PAFT q=0.75", "ours maj@k (cold start)"] == (9.0,)
    assert t.loc["GARL q=0.75", "paper m@16 (warm start)"] == "46.8*"
    assert H.for_reader(t).loc["GRPO", "ours maj@k (cold start)"] == "not run"
    assert H.for_reader(t).loc["PAFT q=1", "paper m@16 (warm start)"] == "-"
    assert H.table3(recs, [], "finqa").loc["Base (untrained)", "ours maj@k (cold start)"] == ()


def test_every_seed_states_only_what_every_seed_shows():
    recs = [
        record(method="grpo", seed=0, test=(0.0, 0.0, 0.0)),
        record(method="grpo", seed=1, test=(5.0, 0.0, 0.0)),
        record(method="garl", q=0.75, seed=0, test=(10.0, 0.0, 4.0)),
        record(method="garl", q=0.75, seed=1, test=(2.0, 0.0, 4.0)),
        record(method="garl", q=1.0, seed=0, test=(1.0, 0.0, 4.0)),  # one seed only: no pair with it
        record(method="paft", q=1.0, seed=0, test=(1.0, 0.0, 4.0)),
        record(method="paft", q=1.0, seed=1, test=(1.0, 0.0, 0.0)),
    ]
    s = H.every_seed(recs, "hotpotqa").set_index(["A", "B", "metric"])
    assert s.loc[("GARL q=0.75", "GRPO", "test maj@k"), "relation on every seed"] == "A > B"
    assert s.loc[("GRPO", "GARL q=0.75", "test p@1"), "relation on every seed"] == "mixed"  # ahead on one seed each
    assert s.loc[("GARL q=0.75", "PAFT q=1", "test maj@k"), "relation on every seed"] == "A >= B"
    assert s.loc[("GARL q=0.75", "PAFT q=1", "test maj@k"), "B per seed"] == (4.0, 0.0)
    assert s.loc[("PAFT q=1", "GRPO", "test maj@k"), "relation on every seed"] == "A >= B"  # the one ahead first
    assert s.loc[("GRPO", "PAFT q=1", "test p@1"), "relation on every seed"] == "mixed"
    assert s.loc[("GARL q=0.75", "PAFT q=1", "test p@1"), "relation on every seed"] == "A > B"
    assert not [k for k in s.index if "GARL q=1" in k[:2]]  # ran on one seed only
    assert H.every_seed(recs, "finqa").empty


def test_every_seed_puts_the_one_ahead_first():
    recs = [record(method="grpo", seed=s, test=(0.0, 0.0, 0.0)) for s in (0, 1)]
    recs += [record(method="garl", q=1.0, seed=s, test=(0.0, 0.0, 1.0 + s)) for s in (0, 1)]
    s = H.every_seed(recs, "hotpotqa", metrics=("maj@k",))
    assert list(s["A"]) == ["GARL q=1"] and list(s["B"]) == ["GRPO"] and list(s["A per seed"]) == [(1.0, 2.0)]


def test_runs_and_signal_tables():
    recs = [record(val_maj=(6.0, 12.0, 3.0)), record(method="maxrl", val_maj=(6.0, 6.0, 6.0), signal=(0.0, 0.25, 0.0))]
    t = H.runs_table(recs)
    assert list(t["best step"]) == [10, 0] and list(t["best = untrained"]) == [False, True]
    assert list(t["fell after peak"]) == [True, False] and list(t["val maj@k peak"]) == [12.0, 6.0]
    s = H.signal_table(recs, window=2).set_index("method")
    assert s.loc["GARL q=0.75", "signal"] == "log_wbar_mean"
    assert s.loc["GARL q=0.75", "first 2 steps"] == pytest.approx(-8.5)
    assert s.loc["GARL q=0.75", "last 2 steps"] == pytest.approx(-7.5)
    assert s.loc["MaxRL", "steps with reward > 0"] == pytest.approx(1 / 3) and s.loc["MaxRL", "max"] == 0.25
    assert math.isnan(s.loc["GARL q=0.75", "steps with reward > 0"])
    assert H.runs_table(recs, "finqa").empty


def test_settings_table_reads_the_records_and_shows_differences():
    a, b = record(), record(seed=1)
    b["settings"]["rollout"]["M"] = 8
    t = H.settings_table([a, b])
    assert t.loc["M (rationales per prompt)", "value"] == "4 / 8"
    assert t.loc["test questions", "value"] == "3" and t.loc["steps", "value"] == "30"
    assert t.loc["base weights", "value"] == "float32"


def test_figures_have_one_line_per_run_and_fit_the_column():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tsallis_ref.plotting import BOOK_WIDTH

    recs = [record(), record(seed=1), record(method="grpo", signal=(0.0, 0.0, 0.25))]
    fig = H.plot_validation(recs, "hotpotqa")
    assert fig.get_size_inches()[0] <= BOOK_WIDTH and len(fig.axes) == 2
    assert [len(ax.lines) for ax in fig.axes] == [3, 3]
    assert list(fig.axes[1].lines[2].get_ydata()) == [0.0, 6.2, 12.5, 6.2]
    fig2 = H.plot_training(recs, "hotpotqa")
    assert [len(ax.lines) for ax in fig2.axes] == [2, 1]  # log wbar for GARL, the reward for GRPO
    assert list(fig2.axes[1].lines[0].get_ydata()) == [0.0, 0.0, 0.25]
    assert H.plot_validation(recs, "finqa") is None
    plt.close("all")


def test_plan_status_says_not_run_for_what_is_missing():
    recs = [record("hotpotqa", "grpo", seed=0), record("hotpotqa", "garl", 0.5, seed=0)]
    t = H.plan_status(recs, ["hotpotqa", "finqa"])
    assert t.loc["GRPO", "hotpotqa"] == "seed 0; seed 1 not run"  # the plan has seeds 0 and 1 for GRPO
    assert t.loc["GARL q=0.5", "hotpotqa"] == "seed 0" and t.loc["GARL q=0.5", "finqa"] == "not run"
    assert t.loc["PAFT q=1", "hotpotqa"] == "not run"
    recs.append(record("finqa", "garl", 0.25, seed=3))  # outside the plan, on the second dataset: listed too
    t = H.plan_status(recs, ["hotpotqa", "finqa"])
    assert t.loc["GARL q=0.25", "finqa"] == "seed 3" and t.loc["GARL q=0.25", "hotpotqa"] == "not run"


def test_findings_are_computed_from_the_records():
    recs = [
        record(method="grpo", seed=s, val_maj=(6.0, 6.0, 6.0, 6.0), test=(1.0, 2.0, 3.0), signal=(0.0, 0.0))
        for s in (0, 1)
    ]
    recs += [
        record(method="garl", q=0.75, seed=0, val_maj=(6.0, 12.0, 6.0, 6.0), test=(4.0, 5.0, 6.0), signal=(-9.0, -5.0)),
        record(method="garl", q=0.75, seed=1, val_maj=(6.0, 6.0, 6.0, 6.0), test=(1.0, 2.0, 3.0), signal=(-9.0, -9.0)),
    ]
    base = [
        {"dataset": "hotpotqa", "seed": s, "k": 4, "test": {"test/p@1": 7.5 + s, "test/reward_em": 0.5}} for s in (1, 0)
    ]
    f = H.findings(recs, ["hotpotqa", "finqa"], base, window=1)
    text = "\n".join(f["hotpotqa"])
    assert f["hotpotqa"][0] == "4 of the 12 planned runs are recorded."
    assert f["hotpotqa"][1] == (
        "The untrained model (seeds 0, 1): test p@1 7.5, 8.5 under the judge of the tables, 0.5, 0.5 under "
        "the exact match that GRPO, RLOO and MaxRL are rewarded with in training."
    )
    # the judge the untrained model's tests name, in words (FinQA's runs are judged by its numeric match)
    judged = [dict(b, judge="finqa_exec") for b in base]
    assert H.findings(recs, ["hotpotqa"], judged, window=1)["hotpotqa"][1].startswith(
        "The untrained model (seeds 0, 1): test p@1 7.5, 8.5 under FinQA's numeric match (its execution accuracy), "
        "the judge of the tables, 0.5, 0.5 under the exact match"
    )
    judged = [dict(b, judge="relaxed") for b in base]
    assert (
        "7.5, 8.5 under the relaxed substring match (the paper's evaluation), the judge of the tables"
        in (H.findings(recs, ["hotpotqa"], judged, window=1)["hotpotqa"][1])
    )
    assert "In 3 of 4 runs no later validation beat the untrained model's maj@k" in text
    assert "rose above its step-0 value in GARL q=0.75 seed 0." in text
    assert "After its peak, validation fell again in GARL q=0.75 seed 0." in text
    assert "The last validation maj@k is below" not in text  # every run ends at or above its step 0
    assert "Highest test p@1: 4.0, by GARL q=0.75 seed 0." in text  # two seeds of GARL q=0.75: no flag
    assert "Highest test maj@k: 6.0, by GARL q=0.75 seed 0." in text
    at0 = "\n".join(H.findings(recs[1:2], ["hotpotqa"])["hotpotqa"])  # GRPO seed 1 alone: kept step 0
    assert "by GRPO seed 1 (GRPO: one seed recorded, so not a ranking) (each the untrained model's test" in at0
    one = recs + [record(method="paft", q=1.0, seed=0, test=(4.0, 5.0, 9.0))]
    top = "\n".join(H.findings(one, ["hotpotqa"])["hotpotqa"])
    assert (
        "Highest test p@1: 4.0, by GARL q=0.75 seed 0, PAFT q=1 seed 0 (PAFT q=1: one seed recorded, so not a ranking)."
        in top
    )
    assert "Highest test maj@k: 9.0, by PAFT q=1 seed 0 (PAFT q=1: one seed recorded, so not a ranking)." in top
    recs[3]["validation_curve"][-1]["val/maj@k"] = 0.0
    worse = "\n".join(H.findings(recs, ["hotpotqa"], window=1)["hotpotqa"])
    assert "below the untrained model's (step 0) in GARL q=0.75 seed 1 (0.0 against 6.0)." in worse
    assert "GARL q=0.75 is at or above GRPO on every seed (test maj@k on seeds 0, 1: 6.0, 3.0 against 3.0, 3.0)" in text
    assert "GRPO seed 1: a non-zero mean reward in 0 % of its steps" in text
    assert "GARL q=0.75 seed 0: log wbar -9.00 over the first 1 steps, -5.00 over the last 1." in text
    assert f["finqa"] == ['No run recorded (the plan has 12): every cell of this dataset says "not run".']
    recs[2]["test_best"]["test/maj@k"] = 2.0  # seed 0 now below GRPO's, seed 1 above: no ordering on every seed
    recs[3]["test_best"]["test/maj@k"] = 4.0
    assert "Neither GRPO nor GARL q=0.75 is ahead on every seed" in "\n".join(
        H.findings(recs, ["hotpotqa"])["hotpotqa"]
    )


def test_scale_statement_reads_the_settings_and_the_seed_spread():
    recs = [record(method="grpo", seed=0, test=(0.0, 0.0, 2.0)), record(method="grpo", seed=1, test=(0.0, 0.0, 7.0))]
    s = H.scale_statement(recs)
    assert s[0].startswith("Scale: SmolLM2-135M-Instruct, M = 4 rationales of at most 32 tokens, 30 training steps")
    assert "2 validation and 3 test questions, k = 4" in s[0]
    assert "one validation question is 50.0 points of validation maj@k, one test question 33.3 points" in s[1]
    assert "differ by up to 5.0 points in test maj@k (GRPO on hotpotqa)" in s[1]
    assert H.scale_statement([]) == ["No run is recorded yet: nothing can be concluded on this page."]


def test_provenance_table_has_one_row_per_record():
    r = record()
    r["wall_s"] = {"train_this_process": 601.4, "test": 99.6}
    t = H.provenance_table([r, record(seed=1)])
    assert list(t["run"]) == ["hotpotqa_garl_q0.75_seed0", "hotpotqa_garl_q0.75_seed1"]
    assert t.loc[0, "train s (last process)"] == 601 and t.loc[0, "test s"] == 100 and pd.isna(t.loc[1, "test s"])
    assert t.loc[0, "command"].startswith("python scripts/run_heldout.py")


def test_provenance_shows_commands_without_local_paths():
    r = record()
    r["command"] = "python scripts/run_heldout.py --seed 0 --record-dir /work/main/data/heldout --runs-root /tmp/x/y/"
    assert H.provenance_table([r]).loc[0, "command"] == (
        "python scripts/run_heldout.py --seed 0 --record-dir data/heldout --runs-root y"
    )
    assert H.portable_command("/srv/repo/scripts/run_heldout.py --runs-root /srv/repo/runs") == (
        "scripts/run_heldout.py --runs-root runs"
    )

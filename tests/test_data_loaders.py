"""Loaders: uniform schema from every accepted format, counts report, clear errors for malformed files."""

import json

import pytest

datasets = pytest.importorskip("datasets")

from conftest import DATA, needs_data
from conftest import FIXTURES as FIX

from tsallis_ref.data import (
    DataFormatError,
    features,
    load_benchmark,
    read_records,
    record_metadata,
    records_to_dataset,
)

UNIFORM = {"id", "dataset", "question", "context", "paragraphs", "supporting", "answer", "aliases", "metadata"}


def _check_uniform(ds, name):
    assert set(ds.column_names) == UNIFORM
    assert ds.features == features()
    for row in ds:
        assert row["dataset"] == name and row["question"].strip() and row["answer"].strip()
        assert all(0 <= i < len(row["paragraphs"]) for i in row["supporting"])
        assert isinstance(record_metadata(row), dict)


def test_finqa_original_fixture_counts_malformed_and_supporting():
    ds, rep = load_benchmark(FIX / "finqa_original.json")
    _check_uniform(ds, "finqa")
    assert (rep.n_read, rep.n_loaded, rep.n_malformed, rep.n_unanswerable) == (3, 2, 1, 0)
    p = rep.problems[0]
    assert p.index == 1 and p.id == "ACME/2019/page_1.pdf-2" and p.field == "question"
    assert "finqa_original.json" in str(rep) and "record 1" in str(rep)
    r0 = ds[0]
    # y* is the execution result (what the official evaluation grades); the annotated "20%" agrees, so an alias
    assert r0["answer"] == "0.2" and r0["aliases"] == ["20%"]
    assert record_metadata(r0)["annotated_answer"] == "20%"
    # gold_inds table_1 -> the table paragraph, which sits between pre_text and post_text
    assert [r0["paragraphs"][i]["title"] for i in r0["supporting"]] == ["table"]
    assert "net revenue | $ 1,200 | $ 1,000" in r0["context"]
    meta = record_metadata(r0)
    assert meta["program"].startswith("subtract(1200") and meta["gold_value"] == 0.2
    # text_2 is the first post_text sentence: index shifts past the table paragraph
    r1 = ds[1]
    assert [r1["paragraphs"][i]["text"] for i in r1["supporting"]] == ["costs were flat ."]


def test_finqa_processed_fixture():
    ds, rep = load_benchmark(FIX / "finqa_processed.jsonl")
    _check_uniform(ds, "finqa")
    assert (rep.n_loaded, rep.n_malformed) == (2, 2)
    fields = sorted((p.index, p.field) for p in rep.problems)
    assert fields == [(1, "answer"), (3, "context")]
    r = ds[0]
    sup_texts = [r["paragraphs"][i]["text"] for i in r["supporting"]]
    assert "revenue grew in 2019 ." in sup_texts and any("net revenue" in t for t in sup_texts)
    assert ds[1]["aliases"] == ["2200.0"]


def test_hotpotqa_original_list_and_jsonl_and_columnar_agree():
    a, rep = load_benchmark(FIX / "hotpotqa_original.json")
    assert (rep.n_read, rep.n_loaded, rep.n_malformed, rep.n_unanswerable) == (4, 2, 1, 1)
    assert {p.field for p in rep.problems} == {"context", "answer"}
    b, _ = load_benchmark(FIX / "hotpotqa_original.jsonl")
    hub = datasets.Dataset.from_list([json.loads(x) for x in open(FIX / "hotpotqa_columnar.jsonl")])
    c, rep_c = load_benchmark(hub, "hotpotqa")
    for ds in (a, b, c):
        _check_uniform(ds, "hotpotqa")
    for col in ("id", "question", "context", "paragraphs", "supporting", "answer"):
        assert a[col] == b[col] == c[col], col
    assert a[0]["supporting"] == [1, 3] and a[1]["answer"] == "yes"
    assert record_metadata(c[0])["format"] == "hotpotqa_columnar"
    assert rep_c.source.startswith("<datasets.Dataset")


def test_musique_unanswerable_counted_aliases_and_order():
    ds, rep = load_benchmark(FIX / "musique.jsonl")
    _check_uniform(ds, "musique")
    assert (rep.n_read, rep.n_loaded, rep.n_malformed, rep.n_unanswerable) == (4, 2, 1, 1)
    assert {(p.id, p.field) for p in rep.problems} == {("2hop__20_21", "answerable"), ("2hop__bad", "paragraphs[0]")}
    r = ds[0]
    assert r["aliases"] == ["J. Doe", "Jane A. Doe"]
    assert [p["title"] for p in r["paragraphs"]] == ["Page 0", "Page 1", "Page 2", "Page 3"]  # sorted by idx
    assert r["supporting"] == [1, 3]
    kept, rep2 = load_benchmark(FIX / "musique.jsonl", keep_unanswerable=True)
    assert rep2.n_unanswerable == 1 and len(kept) == 3
    assert record_metadata(kept[1])["answerable"] is False
    lst, _ = load_benchmark(FIX / "musique_list.json")
    assert lst["id"] == ds["id"]


def test_strict_mode_raises_with_file_record_field():
    with pytest.raises(DataFormatError, match=r"musique\.jsonl: record 1 \(id='2hop__20_21'\) field 'answerable'"):
        load_benchmark(FIX / "musique.jsonl", strict=True)


@pytest.mark.parametrize(
    "name,pattern",
    [
        ("bad_json.jsonl", r"bad_json\.jsonl: invalid JSON on line 2 \(record 1\)"),
        ("top_level_object.json", r"top_level_object\.json: top level is a JSON object"),
        ("no_question.jsonl", r"no_question\.jsonl: record 0 \(and every other\) has no field 'question'"),
        ("does_not_exist.json", r"does_not_exist\.json: no such file"),
    ],
)
def test_malformed_files_raise_clear_errors(name, pattern):
    with pytest.raises(DataFormatError, match=pattern):
        load_benchmark(FIX / name)


def test_undetectable_and_wrong_dataset_name():
    with pytest.raises(DataFormatError, match="cannot tell the benchmark"):
        records_to_dataset([{"foo": 1}])
    with pytest.raises(ValueError, match="not one of"):
        records_to_dataset([{"id": "x", "question": "q", "paragraphs": []}], "squad")


def test_hub_name_goes_through_load_dataset(monkeypatch):
    hub = datasets.Dataset.from_list([json.loads(x) for x in open(FIX / "hotpotqa_columnar.jsonl")])
    calls = []

    def fake_load_dataset(path, name=None, split=None, **kw):
        calls.append((path, name, split))
        return hub

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    ds, rep = load_benchmark("hotpotqa/hotpot_qa", name="distractor", split="validation", limit=1)
    assert calls == [("hotpotqa/hotpot_qa", "distractor", "validation")]
    assert len(ds) == 1 and rep.source == "hub:hotpotqa/hotpot_qa/distractor[validation]"

    def offline(*a, **k):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataFormatError, match="pass a local path"):
        load_benchmark("hotpotqa/hotpot_qa", name="distractor")


@needs_data
@pytest.mark.parametrize(
    "rel,name,n",
    [
        ("finqa/train_20_original.json", "finqa", 20),
        ("finqa/train_250_processed.jsonl", "finqa", 250),
        ("finqa/dev_838_processed.jsonl", "finqa", 838),
        ("hotpotqa/dev_distractor_200.jsonl", "hotpotqa", 200),
        ("hotpotqa/train_100.json", "hotpotqa", 100),
        ("musique/ans_200.jsonl", "musique", 200),
        ("musique/ans_train_100.json", "musique", 100),
    ],
)
def test_real_samples_load_completely(rel, name, n):
    ds, rep = load_benchmark(DATA / rel)
    assert rep.n_read == n and rep.n_loaded == n and rep.n_malformed == 0, str(rep)
    _check_uniform(ds, name)
    # every real record has known supporting paragraphs
    assert all(len(s) > 0 for s in ds["supporting"])


def test_read_records_handles_jsonl_with_json_suffix(tmp_path):
    p = tmp_path / "x.json"
    p.write_text('{"a": 1}\n{"a": 2}\n')
    assert read_records(p) == [{"a": 1}, {"a": 2}]


# ------------------------------------------------------------------ audit: FinQA gold, Hub schemas, robust records
def _finqa_orig(rid, answer, exe, program="divide(1, 1)"):
    return {
        "id": rid,
        "pre_text": ["a ."],
        "post_text": [],
        "table": [["", "2019"], ["x", "1"]],
        "qa": {"question": "q?", "answer": answer, "exe_ans": exe, "program": program, "gold_inds": {"text_0": "a ."}},
    }


def test_finqa_original_gold_is_exe_ans_and_only_consistent_answers_are_aliases():
    from tsallis_ref.data import finqa_numeric_match

    recs = [
        _finqa_orig("a", "380", 3.8),  # annotated answer disagrees with its own program
        _finqa_orig("b", "17%", 0.17043),  # a rounded percentage rendering: an alias
        _finqa_orig("c", "-417.5", -0.3735),
        _finqa_orig("d", "", "yes"),
        _finqa_orig("e", "9813.67", 9813.66667),
        _finqa_orig("f", "1e-05", 1e-05),
    ]
    ds, rep = records_to_dataset(recs, "finqa")
    assert rep.n_loaded == 6
    assert ds["answer"] == ["3.8", "0.17043", "-0.3735", "yes", "9813.66667", "0.00001"]
    assert list(ds["aliases"]) == [[], ["17%"], [], [], ["9813.67"], ["1e-05"]]
    assert [record_metadata(r)["annotated_answer"] for r in ds] == ["380", "17%", "-417.5", "", "9813.67", "1e-05"]
    # the wrong annotated answers are neither the training target nor accepted by the reward / FinQA judge
    from tsallis_ref.data import reward_exact_match

    for r, wrong in [(ds[0], "380"), (ds[2], "-417.5")]:
        assert reward_exact_match(wrong, r["answer"], r["aliases"]) == 0.0
        assert not any(finqa_numeric_match(wrong, g, percent_scale=False) for g in [r["answer"], *r["aliases"]])
    assert not finqa_numeric_match("-417.5", ds[2]["answer"])


def test_finqa_original_through_datasets_json_gives_the_same_rows(tmp_path):
    # datasets' JSON loader decodes the mixed float/"yes" exe_ans through its Json type (0.17043 -> 0.17043000000000003)
    recs = [_finqa_orig("b", "17%", 0.17043), _finqa_orig("d", "", "yes"), _finqa_orig("g", "1.3%", 0.01328)]
    f = tmp_path / "orig.json"
    f.write_text(json.dumps(recs))
    hub = datasets.load_dataset("json", data_files=str(f), split="train", cache_dir=str(tmp_path / "cache"))
    a, _ = load_benchmark(hub, "finqa")
    b, _ = load_benchmark(f)
    for col in ("id", "question", "context", "supporting", "answer", "aliases"):
        assert a[col] == b[col], col
    assert a["answer"] == ["0.17043", "yes", "0.01328"]


def _finqa_hub_features(kind):
    f = {
        "id": datasets.Value("string"),
        "pre_text": datasets.Sequence(datasets.Value("string")),
        "post_text": datasets.Sequence(datasets.Value("string")),
        "table": datasets.Sequence(datasets.Sequence(datasets.Value("string"))),
        "question": datasets.Value("string"),
    }
    if kind == "ibm":  # ibm-research/finqa (and its parquet copies)
        f.update(
            {
                "answer": datasets.Value("string"),
                "final_result": datasets.Value("string"),
                "program_re": datasets.Value("string"),
                "gold_inds": datasets.Sequence(datasets.Value("string")),
            }
        )
    else:  # dreamerdeo/finqa
        f.update({"answers": datasets.Value("string")})
    return datasets.Features(f)


def test_finqa_hub_columnar_schemas_load():
    table = [["", "2019", "2018"], ["net revenue", "$ 1,200", "$ 1,000"]]
    ibm = datasets.Dataset.from_list(
        [
            {
                "id": "h1",
                "pre_text": ["acme sells widgets .", "revenue grew in 2019 ."],
                "post_text": ["costs were flat ."],
                "table": table,
                "question": "what was the change?",
                "answer": "20%",
                "final_result": "0.2",
                "program_re": "divide(subtract(1200, 1000), 1000)",
                "gold_inds": ["revenue grew in 2019 .", "the net revenue of 2019 is $ 1,200 ; 2018 is $ 1,000 ;"],
            },
            {
                "id": "h2",
                "pre_text": ["a ."],
                "post_text": [],
                "table": table,
                "question": "q?",
                "answer": "",
                "final_result": "",
                "program_re": "",
                "gold_inds": [],
            },
        ],
        features=_finqa_hub_features("ibm"),
    )
    ds, rep = load_benchmark(ibm)  # detected as FinQA from the keys
    assert (rep.n_loaded, rep.n_malformed) == (1, 1) and rep.problems[0].field == "answer", str(rep)
    _check_uniform(ds, "finqa")
    r = ds[0]
    assert r["answer"] == "0.2" and r["aliases"] == ["20%"]
    assert "net revenue | $ 1,200 | $ 1,000" in r["context"] and r["context"].startswith("acme sells widgets .")
    sup = [r["paragraphs"][i] for i in r["supporting"]]
    assert [p["text"] for p in sup if p["title"] == ""] == ["revenue grew in 2019 ."]
    assert any(p["title"] == "table" for p in sup)  # a table-row evidence sentence -> the table paragraph
    meta = record_metadata(r)
    assert meta["format"] == "finqa_hub" and meta["program"].startswith("divide(")

    dd = datasets.Dataset.from_list(
        [{"id": "d1", "pre_text": ["a ."], "post_text": ["b ."], "table": table, "question": "q?", "answers": "1100"}],
        features=_finqa_hub_features("dd"),
    )
    ds2, rep2 = load_benchmark(dd, "finqa")
    assert rep2.n_loaded == 1 and ds2[0]["answer"] == "1100" and ds2[0]["supporting"] == []


def test_odd_records_are_counted_never_raised():
    hp = json.loads(open(FIX / "hotpotqa_columnar.jsonl").readline())
    bad_sf = dict(hp, id="hpx", supporting_facts={"title": ["Title 1"], "sent_id": ["x"]})
    ds, rep = records_to_dataset([hp, bad_sf], "hotpotqa")
    assert (rep.n_loaded, rep.n_malformed) == (1, 1) and rep.problems[0].field.startswith("supporting_facts")
    mq = [json.loads(x) for x in open(FIX / "musique.jsonl")][0]
    bad_idx = json.loads(json.dumps(mq))
    bad_idx["id"] = "2hop__idx"
    bad_idx["paragraphs"][0]["idx"] = None
    ds, rep = records_to_dataset([mq, bad_idx], "musique")
    assert (rep.n_loaded, rep.n_malformed) == (1, 1) and rep.problems[0].field.startswith("paragraphs"), str(rep)
    fo = _finqa_orig("z", "1", 1.0)
    bad_gi = dict(fo, id="gi", qa=dict(fo["qa"], gold_inds=["text_0"]))
    proc = json.loads(open(FIX / "finqa_processed.jsonl").readline())
    bad_ev = dict(proc, id="ev", evidence_indices=["text_1"])
    ds, rep = records_to_dataset([fo, bad_gi], "finqa")
    assert (rep.n_loaded, rep.n_malformed) == (1, 1) and rep.problems[0].field == "qa.gold_inds", str(rep)
    ds, rep = records_to_dataset([proc, bad_ev], "finqa")
    assert (rep.n_loaded, rep.n_malformed) == (1, 1) and rep.problems[0].field == "evidence_indices", str(rep)


@needs_data
def test_real_finqa_gold_answers_are_the_execution_results():
    from tsallis_ref.data import finqa_numeric_match

    orig = read_records(DATA / "finqa/train_20_original.json")
    ds, _ = load_benchmark(DATA / "finqa/train_20_original.json")
    for raw, row in zip(orig, ds):
        exe = raw["qa"]["exe_ans"]
        assert finqa_numeric_match(row["answer"], exe, percent_scale=False), (row["id"], row["answer"], exe)
        assert all(finqa_numeric_match(a, exe, percent_scale=False) for a in row["aliases"]), row["id"]
    # the four released answer strings that contradict their program are not gold answers (nor aliases)
    wrong = {
        r["id"]
        for r in orig
        if r["qa"]["answer"] and not finqa_numeric_match(r["qa"]["answer"], r["qa"]["exe_ans"], percent_scale=False)
    }
    assert len(wrong) >= 4
    assert all(row["answer"] != record_metadata(row)["annotated_answer"] for row in ds if row["id"] in wrong)
    for rel in ("finqa/train_250_processed.jsonl", "finqa/dev_838_processed.jsonl"):
        ds, _ = load_benchmark(DATA / rel)
        assert all(all(finqa_numeric_match(a, r["answer"], percent_scale=False) for a in r["aliases"]) for r in ds)


def test_finqa_processed_golds_are_written_without_float_artifacts():
    from tsallis_ref.data import relaxed_match, reward_exact_match

    base = json.loads(open(FIX / "finqa_processed.jsonl").readline())
    recs = [
        dict(base, id="p1", answer="464.0", gold_value=464.0, target_answer="464.0"),
        dict(base, id="p2", answer="1e-05", gold_value=1e-05, target_answer="1e-05"),
        dict(base, id="p3", answer="-53.0", gold_value=-53.0, target_answer="-53.0"),
        dict(base, id="p4", answer="0.10319", gold_value=0.10319, target_answer="0.103188405797"),
        dict(base, id="p5", answer="yes", gold_value="yes", target_answer="yes"),
    ]
    ds, rep = records_to_dataset(recs, "finqa")
    assert rep.n_loaded == 5
    assert ds["answer"] == ["464", "0.00001", "-53", "0.10319", "yes"]
    assert list(ds["aliases"]) == [["464.0"], ["1e-05"], ["-53.0"], ["0.103188405797"], []]
    # a correct answer in the format the warm prompt asks for is now right under the paper's rules
    r = ds[0]
    assert relaxed_match("464", r["answer"], r["aliases"]) and reward_exact_match("464", r["answer"], r["aliases"])
    assert record_metadata(r)["released_answer"] == "464.0"


@pytest.mark.parametrize("suffix,body", [(".json", '[{"a": 1}, {"a": 2}]'), (".jsonl", '{"a": 1}\n{"a": 2}\n')])
def test_read_records_accepts_a_utf8_byte_order_mark(tmp_path, suffix, body):
    p = tmp_path / f"bom{suffix}"
    p.write_bytes(b"\xef\xbb\xbf" + body.encode())
    assert read_records(p) == [{"a": 1}, {"a": 2}]


# ------------------------------------------------------------------ audit: supporting facts, files, booleans
@pytest.mark.parametrize(
    "sf,field",
    [
        ("Title 1", "supporting_facts"),  # a string, not a list of pairs
        ([["Title 1", 0], "Title 2"], "supporting_facts[1]"),  # an item that is not a pair
        ([["Title 1", 0], ["Title 2", 1, 2]], "supporting_facts[1]"),  # a triple
        ([[3, 0]], "supporting_facts[0]"),  # a title that is not a string
        ({"title": ["Title 1"], "sent_id": [0, 1]}, "supporting_facts"),  # columnar lists of unequal length
        ({"title": "Title 1", "sent_id": [0]}, "supporting_facts"),
        (7, "supporting_facts"),
    ],
)
def test_hotpotqa_malformed_supporting_facts_are_counted_with_file_record_field(sf, field):
    hp = json.loads(open(FIX / "hotpotqa_columnar.jsonl").readline())
    bad = dict(hp, id="hp-bad", supporting_facts=sf)
    ds, rep = records_to_dataset([hp, bad], "hotpotqa", source="f.jsonl")
    assert (rep.n_loaded, rep.n_malformed) == (1, 1), str(rep)
    p = rep.problems[0]
    assert (p.source, p.index, p.id, p.field) == ("f.jsonl", 1, "hp-bad", field)
    ok, rep = records_to_dataset([dict(hp, supporting_facts=None)], "hotpotqa")  # absent (test split): fine
    assert rep.n_loaded == 1 and ok[0]["supporting"] == []


def test_latin1_file_is_a_data_format_error_naming_the_file(tmp_path):
    f = tmp_path / "musique_latin1.jsonl"
    rec = json.loads(open(FIX / "musique.jsonl").readline())
    rec["question"] = "Who founded Société Générale?"
    f.write_bytes(json.dumps(rec, ensure_ascii=False).encode("latin-1") + b"\n")
    with pytest.raises(DataFormatError, match=r"musique_latin1\.jsonl: not UTF-8 text \(byte 0xe9 .*line 1\).*iconv"):
        load_benchmark(f)
    with pytest.raises(DataFormatError, match=r"musique_latin1\.jsonl: not UTF-8"):
        load_benchmark(str(f))


def test_parquet_files_load_like_json(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    recs = [json.loads(x) for x in open(FIX / "hotpotqa_columnar.jsonl")]
    for name in ("hotpot.parquet", "hotpot_no_suffix"):  # by suffix, and by the PAR1 magic bytes
        f = tmp_path / name
        pq.write_table(pa.Table.from_pylist(recs), f)
        ds, rep = load_benchmark(f)
        ref, _ = load_benchmark(FIX / "hotpotqa_columnar.jsonl")
        assert rep.dataset == "hotpotqa" and rep.n_loaded == len(ref) and ds["answer"] == ref["answer"]
        assert ds["supporting"] == ref["supporting"] and ds["context"] == ref["context"]
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    with pytest.raises(DataFormatError, match=r"broken\.parquet: not a readable Parquet file"):
        load_benchmark(broken)


def test_missing_path_and_directory_are_named(tmp_path):
    with pytest.raises(DataFormatError, match=r"no_suffix_file: no such file"):
        load_benchmark(tmp_path / "no_suffix_file")  # a pathlib.Path: never "source must be a path"
    with pytest.raises(DataFormatError, match=r"missing\.parquet: no such file"):
        load_benchmark(str(tmp_path / "missing.parquet"))
    (tmp_path / "a.jsonl").write_text("")
    with pytest.raises(DataFormatError, match=r"is a directory, not a file; pass one file in it \(e\.g\. a\.jsonl\)"):
        load_benchmark(tmp_path)
    with pytest.raises(DataFormatError, match=r"is a directory"):
        load_benchmark(str(tmp_path))
    bad = tmp_path / "notes.txt"
    bad.write_text("id,question\n1,q\n")
    with pytest.raises(DataFormatError, match=r"notes\.txt: does not start like JSON"):
        load_benchmark(bad)


@pytest.mark.parametrize(
    "value,loaded,unanswerable,malformed",
    [
        (True, 1, 0, 0),
        ("true", 1, 0, 0),
        ("True", 1, 0, 0),
        (1, 1, 0, 0),
        ("1", 1, 0, 0),
        (None, 1, 0, 0),
        (False, 0, 1, 0),
        ("false", 0, 1, 0),
        ("FALSE", 0, 1, 0),
        (0, 0, 1, 0),
        ("0", 0, 1, 0),
        ("no", 0, 0, 1),
        ("yes", 0, 0, 1),
        (2, 0, 0, 1),
        ([], 0, 0, 1),
        (0.5, 0, 0, 1),
    ],
)
def test_answerable_is_parsed_strictly(value, loaded, unanswerable, malformed):
    rec = json.loads(open(FIX / "musique.jsonl").readline())
    rec["answerable"] = value
    ds, rep = records_to_dataset([rec], "musique")
    assert (rep.n_loaded, rep.n_unanswerable, rep.n_malformed) == (loaded, unanswerable, malformed), str(rep)
    if malformed:
        assert rep.problems[0].field == "answerable"
    kept, rep = records_to_dataset([rec], "musique", keep_unanswerable=True)
    assert rep.n_unanswerable == unanswerable and len(kept) == loaded + unanswerable
    if len(kept):
        assert record_metadata(kept[0])["answerable"] is bool(loaded)


def test_is_supporting_is_parsed_strictly():
    rec = json.loads(open(FIX / "musique.jsonl").readline())
    ref, _ = records_to_dataset([rec], "musique")
    as_str = json.loads(json.dumps(rec))
    for p in as_str["paragraphs"]:
        p["is_supporting"] = "true" if p.get("is_supporting") else "false"
    ds, rep = records_to_dataset([as_str], "musique")
    assert rep.n_loaded == 1 and ds[0]["supporting"] == ref[0]["supporting"] and ref[0]["supporting"]
    as_str["paragraphs"][0]["is_supporting"] = "maybe"
    ds, rep = records_to_dataset([as_str], "musique")
    assert rep.n_malformed == 1 and rep.problems[0].field == "paragraphs[0].is_supporting"


def test_strict_raises_at_the_first_record_not_loaded_and_keep_unanswerable_keeps_it():
    # strict: every record loaded, or DataFormatError at the first that is not (malformed or unanswerable)
    with pytest.raises(DataFormatError, match=r"record 1 \(id='2hop__20_21'\) field 'answerable'"):
        load_benchmark(FIX / "musique.jsonl", strict=True)
    with pytest.raises(DataFormatError, match=r"record 3 \(id='2hop__bad'\) field 'paragraphs\[0\]'"):
        load_benchmark(FIX / "musique.jsonl", strict=True, keep_unanswerable=True)
    ds, rep = load_benchmark(FIX / "musique.jsonl", strict=True, keep_unanswerable=True, limit=3)
    assert len(ds) == 3 and rep.n_unanswerable == 1

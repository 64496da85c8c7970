"""Loaders: uniform schema from every accepted format, counts report, clear errors for malformed files."""
import json
from pathlib import Path

import pytest

datasets = pytest.importorskip("datasets")

from tsallis_ref.data import (DataFormatError, default_data_dir, features, load_benchmark, read_records,
                              record_metadata, records_to_dataset)

FIX = Path(__file__).parent / "fixtures"
REAL = default_data_dir()
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
    assert r0["answer"] == "20%" and r0["aliases"] == ["0.2"]
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


@pytest.mark.parametrize("name,pattern", [
    ("bad_json.jsonl", r"bad_json\.jsonl: invalid JSON on line 2 \(record 1\)"),
    ("top_level_object.json", r"top_level_object\.json: top level is a JSON object"),
    ("no_question.jsonl", r"no_question\.jsonl: record 0 \(and every other\) has no field 'question'"),
    ("does_not_exist.json", r"does_not_exist\.json: no such file"),
])
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


@pytest.mark.skipif(REAL is None, reason="../shared/data is not present")
@pytest.mark.parametrize("rel,name,n", [
    ("finqa/train_20_original.json", "finqa", 20),
    ("finqa/train_250_processed.jsonl", "finqa", 250),
    ("hotpotqa/dev_distractor_200.jsonl", "hotpotqa", 200),
    ("hotpotqa/train_100.json", "hotpotqa", 100),
    ("musique/ans_200.jsonl", "musique", 200),
    ("musique/ans_train_100.json", "musique", 100),
])
def test_real_samples_load_completely(rel, name, n):
    ds, rep = load_benchmark(REAL / rel)
    assert rep.n_read == n and rep.n_loaded == n and rep.n_malformed == 0, str(rep)
    _check_uniform(ds, name)
    # every real record has known supporting paragraphs
    assert all(len(s) > 0 for s in ds["supporting"])


def test_read_records_handles_jsonl_with_json_suffix(tmp_path):
    p = tmp_path / "x.json"
    p.write_text('{"a": 1}\n{"a": 2}\n')
    assert read_records(p) == [{"a": 1}, {"a": 2}]

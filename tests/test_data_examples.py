"""tsallis_ref.data.load_examples: the trainer's `data.dataset` entry point over the shared benchmark samples."""

from __future__ import annotations

import pytest
from conftest import DATA, needs_data

from tsallis_ref.data import SPLIT_FILES, load_examples, resolve_source


@needs_data
@pytest.mark.parametrize("name", ["finqa", "hotpotqa", "musique", "HotpotQA", "mu-sique"])
@pytest.mark.parametrize("split,kind", [("train", "train"), ("dev", "dev"), ("validation", "dev")])
def test_names_and_splits_map_to_the_shared_files(name, split, kind):
    src = resolve_source(name, split)
    key = name.lower().replace("-", "")
    assert src["kind"] == "file" and src["dataset"] == key
    assert src["source"].endswith(SPLIT_FILES[key][kind])


@needs_data
@pytest.mark.parametrize("regime", ["warm", "cold"])
def test_load_examples_contract(regime):
    ex = load_examples("hotpotqa", split="train", regime=regime, limit=3, context_budget=40)
    assert len(ex) == 3
    for e in ex:
        assert set(e) == {"id", "prompt", "answer", "aliases"} and e["answer"].strip()
        assert ("Answer:" in e["prompt"]) == (regime == "warm")  # cold start: no answer-format instruction
    assert len({e["id"] for e in ex}) == 3


@needs_data
def test_explicit_data_dir_and_file_path(tmp_path):
    a = load_examples("musique", split="dev", data_dir=DATA, limit=2)
    b = load_examples(str(DATA / SPLIT_FILES["musique"]["dev"]), limit=2)
    assert [e["id"] for e in a] == [e["id"] for e in b]
    with pytest.raises(ValueError, match="data_dir"):
        load_examples("finqa", data_dir=tmp_path)


def test_bad_inputs_name_the_fix():
    with pytest.raises(ValueError, match="split"):
        resolve_source("hotpotqa", "test")
    with pytest.raises(ValueError, match="unknown dataset"):
        resolve_source("squad")
    with pytest.raises(ValueError, match="regime"):
        load_examples("hotpotqa", regime="lukewarm")
    with pytest.raises(ValueError, match="limit"):
        load_examples("hotpotqa", limit=0)
    assert resolve_source("hotpotqa/hotpot_qa:distractor", "validation") == {
        "kind": "hub",
        "source": "hotpotqa/hotpot_qa",
        "dataset": None,
        "config": "distractor",
        "split": "validation",
    }


def test_without_a_data_folder_hotpotqa_and_musique_fall_back_to_their_hub_copies(monkeypatch):
    import tsallis_ref.data.examples as ex

    monkeypatch.setattr(ex, "default_data_dir", lambda *a, **k: None)
    assert resolve_source("hotpotqa", "dev") == {
        "kind": "hub",
        "source": "hotpotqa/hotpot_qa",
        "dataset": "hotpotqa",
        "config": "distractor",
        "split": "validation",
    }
    # dgslibisey/MuSiQue: the released MuSiQue-Ans JSONL files (train, dev -> validation)
    assert resolve_source("musique", "train") == {
        "kind": "hub",
        "source": "dgslibisey/MuSiQue",
        "dataset": "musique",
        "config": None,
        "split": "train",
    }
    assert resolve_source("musique", "validation")["split"] == "validation"
    with pytest.raises(ValueError, match="no known Hub copy"):
        resolve_source("finqa", "train")


def test_a_source_with_no_usable_record_is_an_error_naming_the_problems(tmp_path):
    from tsallis_ref.data import DataFormatError

    f = tmp_path / "all_bad.jsonl"
    f.write_text(
        '{"id": "a", "question": "q?", "paragraphs": [], "answer": "x", "answerable": false}\n'
        '{"id": "b", "question": "q?", "paragraphs": "oops", "answer": "y"}\n'
    )
    with pytest.raises(DataFormatError, match=r"no usable record.*read 2, loaded 0, malformed 1, unanswerable 1"):
        load_examples(str(f))


def test_paths_and_directories_reach_the_loader_and_its_errors(tmp_path):
    from pathlib import Path as _P

    from tsallis_ref.data import DataFormatError

    fix = _P(__file__).parent / "fixtures" / "musique.jsonl"
    ex = load_examples(fix, regime="cold")  # a pathlib.Path, not only a str
    assert [e["id"] for e in ex] == ["2hop__10_11", "2hop__30_31"]
    with pytest.raises(DataFormatError, match="is a directory, not a file"):
        load_examples(str(tmp_path))
    with pytest.raises(DataFormatError, match="no_such: no such file"):
        load_examples(tmp_path / "no_such")

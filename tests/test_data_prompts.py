"""Warm/cold prompts, token-budget truncation that keeps supporting paragraphs, the trainer contract."""

import pytest

pytest.importorskip("datasets")

from conftest import FIXTURES as FIX

from tsallis_ref.data import (
    ANSWER_FORMATS,
    COLD_TEMPLATE,
    WARM_TEMPLATES,
    build_prompt,
    load_benchmark,
    make_counter,
    to_training_examples,
    truncate_paragraphs,
)
from tsallis_ref.evaluation import byte_tokenizer


@pytest.fixture(scope="module")
def rows():
    out = {}
    for name, f in [
        ("finqa", "finqa_original.json"),
        ("hotpotqa", "hotpotqa_original.json"),
        ("musique", "musique.jsonl"),
    ]:
        ds, _ = load_benchmark(FIX / f)
        out[name] = ds
    return out


@pytest.mark.parametrize("name", ["finqa", "hotpotqa", "musique"])
def test_warm_has_instructions_cold_has_none(rows, name):
    row = rows[name][0]
    warm, _ = build_prompt(row, "warm")
    cold, _ = build_prompt(row, "cold")
    assert warm == WARM_TEMPLATES[name].format(context=row["context"], question=row["question"])
    assert cold == COLD_TEMPLATE.format(context=row["context"], question=row["question"])
    assert "Answer: <answer>" in warm and ANSWER_FORMATS[name] in warm
    for scaffold in ("Answer", "Think", "Question:", "step by step", ANSWER_FORMATS[name]):
        assert scaffold not in cold
    assert cold.endswith(row["question"]) and row["context"] in cold
    assert row["answer"] not in cold.replace(row["context"], "")  # y* never leaks into x*


def test_truncation_keeps_supporting_first_and_original_order():
    paras = [{"title": f"T{i}", "text": " ".join(f"w{i}_{j}" for j in range(10))} for i in range(6)]
    sup = [4, 1]
    ctx, info = truncate_paragraphs(paras, sup, 35, "hotpotqa")
    count, _ = make_counter()
    assert count(ctx) <= 35 and info["truncated"]
    assert {1, 4} <= set(info["kept"])
    assert info["kept"] == sorted(info["kept"]) and ctx.index("T1:") < ctx.index("T4:")
    # two supporting paragraphs (11 words each) and one more fit in 35 words: the earliest other one, T0
    assert info["kept"] == [0, 1, 4]
    # no budget -> everything, untouched
    full, info2 = truncate_paragraphs(paras, sup, None, "hotpotqa")
    assert info2["kept"] == list(range(6)) and not info2["truncated"]


def test_truncation_cuts_supporting_when_they_alone_exceed_budget():
    paras = [{"title": "A", "text": " ".join(["x"] * 50)}, {"title": "B", "text": " ".join(["y"] * 50)}]
    ctx, info = truncate_paragraphs(paras, [1], 20, "hotpotqa")
    assert info["kept"] == [1] and info["cut"] == [1]
    assert make_counter()[0](ctx) <= 20 and ctx.startswith("B: y")
    with pytest.raises(ValueError, match="budget"):
        truncate_paragraphs(paras, [1], 0, "hotpotqa")
    with pytest.raises(ValueError, match="out of range"):
        truncate_paragraphs(paras, [5], 10, "hotpotqa")


def test_truncation_with_a_tokenizer_counts_tokens():
    tok = byte_tokenizer()  # one token per byte
    paras = [{"title": "", "text": "abc " * 30}, {"title": "table", "text": "rev | 1 | 2"}]
    ctx, info = truncate_paragraphs(paras, [1], 40, "finqa", tokenizer=tok)
    assert len(tok(ctx, add_special_tokens=False)["input_ids"]) <= 40
    assert "rev | 1 | 2" in ctx and info["kept"][-1] == 1


def test_to_training_examples_contract(rows):
    ex = to_training_examples(rows["musique"], mode="cold", context_budget=30)
    assert len(ex) == len(rows["musique"])
    for e, r in zip(ex, rows["musique"]):
        assert set(e) == {"id", "prompt", "answer", "aliases"}
        assert e["id"] == r["id"] and e["answer"] == r["answer"] and e["aliases"] == r["aliases"]
        assert "Page 1 says" in e["prompt"] and "Page 3 says" in e["prompt"]  # the supporting ones survive
    assert ex[0]["aliases"] == ["J. Doe", "Jane A. Doe"]
    assert len(to_training_examples(rows["finqa"], "warm", limit=1)) == 1
    with pytest.raises(ValueError, match="mode"):
        to_training_examples(rows["finqa"], "hot")


def test_whitespace_cut_keeps_the_layout_of_a_cut_paragraph():
    # a FinQA table cut to the budget keeps one row per line (the cut used to join the words with spaces)
    table = {"title": "table", "text": "a | 1 | 2\nb | 3 | 4\nc | 5 | 6\nd | 7 | 8"}
    ctx, info = truncate_paragraphs([{"title": "", "text": "intro words here"}, table], [1], 12, "finqa")
    assert info["cut"] == [1] and make_counter()[0](ctx) <= 12
    assert ctx.startswith("a | 1 | 2\nb | 3 | 4\n")
    _, cut = make_counter()
    assert cut("  x  y\n\nz w ", 3) == "x  y\n\nz" and cut("x y", 5) == "x y" and cut("x y", 0) == ""


def test_truncation_edge_cases_empty_and_unicode():
    assert truncate_paragraphs([], [], 5, "hotpotqa")[0] == ""
    paras = [{"title": "Zoë", "text": "Ünïcödé " * 20}, {"title": "B", "text": "日本語のテキスト " * 10}]
    ctx, info = truncate_paragraphs(paras, [0, 1], 3, "hotpotqa")
    assert ctx == "Zoë: Ünïcödé Ünïcödé" and info["kept"] == [0] == info["cut"]
    tok = byte_tokenizer()
    ctx, info = truncate_paragraphs(paras, [1], 30, "hotpotqa", tokenizer=tok)
    assert len(tok(ctx, add_special_tokens=False)["input_ids"]) <= 30 and ctx.startswith("B: 日本語")
    assert "\ufffd" not in ctx

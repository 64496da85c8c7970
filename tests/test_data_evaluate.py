"""The evaluation harness on a tiny random Llama (it must run, batch, and aggregate correctly)."""

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tsallis_ref.data import aggregate
from tsallis_ref.evaluation import byte_tokenizer, evaluate, generate_samples, score_samples
from tsallis_ref.models import tiny_model

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny():
    tok = byte_tokenizer()
    model = tiny_model(tok, seed=0, num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=False)
    return model, tok


EXAMPLES = [
    {"id": "a", "prompt": "Q: one?", "answer": "1", "aliases": []},
    {"id": "b", "prompt": "Question: which band is it, really?", "answer": "Rush", "aliases": ["rush band"]},
    {"id": "c", "prompt": "x", "answer": "yes", "aliases": []},
]


def test_generate_samples_shapes_batches_and_seed(tiny):
    model, tok = tiny
    g1 = generate_samples(
        model, tok, [e["prompt"] for e in EXAMPLES], k=5, batch_size=4, max_new_tokens=6, progress=False, seed=1
    )
    assert [len(x) for x in g1] == [5, 5, 5] and all(isinstance(s, str) for x in g1 for s in x)
    g2 = generate_samples(
        model, tok, [e["prompt"] for e in EXAMPLES], k=5, batch_size=4, max_new_tokens=6, progress=False, seed=1
    )
    assert g1 == g2  # reproducible for a fixed seed
    assert tok.padding_side == "right"  # restored


def test_evaluate_aggregates_per_example_scores(tiny):
    model, tok = tiny
    k = 4
    res = evaluate(
        model,
        tok,
        EXAMPLES,
        k=k,
        dataset="hotpotqa",
        batch_size=5,
        max_new_tokens=6,
        progress=False,
        keep_generations=True,
    )
    assert [e["id"] for e in res.per_example] == ["a", "b", "c"]
    for ex, e in zip(EXAMPLES, res.per_example):
        # re-scoring the kept generations gives the same numbers
        again = score_samples(e["generations"], ex["answer"], ex["aliases"], k=k, dataset="hotpotqa")
        for key in ("p@1", f"p@{k}", f"maj@{k}", "em", "f1", "reward_em"):
            assert e[key] == again[key]
        assert e["n"] == k
    agg = res.aggregate
    assert agg["n_examples"] == 3
    for key in ("p@1", f"p@{k}", f"maj@{k}", "em", "f1"):
        assert agg[key] == pytest.approx(100 * sum(e[key] for e in res.per_example) / 3)
    assert agg[f"p@{k}"] >= agg["p@1"]
    assert res.config["k"] == k and res.config["judge"] == "relaxed"


def test_evaluate_counts_a_forced_correct_answer(tiny):
    """Force the generation to be the gold answer: every metric must then be 100%."""
    model, tok = tiny
    ids = tok("Answer: 1", add_special_tokens=False)["input_ids"]

    class Forced(torch.nn.Module):
        """Wraps the tiny model; generate() appends the fixed ids (an oracle policy)."""

        def __init__(self, m):
            super().__init__()
            self.m = m

        def generate(self, input_ids, attention_mask=None, **kw):
            tail = torch.tensor(ids).expand(input_ids.shape[0], -1)
            return torch.cat([input_ids, tail], dim=1)

    res = evaluate(Forced(model), tok, EXAMPLES[:1], k=3, dataset="finqa", judge="finqa_exec", progress=False)
    e = res.per_example[0]
    assert e["preds"] == ["1"] * 3
    assert res.aggregate["p@1"] == res.aggregate["p@3"] == res.aggregate["maj@3"] == res.aggregate["exec_acc"] == 100.0


def test_evaluate_rejects_examples_without_contract_keys(tiny):
    model, tok = tiny
    with pytest.raises(ValueError, match=r"examples\[0\] lacks keys \['aliases'\]"):
        evaluate(model, tok, [{"id": "a", "prompt": "p", "answer": "x"}], k=2, progress=False)
    with pytest.raises(ValueError, match="judge"):
        evaluate(model, tok, EXAMPLES, k=2, judge="fuzzy", progress=False)


def test_evaluate_passes_the_sampling_keywords_to_generate_samples(tiny):
    """evaluate's sampling keywords are generate_samples' (one signature): unknown ones are named, its
    defaults are recorded, and the generations are those generate_samples draws with the same keywords."""
    model, tok = tiny
    with pytest.raises(TypeError, match=r"unknown keyword\(s\) \['max_tokens'\].*generate_samples"):
        evaluate(model, tok, EXAMPLES, k=2, max_tokens=4, progress=False)
    with pytest.raises(TypeError, match=r"\['end_marker'\].*set by answer_format"):
        evaluate(model, tok, EXAMPLES, k=2, end_marker="</t>", progress=False)
    res = evaluate(model, tok, EXAMPLES[:1], k=2, max_new_tokens=3, seed=5, progress=False, keep_generations=True)
    assert res.config == {
        "k": 2,
        "dataset": None,
        "judge": "relaxed",
        "batch_size": 16,
        "max_new_tokens": 3,
        "think_budget": None,
        "temperature": 1.0,
        "top_p": 1.0,
        "seed": 5,
    }
    again = generate_samples(model, tok, [EXAMPLES[0]["prompt"]], 2, max_new_tokens=3, seed=5, progress=False)
    assert res.per_example[0]["generations"] == again[0]


def test_aggregate_skips_undefined_metrics():
    agg = aggregate([{"p@1": 1.0, "em": None}, {"p@1": 0.0}], ["p@1", "em"])
    assert agg == {"p@1": 50.0, "n_examples": 2}


def test_chat_template_is_applied_when_the_tokenizer_has_one(tiny):
    from tsallis_ref.evaluation import _prompt_text

    model, tok = tiny
    assert _prompt_text(tok, "hi", None) == "hi"  # no template -> the raw prompt
    tok2 = byte_tokenizer()
    tok2.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    assert _prompt_text(tok2, "hi", None) == "<|user|>hi<|assistant|>"
    assert _prompt_text(tok2, "hi", False) == "hi"
    g = generate_samples(model, tok2, ["hi"], k=2, batch_size=2, max_new_tokens=3, progress=False)
    assert len(g[0]) == 2


def test_budget_forcing_closes_the_rationale(tiny):
    model, tok = tiny
    # no eos ever: every sample runs out of its rationale budget and gets </think> forced
    gens = generate_samples(
        model,
        tok,
        ["Q: a?", "Q: bb?"],
        k=3,
        batch_size=4,
        max_new_tokens=4,
        think_budget=6,
        progress=False,
        generate_kwargs={"suppress_tokens": [tok.eos_token_id]},
    )
    for g in (x for row in gens for x in row):
        assert g.count("</think>") == 1
        before, after = g.split("</think>")
        # a byte token decodes to at most one character (random bytes -> U+FFFD), so characters bound tokens
        assert len(before.replace("<s>", "s")) <= 6 + 1  # the rationale budget (+ the forced newline)
        assert after.startswith("\n\n") and len(after.replace("<s>", "s")) <= 2 + 4  # forced "\n\n" + the answer budget
    with pytest.raises(ValueError, match="think_budget"):
        generate_samples(model, tok, ["x"], k=1, think_budget=0, progress=False)

"""tsallis_ref.testing: the small models and data for tests and benchmarks are reproducible from their seed and
leave the global random state alone."""

import random

import pytest
import torch

from tsallis_ref.testing import addition_examples, tiny_model, tiny_tokenizer, trl_model, trl_tokenizer


def test_builders_leave_the_global_random_state_alone():
    random.seed(0), torch.manual_seed(0)
    py, pt = random.getstate(), torch.get_rng_state()
    tok = trl_tokenizer()
    a = trl_model(tok, seed=3, dtype=torch.float64)
    b = trl_model(tok, seed=3, dtype=torch.float64)
    tiny_model(tiny_tokenizer(), seed=3)
    addition_examples(5, seed=1)
    assert random.getstate() == py and torch.equal(torch.get_rng_state(), pt)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert a.dtype == torch.float64 and tok.padding_side == "left"
    assert a.config.vocab_size == len(tok) and not a.config.tie_word_embeddings


def test_addition_examples():
    one = addition_examples(20, seed=2)
    assert one == addition_examples(20, seed=2) and one != addition_examples(20, seed=3)
    for e in one:
        a, b = (int(t) for t in e["prompt"].removeprefix("Q: ").removesuffix("=").split("+"))
        assert 0 <= a <= 9 and 0 <= b <= 9 and e["answer"] == str(a + b)
    two = addition_examples(20, seed=0, digits=2, prompt="{a}+{b}=?", id_prefix="")
    assert [e["id"] for e in two] == [str(i) for i in range(20)]
    assert all(10 <= int(x) <= 99 for e in two for x in e["prompt"].removesuffix("=?").split("+"))
    with pytest.raises(ValueError, match="digits"):
        addition_examples(2, digits=0)

"""Teacher-forced scoring: spans, micro-batching, the checkpointed lm head, forward-pass counting."""

import math

import pytest
import torch

torch.set_num_threads(1)

from tsallis_ref.models import tiny_model, tiny_tokenizer
from tsallis_ref.scoring import naive_span_logprobs, pack, score_sequences


@pytest.fixture(scope="module")
def tm():
    tok = tiny_tokenizer()
    model = tiny_model(tok, seed=3)
    return model, tok


def _seqs(tok):
    enc = lambda s: tok(s, add_special_tokens=False).input_ids
    prompts = [enc("Q: 2+2="), enc("Q: 10-3="), enc("x"), enc("Q: 2+2=")]
    rats = [enc("two and two</think>"), enc("ten minus three is seven</think>"), enc("</think>"), enc("hm</think>")]
    ans = [enc("4") + [tok.eos_token_id], enc(" 7") + [tok.eos_token_id], enc("abc"), enc("4") + [tok.eos_token_id]]
    return prompts, rats, ans


def test_pack_masks_select_the_right_targets(tm):
    _, tok = tm
    p, z, a = _seqs(tok)
    ids, att, zm, am = pack(p, z, a, tok.pad_token_id)
    for i in range(len(p)):
        targets = ids[i, 1:]
        assert targets[zm[i]].tolist() == z[i]
        assert targets[am[i]].tolist() == a[i]
        assert int(att[i].sum()) == len(p[i]) + len(z[i]) + len(a[i])
        assert not (zm[i] & am[i]).any()


@pytest.mark.parametrize("mb", [1, 3, 8])
@pytest.mark.parametrize("ckpt", [True, False])
def test_spans_match_naive_per_token_computation(tm, mb, ckpt):
    model, tok = tm
    p, z, a = _seqs(tok)
    with torch.no_grad():
        sc = score_sequences(
            model, p, z, a, pad_id=tok.pad_token_id, micro_batch_size=mb, lm_head_checkpoint=ckpt, return_tokens=True
        )
    for i in range(len(p)):
        lz, ly = naive_span_logprobs(model, p[i], z[i], a[i])
        assert math.isclose(float(sc.logp_z[i]), lz, rel_tol=1e-5, abs_tol=1e-4)
        assert math.isclose(float(sc.logp_y[i]), ly, rel_tol=1e-5, abs_tol=1e-4)
        # per-token completion log-probs sum to the two spans
        assert int(sc.mask[i].sum()) == len(z[i]) + len(a[i])
        assert math.isclose(float(sc.logp_tokens[i][sc.mask[i]].sum()), lz + ly, rel_tol=1e-5, abs_tol=1e-4)


def test_checkpointed_head_gives_the_same_gradient(tm):
    model, tok = tm
    p, z, a = _seqs(tok)
    grads = []
    for ckpt in (True, False):
        model.zero_grad()
        sc = score_sequences(model, p, z, a, pad_id=tok.pad_token_id, micro_batch_size=2, lm_head_checkpoint=ckpt)
        (0.3 * sc.logp_z.sum() - 1.7 * sc.logp_y.sum()).backward()
        grads.append([q.grad.clone() for q in model.parameters()])
    model.zero_grad()
    for g1, g2 in zip(*grads):
        torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-6)


def test_one_forward_call_per_micro_batch(tm):
    model, tok = tm
    p, z, a = _seqs(tok)
    seen = []
    h = model.get_decoder().register_forward_pre_hook(
        lambda mod, args, kwargs: seen.append(kwargs["input_ids"].shape[0]), with_kwargs=True
    )
    try:
        with torch.no_grad():
            sc = score_sequences(model, p * 3, z * 3, a * 3, pad_id=tok.pad_token_id, micro_batch_size=5)
    finally:
        h.remove()
    assert sc.forward_calls == 3 and sc.n_sequences == 12  # the counts the scorer reports ...
    assert len(seen) == 3 and sum(seen) == 12  # ... are the decoder's forward calls


def test_gradient_checkpointing_gives_the_same_gradient():
    tok = tiny_tokenizer()
    p, z, a = _seqs(tok)
    grads = []
    for gc in (False, True):
        model = tiny_model(tok, seed=4)
        model.train()
        if gc:
            if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x
                model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        sc = score_sequences(model, p, z, a, pad_id=tok.pad_token_id, micro_batch_size=2)
        (0.5 * sc.logp_z.sum() - 2.0 * sc.logp_y.sum()).backward()
        grads.append([q.grad.clone() for q in model.parameters()])
    for g1, g2 in zip(*grads):
        torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-6)


def test_scoring_functions_share_one_checked_set_of_options(tm):
    """score_sequences and score_shared take the fields of ScoringOptions: a bad value or an unknown keyword is
    named, and lists of different lengths are refused instead of silently scoring the shortest."""
    from tsallis_ref.shared_prefix import score_shared

    model, tok = tm
    p, z, a = _seqs(tok)
    for fn in (score_sequences, score_shared):
        with pytest.raises(ValueError, match="one entry per sequence; got 4, 4, 3"):
            fn(model, p, z, a[:3], pad_id=tok.pad_token_id, micro_batch_size=2)
        with pytest.raises(ValueError, match="micro_batch_size must be >= 1; got 0"):
            fn(model, p, z, a, pad_id=tok.pad_token_id, micro_batch_size=0)
        with pytest.raises(ValueError, match="logits_chunk must be >= 1 token; got 0"):
            fn(model, p, z, a, pad_id=tok.pad_token_id, micro_batch_size=2, logits_chunk=0)
        with pytest.raises(TypeError, match=rf"{fn.__name__}: unknown keyword\(s\) \['micro_batch'\].*ScoringOptions"):
            fn(model, p, z, a, pad_id=tok.pad_token_id, micro_batch=2)
    with pytest.raises(ValueError, match="lm_head_checkpoint=False.*score_sequences"):
        score_shared(model, p, z, a, pad_id=tok.pad_token_id, micro_batch_size=2, lm_head_checkpoint=False)

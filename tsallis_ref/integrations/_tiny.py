"""Offline tiny model, tokenizer and dataset for the TRL-integration tests and benchmarks.

No hub access is needed: the tokenizer is a character-level ``tokenizers`` WordLevel model
wrapped in ``PreTrainedTokenizerFast`` (with a minimal chat template, left padding as TRL wants) and the model is
:func:`tsallis_ref.models.tiny_model` at the sizes these tests use. Not part of the public API.
"""
from __future__ import annotations

import string

CHARS = string.ascii_letters + string.digits + " +-*/=?.,:;!()<>\n"
SPECIALS = ["<pad>", "<eos>", "<bos>"]

CHAT_TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


def tiny_tokenizer():
    """A character-level fast tokenizer: one token per character of ``CHARS``, pad/eos/bos specials."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIALS)}
    for c in CHARS:
        vocab.setdefault(c, len(vocab))
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tk.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>",
                                  padding_side="left")
    tok.chat_template = CHAT_TEMPLATE
    return tok


def tiny_model(tok, *, hidden_size: int = 32, layers: int = 2, heads: int = 4, seed: int = 0, dtype=None):
    """A random ``LlamaForCausalLM`` sized for a CPU test (about 30k parameters at the defaults): the library's
    one tiny model, :func:`tsallis_ref.models.tiny_model`, with untied embeddings and 256 positions, initialised
    from ``seed`` without touching the global random state."""
    from ..models import tiny_model as build

    model = build(tok, seed=seed, hidden_size=hidden_size, intermediate_size=2 * hidden_size, num_hidden_layers=layers,
                  num_attention_heads=heads, max_position_embeddings=256, tie_word_embeddings=False)
    if dtype is not None:
        model = model.to(dtype)
    return model


def tiny_dataset(n: int = 8, seed: int = 0):
    """``n`` addition problems ``{"prompt": "3+4=?", "answer": "7"}`` as a ``datasets.Dataset``."""
    import random

    from datasets import Dataset

    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        rows.append({"prompt": f"{a}+{b}=?", "answer": str(a + b)})
    return Dataset.from_list(rows)

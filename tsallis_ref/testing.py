"""Small models and data for tests and benchmarks: built offline (no hub access) from configs, with random weights
drawn from a given seed without touching the global random state.

- :func:`tiny_tokenizer`, :func:`tiny_model`: the tiny preset (``model.name_or_path: tiny``), a character
  tokenizer with ``<think>``/``</think>`` as single tokens and a random ``LlamaForCausalLM`` (defined in
  :mod:`tsallis_ref.models`, which loads them for that preset).
- :func:`trl_tokenizer`, :func:`trl_model`: the tokenizer TRL's trainers expect (left padding, a role-tag chat
  template, pad/eos/bos specials) and :func:`tiny_model` at the sizes of the TRL-integration tests and
  benchmarks (untied embeddings, 256 positions, optional dtype).
- :func:`addition_examples`: addition problems in the trainer's example format (``id``, ``prompt``, ``answer``).

The enumerable latent-variable models of the theory chapters (exact ``p(y* | x)``, no sampling) are in
:mod:`tsallis_ref.toy`.
"""

from __future__ import annotations

import random
import string

from .models import tiny_model, tiny_tokenizer

__all__ = [
    "tiny_tokenizer",
    "tiny_model",
    "trl_tokenizer",
    "trl_model",
    "addition_examples",
    "TRL_CHARS",
    "TRL_SPECIALS",
    "TRL_CHAT_TEMPLATE",
]

#: the characters of :func:`trl_tokenizer`, one token each
TRL_CHARS = string.ascii_letters + string.digits + " +-*/=?.,:;!()<>\n"
#: its special tokens, ids 0, 1, 2
TRL_SPECIALS = ["<pad>", "<eos>", "<bos>"]
#: A role-tag chat template, ``<user>text\n`` per message, then ``<assistant>`` for the generation prompt.
TRL_CHAT_TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


def trl_tokenizer():
    """A character-level ``PreTrainedTokenizerFast``: one token per character of :data:`TRL_CHARS`, the specials
    :data:`TRL_SPECIALS` (unknown characters map to ``<pad>``), left padding and :data:`TRL_CHAT_TEMPLATE`."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(TRL_SPECIALS)}
    for c in TRL_CHARS:
        vocab.setdefault(c, len(vocab))
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tk.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", padding_side="left"
    )
    tok.chat_template = TRL_CHAT_TEMPLATE
    return tok


def trl_model(tok, *, hidden_size: int = 32, layers: int = 2, heads: int = 4, seed: int = 0, dtype=None):
    """:func:`tiny_model` for ``tok`` with ``hidden_size`` (MLP ``2 * hidden_size``), ``layers`` and ``heads``,
    untied embeddings and 256 positions (about 30k parameters at the defaults with :func:`trl_tokenizer`),
    initialised from ``seed``; cast to ``dtype`` when given (e.g. ``torch.float64`` for gradient comparisons)."""
    model = tiny_model(
        tok,
        seed=seed,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=256,
        tie_word_embeddings=False,
    )
    if dtype is not None:
        model = model.to(dtype)
    return model


def addition_examples(
    n: int = 8, seed: int = 0, *, digits: int = 1, prompt: str = "Q: {a}+{b}=", id_prefix: str = "ex"
) -> list[dict]:
    """``n`` problems ``{"id": "ex<i>", "prompt": "Q: 3+4=", "answer": "7"}`` whose operands have ``digits``
    digits (one digit: 0 to 9), drawn from ``random.Random(seed)`` (a private generator: the global random
    state is untouched); ``prompt`` is formatted with the operands ``a`` and ``b``."""
    if isinstance(digits, bool) or not isinstance(digits, int) or digits < 1:
        raise ValueError(f"addition_examples: digits must be an integer >= 1; got {digits!r}")
    lo, hi = (0 if digits == 1 else 10 ** (digits - 1)), 10**digits - 1
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b = rng.randint(lo, hi), rng.randint(lo, hi)
        out.append({"id": f"{id_prefix}{i}", "prompt": prompt.format(a=a, b=b), "answer": str(a + b)})
    return out

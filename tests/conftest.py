"""Constants, config builders and fixtures shared by the test files.

- ``ROOT``: the repository root; ``FIXTURES``: ``tests/fixtures`` (small copies of the benchmark formats).
- ``DATA``: the real benchmark samples, ``../shared/data`` beside the repository (or ``$TSALLIS_REF_DATA``),
  ``None`` where absent; mark a test that reads them with ``needs_data`` (it is skipped, saying why).
- ``EXAMPLES``: four addition problems in the trainer's example format.
- ``tiny_cfg(name, overlay, **sections)``: a validated :class:`~tsallis_ref.config.TrainConfig` for the tiny
  model, a short run with no checkpoints, progress bar or TensorBoard.
- Fixtures: ``tiny_tok`` (the tiny preset's character tokenizer) and ``tm`` (a tiny random Llama, seed 1, and
  that tokenizer), one per test module.

Test files import the constants and builders with ``from conftest import ...`` (pytest puts ``tests/`` on
``sys.path``).
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from tsallis_ref.config import TrainConfig
from tsallis_ref.data import default_data_dir

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
DATA = default_data_dir(ROOT)
needs_data = pytest.mark.skipif(
    DATA is None,
    reason="../shared/data (the real benchmark samples) is not present: "
    "clone the repository beside it or set $TSALLIS_REF_DATA to that folder",
)

EXAMPLES = [
    {"id": f"ex{i}", "prompt": f"Q: {a}+{b}=", "answer": str(a + b)}
    for i, (a, b) in enumerate([(1, 2), (3, 4), (2, 2), (5, 1)])
]

#: the tiny run every ``tiny_cfg`` starts from: M = 4 rationales of at most 12 tokens, 2 prompts a step
TINY_RUN = {
    "model": {"name_or_path": "tiny"},
    "rollout": {"M": 4, "rationale_budget": 12, "answer_budget": 3},
    "optim": {"lr": 1e-2, "prompts_per_step": 2, "micro_batch_size": 3},
    "data": {"path": "unused.jsonl"},
    "steps": 2,
    "checkpoint_every": 0,
    "progress_bar": False,
    "tensorboard": False,
}


def _update(d: dict, overlay: dict) -> None:
    """A section given as a mapping updates that section's keys; any other value replaces the key."""
    for k, v in overlay.items():
        d.setdefault(k, {}).update(v) if isinstance(v, dict) else d.__setitem__(k, v)


def tiny_cfg(name: str, overlay: dict | None = None, **sections) -> TrainConfig:
    """``TINY_RUN`` with ``method.name = name`` and ``method.q = 0.75``, then ``overlay`` (a test file's own
    defaults), then ``sections`` (one test's changes), each merged section by section."""
    d = copy.deepcopy(TINY_RUN)
    d["method"] = {"name": name, "q": 0.75}
    _update(d, overlay or {})
    _update(d, sections)
    return TrainConfig.from_dict(d)


@pytest.fixture(scope="module")
def tiny_tok():
    from tsallis_ref.testing import tiny_tokenizer

    return tiny_tokenizer()


@pytest.fixture(scope="module")
def tm(tiny_tok):
    from tsallis_ref.testing import tiny_model

    return tiny_model(tiny_tok, seed=1), tiny_tok

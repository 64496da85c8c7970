"""The TRL trainers log what they train on: the completions table's ``advantage`` column
(``self._logs["advantages"]`` in TRL 1.16) holds GARL's / PAFT's coefficient of each rationale, not the GRPO
advantage of the monitor rewards, and the extra column ``log_w`` holds log w_m."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("trl")

from trl_helpers import cpu_trainer_args, generation_batch_grads  # noqa: E402

from tsallis_ref.estimators import garl_coefficients, paft_coefficients  # noqa: E402
from tsallis_ref.testing import trl_model as tiny_model  # noqa: E402
from tsallis_ref.testing import trl_tokenizer as tiny_tokenizer

torch.set_num_threads(1)


def _trainer(estimator, tmp_path, q, **extra):
    from datasets import Dataset

    tok = tiny_tokenizer()
    model = tiny_model(tok, dtype=torch.float64, seed=1)
    args, tr_cls = cpu_trainer_args(estimator, tmp_path, ga=2, q=q, seed=3, **extra)
    ds = Dataset.from_list([{"prompt": f"{a}+{b}=?", "answer": str(a + b)} for a, b in [(1, 2), (3, 4)]])
    return tr_cls(model, args=args, train_dataset=ds, processing_class=tok)


@pytest.mark.parametrize("estimator,q,baseline", [("garl", 0.75, "rloo"), ("garl", 1.0, "none"), ("paft", 0.5, None)])
def test_logged_advantages_are_the_estimators_coefficients(tmp_path, estimator, q, baseline):
    tr = _trainer(estimator, tmp_path, q, **({"baseline": baseline} if baseline else {}))
    micro, _ = generation_batch_grads(tr, 2)
    # each row's group (stored at generation time), its slot, and PAFT's indices: the coefficient it trained with
    want, logw = [], []
    for inp in micro:
        for i in range(len(inp["slot"])):
            g = inp["group_logp_y"][i : i + 1].double()
            s = int(inp["slot"][i])
            if estimator == "garl":
                c = garl_coefficients(g, q, baseline=baseline).coef_z
            else:
                c = paft_coefficients(g, q, inp["paft_indices"][i : i + 1].cpu())
            want.append(float(c[0, s]))
            logw.append(float(g[0, s]))
    got = list(tr._logs["advantages"])
    assert len(got) == len(want) == 8
    assert sorted(got) == pytest.approx(sorted(want), rel=1e-9, abs=1e-12)
    assert sorted(tr._logs["extra"]["log_w"]) == pytest.approx(sorted(logw), rel=1e-9)
    assert len(tr._logs["extra"]["log_w"]) == len(tr._logs["prompt"]) == 8
    # the monitor reward is 0 everywhere, so TRL's own advantages are all 0; the coefficients are not
    assert any(abs(a) > 1e-12 for a in got)

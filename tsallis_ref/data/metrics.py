"""p@1, p@k and maj@k (paper §7.1: p@1, p@16 and m@16 = maj@16 from 16 samples per prompt).

* :func:`pass_at_k` is the unbiased estimator of Chen et al. (2021, "Evaluating Large Language Models
  Trained on Code", eq. 1): with n samples of which c are correct, ``pass@k = 1 - C(n-c, k) / C(n, k)``,
  computed as a stable product. p@1 = c/n.
* :func:`majority_vote` / :func:`maj_at_k`: majority over the first k sampled answers (Wang et al. 2023),
  voting on a *key* of each answer (by default :func:`~tsallis_ref.data.verify.normalize_answer`).
  Empty answers (nothing extracted) do not vote. **Ties are broken by the earliest first occurrence among
  the k samples** (sample order is the generation order, so the rule is deterministic and reproducible).
  The elected answer (its first raw occurrence) is then judged by the same correctness rule as the samples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .verify import normalize_answer

__all__ = ["pass_at_k", "majority_vote", "maj_at_k", "aggregate"]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al. 2021). Requires 0 <= c <= n, 1 <= k <= n."""
    if not (isinstance(n, int) and isinstance(c, int) and isinstance(k, int)):
        raise TypeError(f"n, c, k must be ints, got {n!r}, {c!r}, {k!r}")
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got c={c}, n={n}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}: draw at least k samples per prompt")
    if n - c < k:
        return 1.0
    if k == 1:
        return c / n  # exact, no round-off from the product
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def majority_vote(answers: Sequence[str], key: Callable[[str], str] = normalize_answer) -> str | None:
    """The majority answer (raw text of its first occurrence), ties -> earliest first occurrence.

    Returns ``None`` when no answer is non-empty after ``key``.
    """
    counts: dict[str, int] = {}
    first: dict[str, int] = {}
    for i, a in enumerate(answers):
        k = key(a) if a is not None else ""
        if not k:
            continue
        counts[k] = counts.get(k, 0) + 1
        first.setdefault(k, i)
    if not counts:
        return None
    best = min(counts, key=lambda k: (-counts[k], first[k]))
    return answers[first[best]]


def maj_at_k(
    answers: Sequence[str],
    is_correct: Callable[[str], bool],
    k: int | None = None,
    key: Callable[[str], str] = normalize_answer,
) -> float:
    """1.0 when the majority answer over the first k samples is correct (0.0 when nothing was extracted)."""
    k = len(answers) if k is None else k
    if not 1 <= k <= len(answers):
        raise ValueError(f"need 1 <= k <= len(answers)={len(answers)}, got k={k}")
    win = majority_vote(list(answers[:k]), key=key)
    return float(win is not None and bool(is_correct(win)))


def aggregate(per_example: Sequence[dict], keys: Sequence[str]) -> dict[str, float]:
    """Mean (in %) of each metric in ``keys`` over examples that define it (a metric missing or ``None`` is skipped)."""
    out: dict[str, float] = {}
    for k in keys:
        vals = [e[k] for e in per_example if e.get(k) is not None]
        if vals:
            out[k] = 100.0 * sum(vals) / len(vals)
    out["n_examples"] = len(per_example)
    return out

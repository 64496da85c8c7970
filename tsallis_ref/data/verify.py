"""Verifiers: answer extraction, normalisation, the paper's rewards and the benchmarks' official metrics.

Paper (Lin & Ie, §7.1; paper-notes §5.1):

* **training reward** (GRPO's binary reward) = exact match of the normalised extracted answer with the
  normalised gold answer, :func:`reward_exact_match`;
* **evaluation** = *relaxed substring match*: correct when the normalised gold answer is a substring of the
  normalised prediction, :func:`relaxed_match`.

Users also compare against the benchmarks' own metrics:

* HotpotQA / MuSiQue answer EM and F1 with the official SQuAD normalisation (:func:`squad_normalize`;
  lower case, punctuation and the articles a/an/the removed, white space collapsed). HotpotQA's official F1
  scores 0 when either side is yes/no/noanswer and they differ (and, as SQuAD v1.1's, 0 when no token is shared,
  both sides empty included); MuSiQue's (SQuAD 2.0's) scores 1 when both sides normalise to empty, and takes the
  max over the answer and its aliases.
* FinQA execution accuracy (:func:`finqa_numeric_match`): numbers compared at the official precision (the
  official FinQA executor rounds to 5 decimals and compares with ``exe_ans``), with percentages handled ("12%" =
  0.12, and a percentage written without its sign, 12 vs 0.12, when ``percent_scale``), and a prediction that is
  the gold rounded to the d decimals it shows accepted.

Normalisation for the reward and the relaxed match is :func:`normalize_answer`: the SQuAD steps, except that
numbers keep their sign, decimal point and percent sign (SQuAD's would turn "-0.05" into "005"), and thousands
separators are dropped ("1,234" -> "1234").
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence

__all__ = [
    "extract_answer",
    "squad_normalize",
    "normalize_answer",
    "exact_match",
    "reward_exact_match",
    "relaxed_match",
    "squad_em",
    "squad_f1",
    "musique_f1",
    "hotpot_f1",
    "max_over_aliases",
    "parse_number",
    "finqa_numeric_match",
    "END_OF_RATIONALE_MARKERS",
]

#: markers after which the final answer starts, tried in this order (last occurrence wins)
END_OF_RATIONALE_MARKERS = ("</think>", "Answer:", "answer:", "ANSWER:")

_ANSWER_IS = re.compile(r"(?:final answer|the answer)\s*(?:is\s*:?|:)\s*", re.IGNORECASE)


def extract_answer(generation: str, markers: Sequence[str] = END_OF_RATIONALE_MARKERS) -> str:
    """The final answer in a generation.

    Rules, in order: text after the last ``</think>``; within it (or the whole text when there is no
    ``</think>``) the text after the last ``Answer:`` (any case) if present; then "the answer is X" /
    "final answer: X"; ``\\boxed{X}`` is unwrapped. The result is the first non-empty line, stripped of
    surrounding white space, ``**`` and a trailing full stop. An empty generation gives ``""``.
    """
    if not isinstance(generation, str):
        raise TypeError(f"generation must be a str, got {type(generation).__name__}")
    text = generation
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    low = text.lower()
    j = low.rfind("answer:")
    if j >= 0:
        text = text[j + len("answer:") :]
    else:
        ms = list(_ANSWER_IS.finditer(text))
        if ms:
            text = text[ms[-1].end() :]
    m = re.search(r"\\boxed\{([^{}]*)\}", text)
    if m:
        text = m.group(1)
    for line in text.splitlines():
        line = line.strip().strip("*").strip()
        if line:
            if line.endswith("."):
                line = line[:-1].rstrip()
            return line
    return ""


def squad_normalize(s: str) -> str:
    """The official SQuAD / HotpotQA / MuSiQue ``normalize_answer``."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


_P_DOT, _P_MINUS, _P_PCT = "\x00d", "\x00m", "\x00p"


def normalize_answer(s: str) -> str:
    """SQuAD normalisation that keeps numbers intact (sign, decimal point, percent; no thousands commas)."""
    s = str(s).lower()
    s = re.sub(r"(?<=\d),(?=\d{3}\b)", "", s)
    s = re.sub(r"(?<=\d)\.(?=\d)", _P_DOT, s)
    s = re.sub(r"(?<![\w\x00])-(?=\.?\d)", _P_MINUS, s)
    s = re.sub(r"(?<=\d)\s*%", _P_PCT, s)
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    s = " ".join(s.split())
    return s.replace(_P_DOT, ".").replace(_P_MINUS, "-").replace(_P_PCT, "%")


def _golds(gold: str, aliases: Iterable[str] | None) -> list[str]:
    out = [gold] + [a for a in (aliases or []) if a]
    return [g for g in out if isinstance(g, str) and g.strip()]


def exact_match(pred: str, gold: str) -> bool:
    """``normalize_answer(pred) == normalize_answer(gold)``."""
    return normalize_answer(pred) == normalize_answer(gold)


def reward_exact_match(pred: str, gold: str, aliases: Iterable[str] | None = None) -> float:
    """Training reward (paper §7.1): 1.0 when the extracted answer exactly matches gold or an alias."""
    return float(any(exact_match(pred, g) for g in _golds(gold, aliases)))


def relaxed_match(pred: str, gold: str, aliases: Iterable[str] | None = None) -> bool:
    """Evaluation (paper §7.1): the normalised gold (or an alias) is a substring of the normalised prediction.

    Note this is the paper's rule, and deliberately loose: gold "1" is found in "10". An empty gold never matches.
    """
    p = normalize_answer(pred)
    return any((ng := normalize_answer(g)) and ng in p for g in _golds(gold, aliases))


def squad_em(pred: str, gold: str) -> float:
    """Official exact match (SQuAD v1.1 / v2.0, HotpotQA, MuSiQue): the normalised strings are equal.

    Two answers that both normalise to ``""`` ("The The", "a.") are equal: EM 1, in every official script."""
    return float(squad_normalize(pred) == squad_normalize(gold))


def squad_f1(pred: str, gold: str) -> float:
    """Official SQuAD v1.1 token F1 (``f1_score`` of ``evaluate-v1.1.py``): harmonic mean of token precision and
    recall of the normalised answers, **0 when they share no token**, so also 0 when both normalise to ``""``.
    HotpotQA's :func:`hotpot_f1` builds on it; MuSiQue uses the SQuAD 2.0 variant, :func:`musique_f1`."""
    p, g = squad_normalize(pred).split(), squad_normalize(gold).split()
    common = Counter(p) & Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0.0
    prec, rec = same / len(p), same / len(g)
    return 2 * prec * rec / (prec + rec)


def musique_f1(pred: str, gold: str) -> float:
    """MuSiQue's official answer F1 (``compute_f1`` of its ``metrics/answer.py``, from the SQuAD 2.0 script):
    when either side normalises to no token, 1 if both do and 0 otherwise; else :func:`squad_f1`."""
    p, g = squad_normalize(pred).split(), squad_normalize(gold).split()
    if not p or not g:
        return float(p == g)
    return squad_f1(pred, gold)


def hotpot_f1(pred: str, gold: str) -> float:
    """Official HotpotQA answer F1 (``f1_score`` of ``hotpot_evaluate_v1.py``): 0 when either normalised side
    is yes/no/noanswer and they differ, else :func:`squad_f1` (so 0 when both normalise to ``""``, while their
    EM is 1: HotpotQA's script has no empty-answer rule)."""
    np_, ng = squad_normalize(pred), squad_normalize(gold)
    special = ("yes", "no", "noanswer")
    if (np_ in special or ng in special) and np_ != ng:
        return 0.0
    return squad_f1(pred, gold)


def max_over_aliases(fn, pred: str, gold: str, aliases: Iterable[str] | None = None) -> float:
    """``max(fn(pred, g))`` over gold and its aliases (MuSiQue's official ``metric_max_over_ground_truths``
    over ``[answer] + answer_aliases``). Every gold string counts, an empty one too, as in the official script
    (an empty gold scores EM and F1 1 against a prediction that normalises to empty); only non-strings are
    dropped."""
    gs = [g for g in [gold, *(aliases or [])] if isinstance(g, str)]
    return max((fn(pred, g) for g in gs), default=0.0)


_NUM = re.compile(
    r"(?<![\w.])[-−]?\$?\s?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?\s?%?"
    r"|(?<![\w.])[-−]?\.\d+(?:[eE][-+]?\d+)?\s?%?"
)


_N = r"\d[\d,]*(?:\.\d+)?"
#: FinQA tables restate a negative in parentheses: "$ -23158 ( 23158 )"; the restatement is dropped
_RESTATED_NEG = re.compile(rf"(-\s*\$?\s*({_N})\s*%?)\s*\(\s*\$?\s*\2\s*%?\s*\)")
#: an answer that is only an accounting negative: "(3.2)", "$ ( 1,234 )", "( 3.2 % )"
_ACCOUNTING_NEG = re.compile(rf"\s*\$?\s*\(\s*\$?\s*({_N}(?:[eE][-+]?\d+)?\s*%?)\s*\)\s*\.?\s*")


def parse_number(text: str) -> tuple[float, bool, int] | None:
    """The last number in ``text`` as ``(value, had_percent_sign, decimals_shown)``, or ``None``.

    ``$``, thousands commas and white space are ignored; "12%" gives ``(12.0, True, 0)`` (the value is in
    the unit written; :func:`finqa_numeric_match` does the scaling). Financial negatives: FinQA's restated form
    "-23158 ( 23158 )" reads as -23158, and an answer that is only a parenthesised number, "(3.2)", as -3.2.
    """
    if not isinstance(text, str):
        return None
    text = _RESTATED_NEG.sub(r"\1", text.replace("−", "-"))
    m = _ACCOUNTING_NEG.fullmatch(text)
    if m:
        text = "-" + m.group(1)
    ms = _NUM.findall(text)
    if not ms:
        return None
    t = ms[-1].replace("$", "").replace(",", "").replace(" ", "")
    pct = t.endswith("%")
    t = t.rstrip("%")
    try:
        v = float(t)
    except ValueError:
        return None
    mant, _, ex = t.lower().partition("e")
    dec = len(mant.split(".")[1]) if "." in mant else 0
    if ex:
        dec = max(dec - int(ex), 0)
    return v, pct, dec


def _sig_digits(v: float, dec: int) -> int:
    """Significant digits shown by a number written with ``dec`` decimals."""
    digits = f"{abs(v):.{dec}f}".replace(".", "").lstrip("0")
    return len(digits)


def finqa_numeric_match(
    pred: str, gold, *, rel_tol: float = 0.0, abs_tol: float = 5e-6, percent_scale: bool = True, min_sig_digits: int = 2
) -> bool:
    """FinQA execution accuracy for one answer.

    ``gold`` is a number (``exe_ans``) or a string ("17%", "0.17043", "yes"). A yes/no gold is compared
    as a normalised string. Otherwise the last number in ``pred`` (:func:`parse_number`) is read in its written
    unit u: u = 100 when pred carries "%", else 1, and with ``percent_scale`` also the other of {1, 100} and 1/100
    (a percentage written without its sign, or a fraction written as a percentage). pred matches when, for a u,

    * ``|pred/u - gold| <= abs_tol`` (default 5e-6: equal at the 5 decimals the official FinQA executor rounds
      to and ``exe_ans`` is written with), or ``isclose(pred/u, gold, rel_tol)`` when ``rel_tol > 0``; or
    * pred is ``gold*u`` rounded to the d decimals pred shows, ``|pred - gold*u| <= 10**-d / 2`` (either way at
      an exact half), *and* pred shows at least ``min_sig_digits`` significant digits.

    So "17%", "0.17" and "1.3%" match 0.17043 and 0.01328 and "9813.67" matches 9813.66667, but a one-digit
    "0.2" does not match 0.17043, nor "0.1706" (it shows 4 decimals and 0.17043 rounds to 0.1704) or the
    truncated "9813".
    """
    if isinstance(gold, str):
        g_norm = normalize_answer(gold)
        if g_norm in ("yes", "no"):
            return normalize_answer(extract_yes_no(pred)) == g_norm
        pg = parse_number(gold)
        if pg is None:
            return normalize_answer(pred) == g_norm
        g = pg[0] / 100.0 if pg[1] else pg[0]
    else:
        g = float(gold)
    pp = parse_number(pred)
    if pp is None or not math.isfinite(g):
        return False
    v, pct, dec = pp
    units = [100.0] if pct else [1.0]
    if pct:
        units.append(1.0) if percent_scale else None
    elif percent_scale:
        units += [100.0, 0.01]
    slack = 1 + 1e-9  # float round-off in the products below
    for u in units:
        if abs(v / u - g) <= abs_tol * slack or (rel_tol > 0 and math.isclose(v / u, g, rel_tol=rel_tol)):
            return True
        gu = g * u
        if abs(v - gu) <= 0.5 * 10.0 ** (-dec) * slack + 1e-12 * abs(gu) and _sig_digits(v, dec) >= min_sig_digits:
            return True
    return False


def extract_yes_no(pred: str) -> str:
    w = squad_normalize(pred).split()
    return w[0] if w and w[0] in ("yes", "no") else pred

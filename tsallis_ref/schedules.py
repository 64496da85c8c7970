"""Commitment schedules beyond a fixed q: how hard to amplify a low success probability, step by step.

A schedule answers one question per step: by how much is the RL gradient ``-grad P`` of a label with
probability ``x`` amplified? A fixed q amplifies by ``x^-q`` (Eq. 5: ``grad l_q = P^-q grad l_0``).
Every schedule here is a pure function ``amplification(x, t, P, escaped) -> factor`` of the label's
probability ``x``, the step ``t``, the current success estimate ``P`` of the batch (``wbar``, Eq. 7) and
whether P has reached the escape threshold yet; ``q_of(t, P, escaped)`` gives the q in force (None for the
floored weight, which is not a q).

* ``constant(q)``: the paper's fixed q.
* ``step_at_escape(q_before, q_after)``: SFT-then-RLVR (Sec. 3.4 of the notes): q_before until P first
  reaches the threshold, q_after from then on.
* ``linear_anneal(q_start, q_end, t_end)``: q moves linearly in the step and stays at ``q_end``.
* ``floored_weight(floor)``: the amplification ``1 / max(x, floor)``, the mean weight floored as MaxRL's
  clipped variant does: q = 1 above the floor, a constant factor below it.
* ``adaptive(p_lo, p_hi, q_hi, q_lo)``: q read off the success estimate: ``q_hi`` while ``P <= p_lo``,
  ``q_lo`` once ``P >= p_hi``, linear in ``log P`` between.

In a training loop (:func:`tsallis_ref.trainer.train`, :func:`tsallis_ref.miniature.train_miniature`) a schedule is
read through a :class:`ScheduleState`, built from a small mapping by :func:`from_config` (the trainer's
``method.q_schedule``): it keeps the last observed success estimate and whether it has reached the escape
threshold, gives the q of the next step, and saves / restores that state with a checkpoint.

``two_example_run`` puts a schedule to the test the theory chapters set: one example starting cold (its
escape time, Thm 5.2) and one whose label is wrong with probability eps at each draw (its contamination,
Prop. C.2), trained together, one q in force per step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .losses import check_q

__all__ = [
    "ScheduleState",
    "from_config",
    "SCHEDULE_KINDS",
    "Schedule",
    "constant",
    "step_at_escape",
    "linear_anneal",
    "floored_weight",
    "adaptive",
    "two_example_run",
]


@dataclass(frozen=True)
class Schedule:
    """A named schedule: ``q_of(t, P, escaped)`` (None where the schedule is not a q) and
    ``amplification(x, t, P, escaped)``, the factor on ``-grad x`` (``x^-q`` for a q schedule)."""

    name: str
    q_of: Callable[[int, float, bool], Optional[float]]
    weight: Optional[Callable[[np.ndarray], np.ndarray]] = None

    def amplification(self, x, t: int, P: float, escaped: bool):
        x = np.asarray(x, dtype=float)
        if self.weight is not None:
            return self.weight(x)
        return np.exp(-self.q_of(t, P, escaped) * np.log(x))


def constant(q: float) -> Schedule:
    """A fixed q: the J_Q loss of one member of the family."""
    check_q(q)
    return Schedule(f"q={q:g}", lambda t, P, e: q)


def step_at_escape(q_before: float = 1.0, q_after: float = 0.0) -> Schedule:
    """``q_before`` until the success estimate first reaches the escape threshold, then ``q_after`` (the
    SFT-then-RLVR schedule of Sec. 3.4 for 1 -> 0)."""
    check_q(q_before)
    check_q(q_after)
    return Schedule(f"q={q_before:g} until escape, then {q_after:g}", lambda t, P, e: q_after if e else q_before)


def linear_anneal(q_start: float, q_end: float, t_end: int) -> Schedule:
    """q moves linearly from ``q_start`` at step 0 to ``q_end`` at step ``t_end`` and stays there."""
    check_q(q_start)
    check_q(q_end)
    if t_end < 1:
        raise ValueError(f"linear_anneal: t_end must be >= 1; got {t_end}")
    return Schedule(
        f"q {q_start:g} -> {q_end:g} over {t_end} steps",
        lambda t, P, e: q_start + (q_end - q_start) * min(t, t_end) / t_end,
    )


def floored_weight(floor: float) -> Schedule:
    """Not a q: the amplification ``1 / max(x, floor)`` (the mean weight floored, as MaxRL's clipped variant);
    used by the exact miniature runs only."""
    if not 0.0 < floor <= 1.0:
        raise ValueError(f"floored_weight: floor must lie in (0, 1]; got {floor}")
    return Schedule(f"1/max(x, {floor:g})", lambda t, P, e: None, weight=lambda x: 1.0 / np.maximum(x, floor))


def adaptive(p_lo: float, p_hi: float, q_hi: float = 1.0, q_lo: float = 0.0) -> Schedule:
    """q from the success estimate P: ``q_hi`` below ``p_lo``, ``q_lo`` above ``p_hi``, linear in log P between."""
    check_q(q_hi)
    check_q(q_lo)
    if not 0.0 < p_lo < p_hi < 1.0:
        raise ValueError(f"adaptive: need 0 < p_lo < p_hi < 1; got p_lo={p_lo}, p_hi={p_hi}")
    a, b = math.log(p_lo), math.log(p_hi)

    def q_of(t, P, e):
        s = min(1.0, max(0.0, (math.log(max(P, 1e-300)) - a) / (b - a)))
        return q_hi + (q_lo - q_hi) * s

    return Schedule(f"adaptive q({p_lo:g}..{p_hi:g})", q_of)


def two_example_run(
    schedule: Schedule,
    *,
    p0: float = 1e-3,
    c0: float = 1e-2,
    eps: float = 0.1,
    lr: float = 0.05,
    steps: int = 40_000,
    delta: float = 0.5,
) -> dict:
    """Gradient steps on two one-parameter examples under one schedule (exact, no sampling).

    * the cold example: ``P = sigmoid(theta)`` from ``p0``; its step is ``lr * a(P) * P (1 - P)``;
    * the noisy example: a two-label softmax with contamination ``c`` (the wrong label's probability) from
      ``c0``, the label drawn wrong with probability eps: its logit moves by
      ``lr * p c [(1 - eps) a(p) - eps a(c)]`` (``p = 1 - c``; Eq. 16 with ``a = x^-q``).

    The q in force at each step is read from the cold example (its P is the batch's success estimate).
    Returns the escape step of the cold example (None: not within ``steps``), the contamination at the
    end and at the escape step, and the q path (every 100 steps).
    """
    if not (0.0 < p0 < delta < 1.0 and 0.0 < c0 < 0.5 and 0.0 < eps < 0.5 and lr > 0 and steps >= 1):
        raise ValueError(
            f"two_example_run: need 0 < p0 < delta < 1, 0 < c0 < 1/2, 0 < eps < 1/2, lr > 0, "
            f"steps >= 1; got p0={p0}, delta={delta}, c0={c0}, eps={eps}, lr={lr}, steps={steps}"
        )
    th = math.log(p0) - math.log1p(-p0)
    ph = math.log1p(-c0) - math.log(c0)  # the clean label's logit against the wrong one
    escaped, esc_step, c_at_escape, qs = False, None, None, []
    for t in range(steps):
        P = 1.0 / (1.0 + math.exp(-th))
        p = 1.0 / (1.0 + math.exp(-ph))
        c = 1.0 - p
        if not escaped and P >= delta:
            escaped, esc_step, c_at_escape = True, t, c
        if t % 100 == 0:
            qs.append(schedule.q_of(t, P, escaped))
        a = lambda x: float(schedule.amplification(x, t, P, escaped))
        th += lr * a(P) * P * (1.0 - P)
        ph += lr * p * c * ((1.0 - eps) * a(p) - eps * a(c))
    c = 1.0 / (1.0 + math.exp(ph))
    return {
        "schedule": schedule.name,
        "escape_step": esc_step,
        "contamination": c,
        "contamination_at_escape": c_at_escape,
        "q_path": qs,
    }


# ---------------------------------------------------------------------------------------------------------
# Schedules in a training loop
# ---------------------------------------------------------------------------------------------------------
#: the kinds of ``method.q_schedule`` and their settings: (required, optional with defaults)
SCHEDULE_KINDS: dict[str, tuple[tuple[str, ...], dict]] = {
    "constant": (("q",), {}),
    "step": (("q_start", "q_end"), {"threshold": 0.5}),
    "linear": (("q_start", "q_end", "steps"), {}),
    "adaptive": (("p_lo", "p_hi"), {"q_hi": 1.0, "q_lo": 0.0}),
}


@dataclass
class ScheduleState:
    """A q schedule inside a training loop: ``q(t)`` is the q of the step that follows ``t`` steps already
    taken; :meth:`observe` records the success estimate a step measured (the trainer's ``wbar_mean``, Eq. 7; the
    miniature's mean P); ``escaped`` turns true (for good) the first time that estimate reaches ``threshold``.
    Before anything is observed the estimate counts as 0 (an adaptive schedule starts at its cold end)."""

    schedule: Schedule
    threshold: float = 0.5
    P: Optional[float] = None
    escaped: bool = False

    def q(self, t: int) -> float:
        q = self.schedule.q_of(t, 0.0 if self.P is None else self.P, self.escaped)
        if q is None:
            raise ValueError(f"schedule {self.schedule.name!r} is not a q schedule")
        return float(q)

    def observe(self, P: float) -> None:
        """Record the success estimate of the step just taken (and whether it reached the threshold)."""
        self.P = float(P)
        if self.P >= self.threshold:
            self.escaped = True

    def state_dict(self) -> dict:
        return {"P": self.P, "escaped": self.escaped}

    def load_state_dict(self, d: dict) -> None:
        self.P = None if d.get("P") is None else float(d["P"])
        self.escaped = bool(d.get("escaped", False))


def _number(d: dict, key: str, kind: str) -> float:
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        if isinstance(v, str):
            try:
                return float(v)
            except ValueError:
                pass
        raise ValueError(f"`{key}` of a {kind!r} schedule must be a number; got {v!r}")
    return float(v)


def from_config(d: Optional[dict], q: Optional[float] = None) -> Optional[ScheduleState]:
    """A :class:`ScheduleState` from a mapping such as ``{"kind": "step", "q_start": 1, "q_end": 0}``
    (the kinds and their settings: :data:`SCHEDULE_KINDS`); ``None`` gives ``constant(q)`` (or None when ``q``
    is None too). Bad mappings raise ValueError naming the setting and the fix.

    * ``constant``: ``q``;
    * ``step``: ``q_start`` until the success estimate first reaches ``threshold`` (default 0.5), ``q_end`` after
      (:func:`step_at_escape`);
    * ``linear``: ``q_start`` to ``q_end`` linearly over ``steps`` steps, then ``q_end`` (:func:`linear_anneal`);
    * ``adaptive``: ``q_hi`` while the estimate is at or below ``p_lo``, ``q_lo`` at or above ``p_hi``, linear in
      its log between (:func:`adaptive`; defaults ``q_hi = 1``, ``q_lo = 0``).

    The floored weight (:func:`floored_weight`) is not a q and is not available here."""
    if d is None:
        return None if q is None else ScheduleState(constant(float(q)))
    if not isinstance(d, dict):
        raise ValueError(f"expected a mapping such as {{kind: step, q_start: 1, q_end: 0}}; got {d!r}")
    kind = d.get("kind")
    if kind not in SCHEDULE_KINDS:
        extra = " (the floored weight is not a q; it has no trainer setting)" if kind in ("floored", "floor") else ""
        raise ValueError(f"`kind` must be one of {', '.join(SCHEDULE_KINDS)}; got {kind!r}{extra}")
    required, optional = SCHEDULE_KINDS[kind]
    allowed = {"kind", *required, *optional}
    unknown = sorted(set(d) - allowed, key=str)
    if unknown:
        raise ValueError(
            f"unknown setting(s) {unknown} of a {kind!r} schedule; its settings: {', '.join(sorted(allowed))}"
        )
    missing = [k for k in required if k not in d]
    if missing:
        raise ValueError(f"a {kind!r} schedule needs {', '.join(f'`{k}`' for k in missing)}")
    v = {**optional, **{k: d[k] for k in d if k != "kind"}}
    v = {k: _number(v, k, kind) for k in v}
    for k in ("q", "q_start", "q_end", "q_hi", "q_lo"):
        if k in v and not 0.0 <= v[k] <= 1.0:
            raise ValueError(f"`{k}` of a {kind!r} schedule must lie in [0, 1]; got {v[k]:g}")
    if kind == "constant":
        return ScheduleState(constant(v["q"]))
    if kind == "step":
        if not 0.0 < v["threshold"] <= 1.0:
            raise ValueError(f"`threshold` of a 'step' schedule must lie in (0, 1]; got {v['threshold']:g}")
        return ScheduleState(step_at_escape(v["q_start"], v["q_end"]), threshold=v["threshold"])
    if kind == "linear":
        if not (v["steps"] >= 1 and float(v["steps"]).is_integer()):
            raise ValueError(f"`steps` of a 'linear' schedule must be an integer >= 1; got {v['steps']:g}")
        return ScheduleState(linear_anneal(v["q_start"], v["q_end"], int(v["steps"])))
    if not 0.0 < v["p_lo"] < v["p_hi"] < 1.0:
        raise ValueError(
            f"an 'adaptive' schedule needs 0 < p_lo < p_hi < 1; got p_lo={v['p_lo']:g}, p_hi={v['p_hi']:g}"
        )
    return ScheduleState(adaptive(v["p_lo"], v["p_hi"], v["q_hi"], v["q_lo"]))

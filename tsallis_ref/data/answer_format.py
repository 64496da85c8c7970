"""One answer format from prompt to reward: what follows the rationale, and how an answer is read back.

A run's format is two strings of its rollout configuration (paper §7.1; paper-notes §5.1):

* ``end_of_rationale``, the marker that closes the rationale z: ``</think>`` for a thinking model (Qwen3),
  ``"\\nAnswer:"`` for a model without thinking tokens (budget forcing appends it when the budget runs out);
* ``answer_prefix``, the text between the marker and the answer (``"\\n\\n"`` after ``</think>``, as Qwen3
  writes it; ``" "`` after ``Answer:``).

:class:`AnswerFormat` derives everything else from them, so that every stage follows one rule:

* **the prompt** (:meth:`AnswerFormat.instruction`, used by the warm templates of
  :mod:`tsallis_ref.data.prompts`) asks for exactly this layout; cold prompts ask for nothing (paper §7.1);
* **the teacher-forced target** of GARL and PAFT after the rationale (:meth:`AnswerFormat.target`,
  ``answer_prefix + y*``, tokenised by ``rollout.encode_answer``), whose probability is w = p(y* | x, z)
  (Eq. 3);
* **the reward** of GRPO / RLOO (:meth:`AnswerFormat.reward`): the sampled answer read with
  :meth:`AnswerFormat.parse`, then exact match with y* or an alias (:func:`~tsallis_ref.data.verify.reward_exact_match`);
* **the evaluation's extraction** (:meth:`AnswerFormat.extract`, used by :func:`~tsallis_ref.evaluation.score_samples`
  when given a format): the text after the last marker, read with :meth:`AnswerFormat.parse`.

The reading rule (:meth:`AnswerFormat.parse`) takes the text written after the marker: the prefix is dropped,
white space stripped, then a leading ``Answer:`` / ``Final answer:`` label (a model that writes one out of habit
after ``</think>``) and a ``\\boxed{...}`` wrapper are removed, and the first non-empty line, stripped of
surrounding ``**``, is the prediction. So the target, generated verbatim, reads back as y* itself (every gold
answer of the shared benchmark samples does, "U.S." and "Jr." with their full stops included), and GRPO rewards
it 1.

>>> fmt = AnswerFormat("</think>", "\\n\\n")
>>> fmt.target("42")
'\\n\\n42'
>>> fmt.parse(fmt.target("42")), fmt.reward("Answer: 42", "42")
('42', 1.0)
>>> fmt.extract("Let me think.\\n</think>\\n\\n42")
'42'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .verify import extract_answer, reward_exact_match

__all__ = ["AnswerFormat", "DEFAULT_ANSWER_FORMAT", "THINK_END"]

#: the end-of-thinking token of thinking models (Qwen3)
THINK_END = "</think>"

_LABEL = re.compile(r"(?:\*\*)?(?:final\s+)?answer\s*(?:\*\*)?\s*:\s*(?:\*\*)?\s*", re.IGNORECASE)
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


@dataclass(frozen=True)
class AnswerFormat:
    """The layout ``[rationale] end_of_rationale answer_prefix y* [EOS]`` and the rule that reads y* back."""

    end_of_rationale: str = "\nAnswer:"
    answer_prefix: str = " "

    def __post_init__(self):
        if not isinstance(self.end_of_rationale, str) or not self.end_of_rationale.strip():
            raise ValueError(
                f"answer format: `rollout.end_of_rationale` must be a non-empty marker such as "
                f"'</think>' or '\\nAnswer:'; got {self.end_of_rationale!r}"
            )
        if not isinstance(self.answer_prefix, str):
            raise ValueError(
                f"answer format: `rollout.answer_prefix` must be a string (e.g. '\\n\\n' after "
                f"</think>, ' ' after 'Answer:'); got {self.answer_prefix!r}"
            )

    @classmethod
    def from_config(cls, rollout) -> AnswerFormat:
        """The format of a rollout configuration (``RolloutConfig``, a dict, or anything with the two fields)."""
        if isinstance(rollout, AnswerFormat):
            return rollout
        get = rollout.get if isinstance(rollout, dict) else (lambda k, d=None: getattr(rollout, k, d))
        return cls(get("end_of_rationale", cls.end_of_rationale), get("answer_prefix", cls.answer_prefix))

    # ----------------------------------------------------------------------------------------- writing
    @property
    def thinking(self) -> bool:
        """Whether the rationale is a thinking block closed by ``</think>`` (the chat template opens it)."""
        return self.end_of_rationale.strip() == THINK_END

    @property
    def label(self) -> str:
        """The marker as the model writes it at the start of a line (``"Answer:"``, ``"</think>"``)."""
        return self.end_of_rationale.strip()

    def instruction(self) -> str:
        """The sentence a warm prompt ends its task description with: it asks for exactly this layout."""
        if self.thinking:
            return (
                "Think step by step. When you have finished thinking, write only the final answer: no "
                '"Answer:" label, no explanation.'
            )
        if "\n" in self.answer_prefix:
            return (
                f'Think step by step. Then write "{self.label}" on a line of its own and the final answer '
                f"on the next line."
            )
        return (
            f"Think step by step. Then give the final answer on the last line in the form "
            f'"{self.label}{self.answer_prefix}<answer>".'
        )

    def target(self, answer: str) -> str:
        """The text teacher-forced after the rationale (marker included in z): ``answer_prefix + y*``."""
        if not isinstance(answer, str):
            raise TypeError(f"the gold answer y* must be a str, got {type(answer).__name__}")
        return self.answer_prefix + answer

    def completion(self, rationale: str, answer: str) -> str:
        """A whole generation in this format: ``rationale + end_of_rationale + target(answer)``."""
        return rationale + self.end_of_rationale + self.target(answer)

    @property
    def forced_suffix(self) -> str:
        """What budget forcing appends to a rationale cut at its budget, namely the marker on a new line and the prefix."""
        marker = self.end_of_rationale if self.end_of_rationale.startswith("\n") else "\n" + self.end_of_rationale
        return marker + self.answer_prefix

    # ----------------------------------------------------------------------------------------- reading
    def parse(self, answer_text: str) -> str:
        """The prediction in the text written *after* the marker (GRPO's sampled answer, or the tail of a
        generation): prefix dropped, white space stripped, a leading ``Answer:`` label and ``\\boxed{}``
        removed, the first non-empty line stripped of ``**``. ``""`` when nothing is there."""
        if not isinstance(answer_text, str):
            raise TypeError(f"answer text must be a str, got {type(answer_text).__name__}")
        t = answer_text
        if self.answer_prefix and t.startswith(self.answer_prefix):
            t = t[len(self.answer_prefix) :]
        t = t.strip()
        m = _LABEL.match(t)
        if m:
            t = t[m.end() :]
        b = _BOXED.search(t)
        if b:
            t = b.group(1)
        for line in t.splitlines():
            line = line.strip().strip("*").strip()
            if line:
                return line
        return ""

    def extract(self, generation: str) -> str:
        """The prediction in a whole generation (rationale, marker, answer): :meth:`parse` of the text after
        the last marker (written as configured, or at the start of a line). A generation without the marker
        (a rationale never closed) falls back to the free-text rules of
        :func:`~tsallis_ref.data.verify.extract_answer` ("the answer is X", a last ``Answer:`` line)."""
        if not isinstance(generation, str):
            raise TypeError(f"generation must be a str, got {type(generation).__name__}")
        for marker in (self.end_of_rationale, self.label):
            if marker and marker in generation:
                return self.parse(generation.rsplit(marker, 1)[1])
        return extract_answer(generation)

    def reward(self, answer_text: str, gold: str, aliases: Iterable[str] | None = None) -> float:
        """GRPO / RLOO's binary reward (paper §7.1): 1.0 when the answer sampled after the marker, read with
        :meth:`parse`, exactly matches y* or an alias after normalisation."""
        return reward_exact_match(self.parse(answer_text), gold, aliases)


#: The format the warm templates were written for (a last line ``Answer: <answer>``).
DEFAULT_ANSWER_FORMAT = AnswerFormat("\nAnswer:", " ")

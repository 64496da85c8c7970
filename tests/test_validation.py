"""The paper's validation protocol in the trainer (Sec. 7.1, config ``eval``): the held-out curve of p@1 / p@k /
maj@k at step 0 and every ``eval.every`` steps, the best checkpoint by maj@k, resume, disjoint ids, and a training
run that is the same with validation on or off."""

import json

import pytest
import torch

torch.set_num_threads(1)

from conftest import tiny_cfg

from tsallis_ref import trainer as T
from tsallis_ref.config import ConfigError
from tsallis_ref.models import tiny_model, tiny_tokenizer, trainable_state_dict

TRAIN = [
    {"id": f"tr{i}", "prompt": f"Q: {a}+{b}=", "answer": str(a + b)}
    for i, (a, b) in enumerate([(1, 2), (3, 4), (2, 2), (5, 1)])
]
# the relaxed judge finds any alias in the answer: a random character model hits a vowel now and then, so the
# validation metrics move with the weights
VOWELS = ["a", "e", "i", "o", "u"]
HELD = [
    {"id": f"dev{i}", "prompt": f"Q: {a}*{b}=", "answer": "e", "aliases": VOWELS}
    for i, (a, b) in enumerate([(2, 3), (1, 4), (3, 3)])
]


#: this file's tiny run (conftest.TINY_RUN): 4 steps of one prompt, M = 3, validated every 2 steps with k = 2
VALIDATION_RUN = {
    "rollout": {"M": 3, "rationale_budget": 6, "answer_budget": 6},
    "optim": {"lr": 5e-2, "prompts_per_step": 1},
    "steps": 4,
    "eval": {"every": 2, "k": 2, "batch_size": 8},
}


def _cfg(tmp_path, name="garl", **kw):
    return tiny_cfg(name, {**VALIDATION_RUN, "output_dir": str(tmp_path)}, **kw)


def _model():
    tok = tiny_tokenizer()
    return tiny_model(tok, seed=1), tok


def _run(cfg, resume=False, held=HELD, callback=None):
    model, tok = _model()
    return T.train(
        cfg, resume=resume, examples=TRAIN, eval_examples=held, model=model, tokenizer=tok, callback=callback
    )


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_curve_at_step_0_every_n_and_the_last_step_and_best_is_its_argmax(tmp_path):
    snaps, modes = {}, []
    model, tok = _model()
    snaps[0] = {k: v.clone() for k, v in trainable_state_dict(model).items()}

    def cb(step, met):
        snaps[step] = {k: v.clone() for k, v in trainable_state_dict(model).items()}
        modes.append(model.training)

    cfg = _cfg(tmp_path, steps=5, seed=1, optim={"lr": 1e-2})  # this run peaks in the middle, then declines
    res = T.train(cfg, examples=TRAIN, eval_examples=HELD, model=model, tokenizer=tok, callback=cb)
    curve = res["validation"]
    assert [p["step"] for p in curve] == [0, 2, 4, 5]
    for p in curve:
        assert set(T.VAL_KEYS) <= {k.removeprefix("val/") for k in p}
        assert 0.0 <= p["val/p@1"] <= p["val/p@k"] <= 100.0 and p["val/n"] == 3 and p["val/k"] == 2
    rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4, 5]
    assert [r["step"] for r in rows if "val/maj@k" in r] == [0, 2, 4, 5]
    assert [r["val/maj@k"] for r in rows if "val/maj@k" in r] == [p["val/maj@k"] for p in curve]
    assert "loss" not in rows[0] and "loss" in rows[1]
    # the best is the first argmax of maj@k, and best/ holds the weights of that step
    majs = [p["val/maj@k"] for p in curve]
    want = curve[majs.index(max(majs))]["step"]
    assert res["best_step"] == want == res["best"]["step"]
    info = json.loads((tmp_path / "best" / "best.json").read_text())
    assert info["step"] == want and info["metrics"]["val/maj@k"] == max(majs)
    from tsallis_ref.checkpoint import load_checkpoint

    best_w = load_checkpoint(tmp_path / "best" / "trainable.pt")["model"]
    assert _equal(best_w, snaps[want])
    assert 0 < want < 5, f"the curve {majs} does not peak in the middle: the test would not check a middle step"
    assert not _equal(best_w, snaps[5]) and not _equal(best_w, snaps[0])
    assert majs[-1] < max(majs)  # the decline after the peak stays in the record
    # training mode after every validation
    assert all(modes) and model.training


def test_validation_does_not_change_the_training_run(tmp_path):
    """Validation samples with its own seed; the training random streams are saved and restored around it, so a
    run with eval on trains exactly the weights of a run with eval off."""
    for name in ("garl", "grpo"):
        on = _run(_cfg(tmp_path / f"{name}_on", name=name, steps=3, eval={"every": 1}))
        off = _run(_cfg(tmp_path / f"{name}_off", name=name, steps=3, eval={"every": 0}))
        assert len(on["validation"]) == 4 and off["validation"] == [] and off["best_step"] is None
        assert _equal(trainable_state_dict(on["model"]), trainable_state_dict(off["model"])), name
        assert [m["example_ids"] for m in on["metrics"][1:]] == [m["example_ids"] for m in off["metrics"]]


def test_resume_continues_the_curve_and_keeps_the_best(tmp_path):
    full = _run(_cfg(tmp_path / "full", steps=4, checkpoint_every=2, eval={"every": 1}))
    _run(_cfg(tmp_path / "cut", steps=2, checkpoint_every=2, eval={"every": 1}))
    best_before = json.loads((tmp_path / "cut" / "best" / "best.json").read_text())
    res = _run(_cfg(tmp_path / "cut", steps=4, checkpoint_every=2, eval={"every": 1}), resume=True)
    assert [p["step"] for p in res["validation"]] == [0, 1, 2, 3, 4]
    assert res["validation"] == full["validation"]
    assert res["best"] == full["best"] and res["best_step"] == full["best_step"]
    assert best_before["step"] <= 2
    rows = [json.loads(l) for l in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "val/maj@k" in r] == [0, 1, 2, 3, 4]


def test_resume_restores_the_best_so_far_from_the_checkpoint(tmp_path):
    """The best so far comes from the checkpoint state: a resumed run whose later validations do not beat it
    reports the step of the first part, not one of its own."""
    _run(_cfg(tmp_path, steps=2, checkpoint_every=2, eval={"every": 1}))
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ck["best"]["step"] in (0, 1, 2) and [p["step"] for p in ck["validation"]] == [0, 1, 2]
    res = _run(_cfg(tmp_path, steps=3, checkpoint_every=2, eval={"every": 1}), resume=True)
    majs = [p["val/maj@k"] for p in res["validation"]]
    assert res["best_step"] == res["validation"][majs.index(max(majs))]["step"]
    if max(majs[:3]) >= majs[3]:
        assert res["best_step"] == ck["best"]["step"]


def test_overlapping_ids_are_refused(tmp_path):
    held = HELD + [{**TRAIN[1], "aliases": []}]
    with pytest.raises(ConfigError, match=r"eval.*'tr1'"):
        _run(_cfg(tmp_path), held=held)
    assert not (tmp_path / "metrics.jsonl").exists()  # refused before anything is written
    path = tmp_path / "dev.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in held))
    with pytest.raises(ConfigError, match=r"1 held-out example id\(s\) are also training ids \('tr1'\)"):
        _run(_cfg(tmp_path, eval={"path": str(path)}), held=None)


def test_held_out_set_from_eval_path_and_missing_held_out_set(tmp_path):
    path = tmp_path / "dev.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in HELD))
    res = _run(_cfg(tmp_path / "run", steps=1, eval={"path": str(path), "n": 2}), held=None)
    assert [p["val/n"] for p in res["validation"]] == [2, 2]
    with pytest.raises(ConfigError, match="eval.path"):
        _run(_cfg(tmp_path / "none", steps=1), held=None)


def test_validate_keeps_the_model_mode_and_the_random_state(tmp_path):
    model, tok = _model()
    cfg = _cfg(tmp_path)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    model.train()
    a = T.validate(model, tok, HELD, cfg)
    assert model.training and torch.equal(torch.get_rng_state(), before)
    model.eval()
    b = T.validate(model, tok, HELD, cfg)
    assert not model.training and a == b  # the same seed, the same weights: the same numbers


def test_eval_config_errors_name_the_field(tmp_path):
    for field, value in (("k", 0), ("every", -1), ("n", 0), ("max_new_tokens", 0), ("judge", "fuzzy")):
        with pytest.raises(ConfigError, match=rf"eval\.{field}"):
            _cfg(tmp_path, eval={field: value})


def test_validation_prompts_are_the_training_prompts_token_for_token(tmp_path):
    """Validation samples after the very ids x the trainer trains on (rollout.encode_prompt): the cold prompt with
    the BOS token the tokenizer adds, or the chat template as training renders it."""
    from tsallis_ref.rollout import encode_prompt

    _, tok = _model()
    for chat in (False, True):
        cfg = _cfg(tmp_path, model={"chat_template": chat})
        for ex in HELD:
            text = T._eval_prompt(tok, ex["prompt"], cfg)
            assert tok(text, add_special_tokens=False).input_ids == encode_prompt(tok, ex["prompt"], chat_template=chat)

"""Config fields: every field type-checked against its annotation before any model loads, the dotted key
named; every field documented; `base:` files merged into a YAML config."""

import dataclasses

import pytest
import yaml

from tsallis_ref.config import ConfigError, TrainConfig, check_field, iter_fields, load_config, read_config_dict

DATA = {"data": {"path": "x.jsonl"}}


def _nested(key: str, value) -> dict:
    """``{"a": {"b": value}}`` for ``"a.b"``, with a data path so the config is otherwise valid."""
    d: dict = {"data": {"path": "x.jsonl"}}
    parts = key.split(".")
    node = d
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return d


def _get(cfg, key: str):
    for p in key.split("."):
        cfg = getattr(cfg, p)
    return cfg


# ------------------------------------------------------------------ YAML 1.1 reads `1e-3` as a string
@pytest.mark.parametrize(
    "text,key,value",
    [
        ("optim: {lr: 1e-3}", "optim.lr", 1e-3),
        ("rollout: {sampling: {temperature: 7e-1}}", "rollout.sampling.temperature", 0.7),
        ("rollout: {sampling: {top_p: 9e-1}}", "rollout.sampling.top_p", 0.9),
        ("optim: {max_grad_norm: 5e-1}", "optim.max_grad_norm", 0.5),
        ("optim: {weight_decay: 1e-2}", "optim.weight_decay", 0.01),
        ("optim: {betas: [9e-1, 9.5e-1]}", "optim.betas", (0.9, 0.95)),
        ("model: {lora: {r: '16'}}", "model.lora.r", 16),
        ("rollout: {M: 4.0}", "rollout.M", 4),
        ("method: {q: 1}", "method.q", 1.0),
    ],
)
def test_numeric_strings_and_integral_numbers_are_read_as_numbers(tmp_path, text, key, value):
    f = tmp_path / "c.yaml"
    f.write_text(text + "\ndata: {path: x.jsonl}\n")
    raw = yaml.safe_load(text)
    cfg = load_config(f)
    got = _get(cfg, key)
    assert got == value and type(got) is type(value), (raw, got)
    assert _get(TrainConfig.from_yaml(f), key) == value


# ------------------------------------------------------------------ the examples, refused by name
@pytest.mark.parametrize(
    "key,value,expected",
    [
        ("optim.betas", 0.9, "a list of 2 numbers"),
        ("optim.lr", None, "a number"),
        ("optim.lr", "fast", "a number"),
        ("optim.max_grad_norm", "none", "a number"),
        ("rollout.sampling.temperature", "hot", "a number"),
        ("rollout.sampling.top_p", [0.9], "a number"),
        ("seed", "zero", "an integer"),
        ("optim.weight_decay", "heavy", "a number"),
        ("model.lora.r", "eight", "an integer"),
        ("num_threads", "two", "an integer"),
        ("data.limit", "ten", "an integer"),
        ("model.tiny", 5, "a mapping"),
        ("rollout.M", True, "an integer"),  # a bool is not an int
        ("rollout.M", 4.5, "an integer"),  # no fractional part in an int
        ("rollout.M", "4.5", "an integer"),
        ("method.q", False, "a number"),
        ("method.q", float("nan"), "a number"),
        ("model.load_in_4bit", "yes please", "true or false"),
        ("model.load_in_4bit", 1, "true or false"),
        ("model.name_or_path", 7, "a string"),
        ("model.dtype", "fp8", "one of 'auto'"),
        ("method.name", "ppo", "one of 'garl'"),
        ("rollout.generation_batch_size", "many", "an integer or 'auto'"),
        ("rollout.generation_batch_size", 2.5, "an integer or 'auto'"),
        ("mixed_precision", "fp64", "true or false or one of"),
        ("model.lora.target_modules", [1, 2], "a string or a list of strings"),
        ("model.lora", 3, "a mapping of LoRAConfig fields"),
        ("rollout.sampling", "greedy", "a mapping of SamplingConfig fields"),
    ],
)
def test_wrong_types_are_refused_naming_key_value_and_type(key, value, expected):
    with pytest.raises(ConfigError) as e:
        TrainConfig.from_dict(_nested(key, value))
    msg = str(e.value)
    assert f"`{key}`" in msg and expected in msg and repr(value) in msg, msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    "key,value",
    [
        ("seed", -1),
        ("num_threads", -2),
        ("data.limit", 0),
        ("optim.weight_decay", -0.1),
        ("optim.betas", [0.9, 1.5]),
        ("model.lora.dropout", 1.0),
    ],
)
def test_out_of_range_values_are_refused_by_name(key, value):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        TrainConfig.from_dict(_nested(key, value))


def test_validate_checks_a_config_built_in_python():
    cfg = TrainConfig.from_dict(DATA)
    cfg.optim.lr = "1e-4"
    assert cfg.validate().optim.lr == 1e-4
    cfg.rollout.sampling.top_k = "all"
    with pytest.raises(ConfigError, match=r"rollout\.sampling\.top_k"):
        cfg.validate()


def test_unknown_keys_are_refused_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"`optim\.learning_rate`.*known fields of `optim`: lr"):
        TrainConfig.from_dict({**DATA, "optim": {"learning_rate": 1e-3}})
    with pytest.raises(
        ConfigError, match=r"`rollout\.sampling\.temprature` \(did you mean `rollout\.sampling\.temperature`"
    ):
        TrainConfig.from_dict({**DATA, "rollout": {"sampling": {"temprature": 1.0}}})


# ------------------------------------------------------------------ every field, walked (new fields included)
LEAVES = list(iter_fields())


def test_the_walk_reaches_every_leaf_field():
    keys = [k for k, *_ in LEAVES]
    assert len(keys) == len(set(keys))
    assert {"optim.lr", "rollout.sampling.top_p", "model.lora.r", "seed", "data.limit"} <= set(keys)


@pytest.mark.parametrize("key", [k for k, *_ in LEAVES])
def test_every_field_refuses_a_wrong_typed_value(key):
    with pytest.raises(ConfigError) as e:
        TrainConfig.from_dict(_nested(key, [{"wrong": 1}]))  # fits no field's type
    assert f"`{key}`" in str(e.value) and "expected" in str(e.value)


@pytest.mark.parametrize("key,default", [(k, d) for k, _, d, _ in LEAVES if type(d) in (int, float)])
def test_every_numeric_field_refuses_a_word(key, default):
    with pytest.raises(ConfigError, match=rf"`{key.replace('.', '[.]')}`: expected (an integer|a number)"):
        TrainConfig.from_dict(_nested(key, "lots"))


@pytest.mark.parametrize("key,default", [(k, d) for k, _, d, _ in LEAVES if isinstance(d, (str, bool))])
def test_every_string_or_bool_field_refuses_a_list(key, default):
    with pytest.raises(ConfigError, match=rf"`{key.replace('.', '[.]')}`: expected"):
        TrainConfig.from_dict(_nested(key, [1, 2]))


@pytest.mark.parametrize("key,default", [(k, d) for k, _, d, _ in LEAVES])
def test_every_field_accepts_its_default_written_out(key, default):
    d = _nested(key, yaml.safe_load(yaml.safe_dump(list(default) if isinstance(default, tuple) else default)))
    d["data"].setdefault("dataset", "finqa")  # data.path: null needs a loader name instead
    cfg = TrainConfig.from_dict(d)
    assert _get(cfg, key) == default


def test_every_field_has_help():
    for cls in (TrainConfig,) + tuple(
        {
            type(getattr(TrainConfig(), f.name))
            for f in dataclasses.fields(TrainConfig)
            if dataclasses.is_dataclass(getattr(TrainConfig(), f.name))
        }
    ):
        for f in dataclasses.fields(cls):
            assert f.metadata.get("help", "").strip(), f"{cls.__name__}.{f.name} has no help"
    for key, tp, default, text in LEAVES:
        assert text.strip() and tp, key


def test_check_field_is_usable_alone():
    from typing import Optional

    assert check_field("3", Optional[int], "x.n") == 3 and check_field(None, Optional[int], "x.n") is None
    with pytest.raises(ConfigError, match=r"`x\.n`: expected an integer or null; got 'three'"):
        check_field("three", Optional[int], "x.n")


# ------------------------------------------------------------------ `base:` files
def test_base_files_are_deep_merged_relative_to_the_file(tmp_path):
    (tmp_path / "bases").mkdir()
    (tmp_path / "bases" / "common.yaml").write_text(
        "method: {name: garl, q: 0.75}\noptim: {lr: 1.0e-5, prompts_per_step: 8}\ndata: {path: x.jsonl}\nsteps: 7\n"
    )
    (tmp_path / "bases" / "warm.yaml").write_text("base: common.yaml\ndata: {regime: warm}\n")
    (tmp_path / "run.yaml").write_text("base: bases/warm.yaml\nmethod: {q: 0.25}\noptim: {lr: 2e-5}\n")
    d = read_config_dict(tmp_path / "run.yaml")
    assert d == {
        "method": {"name": "garl", "q": 0.25},
        "optim": {"lr": "2e-5", "prompts_per_step": 8},
        "data": {"path": "x.jsonl", "regime": "warm"},
        "steps": 7,
    }
    cfg = load_config(tmp_path / "run.yaml", {"optim": {"prompts_per_step": 2}})
    assert (cfg.method.q, cfg.optim.lr, cfg.optim.prompts_per_step, cfg.data.regime, cfg.steps) == (
        0.25,
        2e-5,
        2,
        "warm",
        7,
    )
    assert TrainConfig.from_yaml(tmp_path / "run.yaml").optim.prompts_per_step == 8


def test_a_list_of_bases_merges_in_order(tmp_path):
    (tmp_path / "a.yaml").write_text("steps: 1\nseed: 1\n")
    (tmp_path / "b.yaml").write_text("steps: 2\n")
    (tmp_path / "c.yaml").write_text("base: [a.yaml, b.yaml]\ndata: {path: x}\n")
    assert read_config_dict(tmp_path / "c.yaml") == {"steps": 2, "seed": 1, "data": {"path": "x"}}


def test_base_cycles_and_missing_bases_are_refused(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("base: nowhere.yaml\n")
    with pytest.raises(ConfigError, match=r"nowhere\.yaml.*does not exist"):
        load_config(tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("base: 3\n")
    with pytest.raises(ConfigError, match="`base` must be a file name"):
        load_config(tmp_path / "d.yaml")


def test_base_in_a_dict_says_where_it_is_read():
    with pytest.raises(ConfigError, match="`base:` is read from YAML files"):
        TrainConfig.from_dict({**DATA, "base": "other.yaml"})


def test_bad_yaml_and_directories_name_the_file(tmp_path):
    (tmp_path / "bad.yaml").write_text("method: {name: garl\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)

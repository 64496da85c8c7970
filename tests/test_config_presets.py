"""The presets in configs/ are a few bases (configs/base/) plus small overlays: each resolves to exactly the
configuration it held when every preset was one flat file (tests/fixtures/presets_flat.json records those flat
mappings; change it together with a preset whose meaning you change)."""

import json

import pytest
import yaml
from conftest import FIXTURES, ROOT

from tsallis_ref.config import TrainConfig, load_config, read_config_dict

FLAT = json.loads((FIXTURES / "presets_flat.json").read_text())
PRESETS = sorted(p.name for p in (ROOT / "configs").glob("*.yaml"))


def test_every_preset_is_recorded():
    assert PRESETS == sorted(FLAT)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_resolves_to_its_flat_configuration(name):
    got = load_config(ROOT / "configs" / name).to_dict()
    assert got == TrainConfig.from_dict(FLAT[name]).to_dict()
    assert TrainConfig.from_yaml(ROOT / "configs" / name).to_dict() == got


@pytest.mark.parametrize("name", [n for n in PRESETS if "base" in yaml.safe_load((ROOT / "configs" / n).read_text())])
def test_overlays_are_small(name):
    text = (ROOT / "configs" / name).read_text()
    keys = [l for l in text.splitlines() if l.strip() and not l.lstrip().startswith("#")]
    assert len(keys) <= 10, f"{name}: {len(keys)} lines of settings; move what presets share into configs/base/"
    assert read_config_dict(ROOT / "configs" / name)["rollout"]["M"] == 32


def test_paper_presets_share_one_base():
    for name in PRESETS:
        if FLAT[name].get("model", {}).get("name_or_path") == "Qwen/Qwen3-0.6B":
            assert "base" in yaml.safe_load((ROOT / "configs" / name).read_text()), name

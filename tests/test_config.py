"""Config: presets load, overrides apply, bad values are refused with a message that helps."""

import pytest

from magiclib.config import ConfigError, config_hash, load_config


@pytest.mark.parametrize("preset", ["smoke", "mini", "small", "paper"])
def test_presets_load(preset):
    cfg = load_config(preset)
    assert cfg.name == preset
    assert len(cfg.mixture_names) == 9
    assert len(cfg.scales) == 2


def test_mixtures_follow_the_paper():
    cfg = load_config("mini")
    assert cfg.mixture_names[0] == "V1-P0" and cfg.mixture_names[-1] == "V3-P2"
    web, props = cfg.mixture("V2-P1")
    assert web.filter == "edu" and web.code_pools == ["code_python", "code_go"]
    assert (props.web, props.code, props.curated) == (0.45, 0.35, 0.20)


def test_overrides_apply_and_change_the_hash():
    base = load_config("smoke")
    changed = load_config("smoke", ["eval.items_per_benchmark=7", "scales.tiny.pretrain.lr=0.01"])
    assert changed.eval.items_per_benchmark == 7
    assert changed.scales["tiny"].pretrain.lr == 0.01
    assert changed.scales["tiny"].pretrain.seq_len == base.scales["tiny"].pretrain.seq_len
    assert config_hash(base.eval) != config_hash(changed.eval)
    assert config_hash(base.data) == config_hash(changed.data)


@pytest.mark.parametrize(
    "override, words",
    [
        ("eval.no_such_key=1", ["unknown key", "eval.no_such_key", "items_per_benchmark"]),
        ("proportions.P0.web=0.9", ["sum to", "shares that sum to 1"]),
        ("mixtures=[V9-P0]", ["unknown mixtures", "V1-P0"]),
        ("data.curated_pools=[wikipedia,arxiv]", ["unknown data.curated_pools", "arxiv", "books"]),
        ("eval.batch_size=many", ["eval.batch_size", "expected int"]),
        ("scales.tiny.pretrain.batch_size=12", ["multiple of micro_batch_size"]),
    ],
)
def test_bad_values_are_refused_with_the_fix(override, words):
    with pytest.raises(ConfigError) as err:
        load_config("smoke", [override])
    for word in words:
        assert word in str(err.value)


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ConfigError, match="unknown preset 'huge'.*mini"):
        load_config("huge")


def test_yaml_with_unknown_key(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("scales:\n  s1:\n    model: {d_model: 64, colour: red}\n")
    with pytest.raises(ConfigError, match="scales.s1.model.colour"):
        load_config(str(path))


def test_a_new_scale_inherits_defaults(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("scales:\n  s1:\n    model: {d_model: 64}\n")
    cfg = load_config(str(path))
    assert cfg.scales["s1"].model.d_model == 64 and cfg.scales["s1"].model.n_layers == 4

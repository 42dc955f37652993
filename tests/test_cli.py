"""The `magic` command: a user's mistake ends in one `magic: ...` line and a non-zero exit, a bug in a traceback."""

import pytest

from magiclib import cli, errors, runner


@pytest.mark.parametrize(
    "argv, words",
    [
        (["config", "--preset", "huge"], "unknown preset 'huge'; choose one of ['mini', "),
        (["config", "--preset", "smoke", "eval.benchmarks=[copa,nope]"], "unknown eval.benchmarks 'nope'; allowed: "),
        (["config", "--preset", "smoke", "proportions.P1.code=0.5"], "sum to 1.15; give non-negative shares"),
        (["pretrain", "--preset", "smoke", "--mixture", "V9-P0", "--scale", "tiny"], "unknown mixture 'V9-P0'"),
        (["sft", "--preset", "smoke", "--mixture", "V1-P0", "--scale", "huge"], "unknown scale 'huge'; allowed: "),
    ],
)
def test_config_mistakes_exit_2_with_one_line(argv, words, tmp_path, capsys):
    assert cli.main([*argv, "--results", str(tmp_path)] if argv[0] != "config" else argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("magic: config error: ") and words in err and err.count("\n") == 1


def test_a_yaml_with_an_unknown_key_names_it(tmp_path, capsys):
    path = tmp_path / "mine.yaml"
    path.write_text("eval:\n  batchsize: 8\n")
    assert cli.main(["config", "--preset", str(path)]) == 2
    assert "unknown key 'eval.batchsize'; allowed keys: [" in capsys.readouterr().err


def test_a_deliberate_error_of_a_step_exits_1_with_one_line(tmp_path, capsys):
    assert cli.main(["sft", "--preset", "smoke", "--results", str(tmp_path), "--mixture", "V1-P0",
                     "--scale", "tiny"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("magic: sft V1-P0_tiny_s0 needs the SFT data in ") and err.count("\n") == 1


def test_a_bug_keeps_its_traceback(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "run_data", lambda cfg, results: {}["pools"])
    with pytest.raises(KeyError):
        cli.main(["data", "--preset", "smoke", "--results", str(tmp_path)])


def _raise(err):
    raise err


def test_the_type_not_the_traceback_decides_what_is_the_users(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "run_data", lambda cfg, results: _raise(errors.MissingFile("no pools; run this")))
    assert cli.main(["data", "--preset", "smoke", "--results", str(tmp_path)]) == 1
    assert capsys.readouterr().err == "magic: no pools; run this\n"
    monkeypatch.setattr(runner, "run_data", lambda cfg, results: _raise(ValueError("a plain one is a bug")))
    with pytest.raises(ValueError, match="a plain one is a bug"):
        cli.main(["data", "--preset", "smoke", "--results", str(tmp_path)])


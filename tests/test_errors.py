"""User errors (an errors.UserError, raised on purpose in magiclib) versus bugs (anything else keeps its traceback)."""

import pandas as pd
import pytest

from magiclib import benchmarks, errors, paths
from magiclib.config import ConfigError, load_config
from magiclib.errors import user_message


def _caught(call, *args):
    with pytest.raises(Exception) as err:
        call(*args)
    return err.value


def test_our_deliberate_errors_give_their_message():
    err = _caught(load_config, "huge")
    assert isinstance(err, ConfigError) and isinstance(err, errors.UserError)
    assert user_message(err) == str(err) and "unknown preset 'huge'" in str(err)


def test_a_key_error_of_ours_gives_its_message_unquoted():
    err = _caught(benchmarks.get, "nope")
    assert isinstance(err, KeyError)  # existing `except KeyError` keeps catching it
    assert user_message(err).startswith("unknown benchmark 'nope'; known benchmarks")


@pytest.mark.parametrize("kind, builtin", [(errors.BadValue, ValueError), (errors.BadType, TypeError),
                                           (errors.MissingFile, FileNotFoundError), (errors.UnknownName, KeyError),
                                           (errors.NotReady, RuntimeError), (errors.DiskFull, OSError)])
def test_each_user_error_is_also_the_builtin_it_replaces(kind, builtin):
    with pytest.raises(builtin):
        raise kind("the problem; the fix")
    assert user_message(kind("the problem; the fix")) == "the problem; the fix"


def test_errors_deep_in_a_library_or_not_raised_by_us_are_bugs(monkeypatch):
    assert user_message(_caught(pd.DataFrame().loc.__getitem__, "row")) is None  # KeyError inside pandas
    assert user_message(_caught(int, "x")) is None  # a builtin ValueError, whoever raises it
    monkeypatch.setattr(paths, "find_mirror", None)
    assert user_message(_caught(paths.require_mirror)) is None  # a TypeError in our code is a bug

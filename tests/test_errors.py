"""User errors (an explicit `raise` in magiclib) versus bugs (anything else keeps its traceback)."""

import pandas as pd
import pytest

from magiclib import benchmarks, paths
from magiclib.config import load_config
from magiclib.errors import user_message


def _caught(call, *args):
    with pytest.raises(Exception) as err:
        call(*args)
    return err.value


def test_our_deliberate_errors_give_their_message():
    err = _caught(load_config, "huge")
    assert user_message(err) == str(err) and "unknown preset 'huge'" in str(err)


def test_a_key_error_of_ours_gives_its_message_unquoted():
    assert user_message(_caught(benchmarks.get, "nope")).startswith("unknown benchmark 'nope'; known benchmarks")


def test_errors_deep_in_a_library_or_not_raised_by_us_are_bugs(monkeypatch):
    assert user_message(_caught(pd.DataFrame().loc.__getitem__, "row")) is None  # KeyError inside pandas
    assert user_message(_caught(int, "x")) is None  # raised in the test itself
    monkeypatch.setattr(paths, "find_mirror", None)
    assert user_message(_caught(paths.require_mirror)) is None  # a TypeError in our code is a bug

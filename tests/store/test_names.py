"""Object names: what users may call datasets, models and the rest."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlwright.errors import StoreError
from mlwright.store import check_name

GOOD = ["flights", "a", "0", "flights-2013", "churn_v2", "my.model", "A" * 128, "x.y-z_1"]
BAD = ["", "../x", "..", "a..b", ".hidden", "-flag", "_x", "a/b", "a\\b", "a b", "A" * 129,
       "name\n", "ünïcode", "x:y", "a;drop table", "~user"]
ALLOWED = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


@pytest.mark.parametrize("name", GOOD)
def test_good_names(name: str) -> None:
    assert check_name("dataset", name) == name


@pytest.mark.parametrize("name", BAD)
def test_bad_names(name: str) -> None:
    with pytest.raises(StoreError, match=r"^Dataset name .* is not allowed: use letters"):
        check_name("dataset", name)


def test_the_message_names_the_kind_and_the_name() -> None:
    with pytest.raises(StoreError) as caught:
        check_name("model", "../x")
    assert str(caught.value) == ("Model name '../x' is not allowed: use letters, digits, '_', "
                                 "'.', '-' (at most 128, starting with a letter or digit).")


@given(st.text(max_size=140))
def test_accepted_names_are_safe_path_segments(name: str) -> None:
    try:
        check_name("dataset", name)
    except StoreError:
        assert not ALLOWED.fullmatch(name) or ".." in name
    else:
        assert ALLOWED.fullmatch(name) and ".." not in name
        assert "/" not in name and "\\" not in name and name not in (".", "..")
        assert len(name) <= 128


@given(st.from_regex(ALLOWED, fullmatch=True).filter(lambda n: ".." not in n))
def test_every_name_of_the_documented_shape_is_accepted(name: str) -> None:
    assert check_name("dataset", name) == name

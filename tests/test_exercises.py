"""The notebooks' predict-then-check exercises tell right from wrong and never fail a headless build."""

from __future__ import annotations

import pytest

from lcamlab.exercises import check_choice, check_number, check_sign


def test_choice():
    assert check_choice(None, "sgd", ["sgd", "momentum"]).status == "unanswered"
    assert check_choice("SGD ", "sgd", ["sgd", "momentum"]).status == "right"
    wrong = check_choice("momentum", "sgd", ["sgd", "momentum"], why="because")
    assert wrong.status == "wrong" and "because" in wrong.message and "'sgd'" in wrong.message
    assert check_choice("adam", "sgd", ["sgd", "momentum"]).status == "unanswered"  # not an option
    with pytest.raises(ValueError, match="not one of the options"):
        check_choice("sgd", "adam", ["sgd", "momentum"])


def test_number_and_sign():
    assert check_number(None, 2.0).status == "unanswered"
    assert check_number("two", 2.0).status == "unanswered"
    assert check_number(2.4, 2.0, rel_tol=0.25).status == "right"
    assert check_number(3.0, 2.0, rel_tol=0.25).status == "wrong"
    assert check_sign("+", 0.1, 0.3).status == "right"
    assert check_sign("-", 0.1, 0.3).status == "wrong"
    assert check_sign("0", -0.1, 0.3).status == "right"
    assert check_sign(None, -0.1, 0.3).status == "unanswered"
    assert "[-0.1, 0.3]" in check_sign("+", -0.1, 0.3).message

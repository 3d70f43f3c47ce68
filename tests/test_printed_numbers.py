"""The tolerant comparison of stored notebook outputs (tests/printed_numbers.py)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from printed_numbers import PrintedOutput, numbers_agree, outputs_agree


@pytest.mark.parametrize("stored, fresh", [
    ("6.77e-05", "6.76e-05"),                      # notebook 04 on another machine
    ("step 300: loss 2.365", "step 300: loss 2.370"),  # notebook 08 on AVX2
    ("cosine 0.39", "cosine 0.38"),                 # one unit in the last digit
    ("[ 0.5 -0.25]", "[-0.5 -0.25]".replace("-0.5", "0.5")),
    ("[ 0.1234 -0.5   ]", "[0.1235 -0.5]"),         # NumPy's padding differs
    ("accuracy 43.89%", "accuracy 43.95%"),
    ("loss 2", "loss 2.001"),                       # :.4g drops the point of 2.000
    ("-0.00", "0.00"),
    ("[0. 1.]", "[0. 1.]"),
    ("[ 0.  1.5]", "[-0.  1.5]"),                # NumPy's bare decimal point
])
def test_close_numbers_and_padding_agree(stored, fresh):
    assert outputs_agree(stored, fresh)


@pytest.mark.parametrize("stored, fresh", [
    ("loss 2.365", "loss 2.41"),          # 2% apart
    ("48/120 correct", "49/120 correct"),  # counts are exact
    ("shape (4, 192)", "shape (4, 193)"),
    ("✓ softmax: all 7 cases right.", "✗ softmax: all 7 cases right."),
    ("loss 2.365", "loss 2.365 nats"),      # text must be equal
    ("1.5 2.5", "1.5"),                     # as many numbers
    ("loss inf", "loss 1e308"),
    ("step 100", "step 103.5"),       # an integer beside a decimal: still 1%
    ("layer1", "layer2"),                   # a digit inside a word is text
    ("trained for 300.", "trained for 301."),  # an integer before a full stop is still exact
])
def test_different_outputs_disagree(stored, fresh):
    assert not outputs_agree(stored, fresh)


def test_last_digit_decides_for_small_numbers():
    assert numbers_agree("1.2e-05", "1.3e-05")   # one unit of the last printed digit
    assert not numbers_agree("1.2e-05", "9.5e-06")  # 25% apart: such cells print a bound instead


@given(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), st.sampled_from([".3f", ".2e", ".1%"]))
def test_a_number_matches_itself_nudged_by_a_tenth_of_the_tolerance(x, spec):
    """(``:.4g`` is left out: it prints 951.0 as ``951``, an integer, and integers are exact.)"""
    assert outputs_agree(f"value {x:{spec}} done", f"value {x * (1 + 0.001):{spec}} done")


@given(st.floats(min_value=0.1, max_value=1e6), st.floats(min_value=0.03, max_value=10))
def test_a_number_three_percent_away_never_matches(x, factor):
    assert not outputs_agree(f"loss {x:.4f}", f"loss {x * (1 + factor):.4f}")


def test_nbval_uses_the_tolerant_comparison():
    from nbval.plugin import IPyNbCell

    assert getattr(IPyNbCell.sanitize, "compares_numbers", False), "conftest.py must install printed_numbers"
    stored = PrintedOutput("loss 2.365")
    assert not (stored != "loss 2.370") and stored != "loss 2.5"

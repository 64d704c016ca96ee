"""A claim's verdict follows its interval: supported only when the whole interval is on the claimed side."""
import pytest

from mamc.report.claims import _claim, verdict


@pytest.mark.parametrize("values, expected", [
    ([1.0, 1.2, 0.9], "supported"),
    ([-1.0, -1.2, -0.9], "not supported"),
    ([0.0, 0.0, 0.0], "not supported"),  # no effect at all is not support
    ([1.0, -1.0, 0.5], "inconclusive"),
    ([2.0], "inconclusive"),  # one seed: no interval
])
def test_verdict_follows_the_interval(values, expected):
    assert _claim("C", "m", values, "why")["verdict"] == expected


def test_precision_is_the_half_width():
    row = _claim("C", "m", [1.0, 2.0, 3.0], "why")
    assert row["effect"] == 2.0 and row["± (95%)"] == pytest.approx((row["hi"] - row["lo"]) / 2) and row["seeds"] == 3
    assert verdict({"n": 1, "lo": float("nan"), "hi": float("nan")}) == "inconclusive"


def test_the_seeds_a_precision_needs_follow_the_spread():
    from mamc.evaluate import seeds_for_precision

    row = _claim("C", "m", [1.0, 2.0, 3.0], "why")  # std 1: t(n-1)/sqrt(n) <= 1 first at n = 7 (0.92; 1.05 at n = 6)
    assert row["seeds for ±1"] == 7
    assert seeds_for_precision(0.0) == 2 and seeds_for_precision(float("nan")) is None
    assert seeds_for_precision(2.0) > seeds_for_precision(1.0) and seeds_for_precision(100.0, most=50) is None

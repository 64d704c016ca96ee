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

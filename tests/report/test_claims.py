"""A claim's verdict follows its interval: supported only when the whole interval is on the claimed side; and
where the truth is known by construction (a gain built to grow with rarity, two methods swapped), the claims
table finds it."""
import json
import math
import shutil

import pytest

from mamc.report.claims import _claim, claims_table, verdict
from mamc.report.tables import run_results
from mamc.run import Run, load_run_config
from mamc.runs import ablation_name


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


@pytest.fixture
def run_copy(smoke_run, tmp_path):
    """A copy of the two-seed smoke run and its configuration, to rewrite results in."""
    root = shutil.copytree(smoke_run, tmp_path / "run", symlinks=True)
    return root, load_run_config(root)


def _rewrite(path, fields: dict):
    path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))


@pytest.mark.slow
@pytest.mark.parametrize("gain_per_decade", [4.0, -4.0])
def test_c2_finds_a_gain_built_to_grow_with_rarity(run_copy, gain_per_decade):
    """meta's per-topic R@1 set to InfoNCE's plus `gain_per_decade` per 10× rarer topic, every seed: C2 measures
    that slope exactly, with the sign it was built with."""
    root, cfg = run_copy
    counts = Run(cfg).read("corpus")["splits"]["train"]["topics"]
    total = sum(counts.values())
    for seed in cfg.seeds:
        base = Run(cfg).read("test", ablation_name(cfg, "infonce", seed))["per_topic_t2v_R@1"]
        built = {t: r + gain_per_decade * -math.log10(counts[t] / total) for t, r in base.items()}
        _rewrite(root / "logs" / ablation_name(cfg, "meta", seed) / "test.json", {"per_topic_t2v_R@1": built})
    c2 = claims_table(cfg, run_results(cfg)).iloc[1]
    assert c2["claim"].startswith("C2") and c2["effect"] == pytest.approx(gain_per_decade)
    assert c2["verdict"] == ("supported" if gain_per_decade > 0 else "not supported")


@pytest.mark.slow
def test_swapping_two_methods_flips_the_effect(run_copy):
    """Exchange margin's and InfoNCE's test results in every seed: C1's effect and interval change sign."""
    root, cfg = run_copy
    before = claims_table(cfg, run_results(cfg)).iloc[0]
    for seed in cfg.seeds:
        a, b = (root / "logs" / ablation_name(cfg, m, seed) / "test.json" for m in ("margin", "infonce"))
        a_text, b_text = a.read_text(), b.read_text()
        a.write_text(b_text)
        b.write_text(a_text)
    after = claims_table(cfg, run_results(cfg)).iloc[0]
    assert after["claim"].startswith("C1") and before["effect"] != 0
    assert after["effect"] == pytest.approx(-before["effect"])
    assert (after["lo"], after["hi"]) == pytest.approx((-before["hi"], -before["lo"]))

"""Profiles are defined once and overrides are typed and validated."""
import pytest

from mamc.config import PROFILES, coerce, load_config


def test_profiles_share_one_config_object():
    smoke, default, paper = (load_config(p) for p in PROFILES)
    assert smoke.steps < default.steps < paper.steps
    assert default.n_test == 1000 and paper.frames == 12 and "clip" in paper.video_backbone
    assert smoke.run_dir == "runs/smoke"


def test_overrides_are_coerced_and_unknown_keys_rejected():
    cfg = load_config("smoke", steps="7", margin="0.25", freeze_text="false", seeds="0,1,2")
    assert (cfg.steps, cfg.margin, cfg.freeze_text, cfg.seeds) == (7, 0.25, False, (0, 1, 2))
    with pytest.raises(KeyError, match="unknown config key 'stepz'"):
        load_config("smoke", stepz=3)
    with pytest.raises(ValueError, match="unknown profile"):
        load_config("huge")
    with pytest.raises(ValueError, match="unknown methods"):
        load_config("smoke", methods="infonce,clip")
    with pytest.raises(ValueError, match="true/false"):
        coerce("freeze_text", "maybe")

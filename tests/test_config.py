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


@pytest.mark.parametrize("override, message", [
    ({"steps": "abc"}, "steps expects an integer, got 'abc'"),
    ({"seeds": "0,x"}, "seeds expects a comma-separated list of integers, got '0,x'"),
    ({"n_topics": "0"}, "n_topics=0 is out of range: expected 1 ≤ n_topics ≤ 30"),
    ({"noise_rate": "1.5"}, "noise_rate=1.5 is out of range: expected 0.0 ≤ noise_rate ≤ 1"),
    ({"temperature": "0"}, "temperature=0.0 is out of range: it must be > 0"),
    ({"batch_size": "1"}, "batch_size=1 is out of range: expected 2 ≤ batch_size"),
    ({"meta_params": "some"}, "meta_params='some' is not one of all, head"),
    ({"video_width": "30", "video_heads": "4"}, "video_width=30 must divide by video_heads=4"),
    ({"captioner_heldout": "48"}, "captioner_heldout=48 leaves no training clip of captioner_corpus=48"),
])
def test_bad_values_are_rejected_up_front_naming_the_setting(override, message):
    with pytest.raises(ValueError) as err:
        load_config("smoke", **override)
    assert str(err.value) == message


def test_every_embedded_topic_is_allowed_and_no_more():
    from mamc.config import EMBEDDED_TOPICS
    from mamc.data.synthetic import topic_names

    assert len(topic_names()) == EMBEDDED_TOPICS
    assert load_config("smoke", n_topics=str(EMBEDDED_TOPICS)).n_topics == EMBEDDED_TOPICS


def test_the_dose_response_uses_snapshots_of_the_embedded_captioner_only():
    assert load_config("smoke", dose_captioner_steps="1,3,4,9", captioner_steps=4).dose_snapshots == (1, 3)
    assert load_config("smoke", captioner="some/hub-id").dose_snapshots == ()
    assert load_config("paper").dose_snapshots == ()


def test_a_knob_the_user_sets_is_not_tuned(tmp_path):
    """`--param margin=0.3` (or a notebook's overrides) means margin 0.3: only the knobs left unset are tuned, and a
    run folder's saved choice holds until an override sets another knob."""
    from mamc.run import load_run_config, save_config

    assert load_config("smoke").tuned == ("margin", "meta_lr")
    assert load_config("paper").tuned == ("margin", "meta_lr")  # a profile's value is a default, not the user's
    cfg = load_config("smoke", run_dir=str(tmp_path), margin="0.3")
    assert cfg.margin == 0.3 and cfg.tuned == ("meta_lr",)
    save_config(cfg)
    assert load_run_config(tmp_path).tuned == ("meta_lr",)
    assert load_run_config(tmp_path, meta_lr="0.01").tuned == ()
    with pytest.raises(ValueError, match="names knobs that are not tuned"):
        load_config("smoke", tuned="steps")

"""The runs of an experiment: which runs tuning needs, what a method trains with, and the head/tail groups."""
from collections import Counter
from dataclasses import replace

from mamc.config import load_config
from mamc.manifest import read_manifest
from mamc.runs import chosen_values, knob_sources, method_config, topic_groups, topic_ranking, tuning_runs


def test_topics_rank_by_training_frequency_ties_by_name_then_test_only_topics():
    stats = {"splits": {"train": {"topics": {"b": 5, "a": 5, "c": 1, "d": 9}},
                        "test": {"topics": {"z": 3, "c": 2, "e": 1}}}}
    assert topic_ranking(stats) == ["d", "a", "b", "c", "e", "z"]


def test_the_head_is_exactly_the_most_frequent_half_of_the_training_topics(smoke_cfg):
    """Counted here from the manifest, apart from the corpus statistics the kit reads."""
    counts = Counter(r["topic"] for r in read_manifest(smoke_cfg.data_dir / "manifest.jsonl", "train"))
    groups = topic_groups(smoke_cfg)
    head = {t for t, g in groups.items() if g == "head"}
    assert len(head) == len(groups) // 2
    assert min(counts[t] for t in head) >= max(counts.get(t, 0) for t in set(groups) - head)


def test_a_knob_the_user_set_is_neither_searched_nor_replaced(tmp_path):
    """margin set: no tuning run of `margin` or `additive`, and every method with a margin trains at it."""
    cfg = load_config("smoke", run_dir=str(tmp_path), margin="0.3", meta_lr_sweep="")
    assert [name for name, _, _ in tuning_runs(cfg)] == []
    chosen = chosen_values(cfg)
    assert chosen["margin"] == {"margin": 0.3} == chosen["additive"] and chosen["mama"] == {"margin": 0.3, "meta_lr": 1e-3}
    assert method_config(cfg, "mama", chosen).margin == 0.3
    assert knob_sources(cfg, "mama") == {"margin": "set", "meta_lr": "configured"}
    assert knob_sources(replace(cfg, tuned=("margin", "meta_lr"), meta_lr_sweep=(1e-3,)), "mama") == {
        "margin": "tuned", "meta_lr": "tuned"}

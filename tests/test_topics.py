"""The topic model recovers clearly separated topics and reports agreement with known ones."""
from mamc.topics import agreement, fit_topics, top_words_by_true_topic


def test_recovers_separable_topics():
    captions = [f"a dog barks loudly {i}" for i in range(10)] + [f"rain falls on the roof {i}" for i in range(10)]
    truth = ["dog"] * 10 + ["rain"] * 10
    model = fit_topics(captions, 2)
    assert agreement(truth, model.labels)["NMI"] == 1.0
    assert {w for top in model.top_words for w in top[:2]} & {"dog", "barks", "rain", "falls"}
    assert top_words_by_true_topic(captions, truth, 2)["dog"][0] in {"dog", "barks", "loudly"}


def test_a_small_vocabulary_gets_as_many_topics_as_it_supports():
    """A small dataset (DiDeMo's dry run: a few videos, few shared words) asks for more topics than it has words:
    seven words (rabbit, meadow, eats, grass, bikes, road, race) make seven topics, not eight."""
    captions = ["a rabbit in a meadow", "a rabbit eats grass", "bikes on a road", "bikes race on the road"] * 3
    model = fit_topics(captions, 8)
    assert len(model.top_words) == 7 and len(model.labels) == 12


def test_captions_without_a_shared_word_are_refused_with_a_reason():
    import pytest

    with pytest.raises(ValueError, match="the 3 captions share no word"):
        fit_topics(["a cat", "the dog", "one bird"], 2)

"""The topic model recovers clearly separated topics and reports agreement with known ones."""
from mamc.topics import agreement, fit_topics, top_words_by_true_topic


def test_recovers_separable_topics():
    captions = [f"a dog barks loudly {i}" for i in range(10)] + [f"rain falls on the roof {i}" for i in range(10)]
    truth = ["dog"] * 10 + ["rain"] * 10
    model = fit_topics(captions, 2)
    assert agreement(truth, model.labels)["NMI"] == 1.0
    assert {w for top in model.top_words for w in top[:2]} & {"dog", "barks", "rain", "falls"}
    assert top_words_by_true_topic(captions, truth, 2)["dog"][0] in {"dog", "barks", "loudly"}

"""A topic model over captions (TF-IDF + NMF from scikit-learn) for data without known topics: each clip gets
a topic and each topic its top words, as in the paper's topic figure. On the embedded corpus the true topics
are known, so the model's agreement with them is measured (NMI, ARI)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import NMF
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

# Template words of the embedded corpus carry no topic; real corpora use the standard list only.
CAPTION_STOP_WORDS = sorted(ENGLISH_STOP_WORDS | {"video", "clip", "shows", "screen", "moves", "travels", "turns"})


@dataclass
class TopicModel:
    labels: np.ndarray
    top_words: list[list[str]]
    vectorizer: TfidfVectorizer
    nmf: NMF

    def assign(self, captions: list[str]) -> np.ndarray:
        """Topics of captions the model was not fitted on (a corpus too large to fit on whole is fitted on a
        sample and assigned in chunks)."""
        return self.nmf.transform(self.vectorizer.transform(captions)).argmax(1)


def fit_topics(captions: list[str], n_topics: int, seed: int = 0, n_top_words: int = 8) -> TopicModel:
    """Topic of each caption (argmax of its NMF loading) and the top words of each topic: `n_topics`, or as many
    as the captions' vocabulary (words of at least two captions) supports when it has fewer words (a small
    dataset); `len(model.top_words)` says how many."""
    if len(captions) < n_topics:
        raise ValueError(f"{len(captions)} captions cannot make {n_topics} topics")
    vec = TfidfVectorizer(stop_words=CAPTION_STOP_WORDS, min_df=2, sublinear_tf=True)
    try:
        x = vec.fit_transform(captions)
    except ValueError:  # scikit-learn's "After pruning, no terms remain"
        raise ValueError(f"the {len(captions)} captions share no word (apart from stop words): no topic can be "
                         "inferred from them") from None
    nmf = NMF(n_components=min(n_topics, *x.shape), init="nndsvda", random_state=seed, max_iter=400)
    w = nmf.fit_transform(x)
    vocab = np.array(vec.get_feature_names_out())
    top = [vocab[np.argsort(c)[::-1][:n_top_words]].tolist() for c in nmf.components_]
    return TopicModel(w.argmax(1), top, vec, nmf)


def agreement(true_topics: list[str], labels: np.ndarray) -> dict[str, float]:
    """How well inferred topics recover the true ones (1 is perfect, about 0 is chance)."""
    return {"NMI": float(normalized_mutual_info_score(true_topics, labels)),
            "ARI": float(adjusted_rand_score(true_topics, labels))}


def top_words_by_true_topic(captions: list[str], topics: list[str], n: int = 5) -> dict[str, list[str]]:
    """The most characteristic words of each known topic (mean TF-IDF of its captions)."""
    vec = TfidfVectorizer(stop_words=CAPTION_STOP_WORDS)
    x = vec.fit_transform(captions)
    vocab = np.array(vec.get_feature_names_out())
    topics_arr = np.array(topics)
    return {t: vocab[np.asarray(x[topics_arr == t].mean(0)).ravel().argsort()[::-1][:n]].tolist()
            for t in dict.fromkeys(topics)}

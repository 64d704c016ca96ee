"""Retrieval ranks one candidate per video: several captions of a video neither tie with each other nor count
against it, so a perfect model scores R@1 = 100 in both directions on a multi-caption split."""
import json
from dataclasses import replace

import numpy as np
import torch

from mamc.embed import group_by_video
from mamc.evaluate import video_text_retrieval


def rows_with_captions(per_video: list[int]) -> list[dict]:
    return [{"video_id": f"v{v}", "video": f"v{v}.mp4", "caption": f"caption {k} of v{v}", "split": "test"}
            for v, n in enumerate(per_video) for k in range(n)]


def test_rows_are_grouped_by_video_in_order():
    rows = rows_with_captions([3, 1, 2])
    rows.insert(1, dict(rows_with_captions([1])[0], video_id="v9", video="v9.mp4"))
    videos, owner = group_by_video(rows)
    assert [v["video_id"] for v in videos] == ["v0", "v9", "v1", "v2"]
    assert owner.tolist() == [0, 1, 0, 0, 2, 3, 3]


def test_a_perfect_model_scores_100_on_a_multi_caption_split_in_both_directions():
    rows = rows_with_captions([20, 20, 5, 1])
    videos, owner = group_by_video(rows)
    v = torch.eye(len(videos))
    t = v[torch.as_tensor(owner)]
    grouped = video_text_retrieval(t @ v.T, owner)
    assert grouped["t2v"]["R@1"] == 100 and grouped["v2t"]["R@1"] == 100
    per_row = video_text_retrieval(t @ t.T)  # one candidate per row: duplicate columns tie against the truth
    assert per_row["t2v"]["R@1"] < 100


def test_test_evaluation_counts_videos_and_captions(smoke_cfg, tmp_path):
    from mamc.experiments import evaluate_test
    from mamc.manifest import read_manifest, write_jsonl
    from mamc.train import train

    (tmp_path / "data").mkdir()
    for name in ("videos", "corpus.json"):
        (tmp_path / "data" / name).symlink_to(smoke_cfg.data_dir / name)
    rows = read_manifest(smoke_cfg.data_dir / "manifest.jsonl")
    test = [r for r in rows if r["split"] == "test"]
    write_jsonl(tmp_path / "data" / "manifest.jsonl", rows + [dict(r, caption="another caption") for r in test[:10]])
    cfg = replace(smoke_cfg, run_dir=str(tmp_path), steps=1, eval_every=1, ckpt_every=1)
    train(cfg, "infonce", name="grouped", progress=False)
    out = evaluate_test(cfg, "grouped")
    assert (out["n_test"], out["n_test_videos"]) == (len(test) + 10, len(test))
    assert json.loads((tmp_path / "logs" / "grouped" / "test.json").read_text())["n_test_videos"] == len(test)
    assert np.isfinite(out["v2t"]["MnR"]) and out["v2t"]["MnR"] <= len(test) + 10

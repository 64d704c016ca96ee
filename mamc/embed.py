"""Model inputs and embeddings of manifest rows: text as cached frozen-backbone features or as tokens, and
L2-normalised video and caption embeddings for evaluation (validation, test, QA)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mamc.config import Config
from mamc.data.loaders import load_frames
from mamc.models import DualEncoder, normalize_frames, text_feature_cache


def frozen_text_features(model: DualEncoder, texts: list[str], cache_dir: Path, device) -> dict | None:
    """Cached backbone features of `texts` when the text backbone is frozen; None when it trains (tokens then)."""
    return text_feature_cache(model.text, texts, cache_dir, device) if model.freeze_text else None


def text_input(model: DualEncoder, captions: list[str], feats: dict | None, device: torch.device):
    """What the text tower takes: cached features when the backbone is frozen, else tokens. Captions the cache
    lacks (streamed from shards, unknown when it was filled) are encoded by the frozen backbone on the spot."""
    if feats is None:
        return model.text.tokenize(captions, device)
    missing = [c for c in dict.fromkeys(captions) if c not in feats]
    new = dict(zip(missing, model.text.encode(missing, device=device))) if missing else {}
    return torch.stack([feats[c] if c in feats else new[c] for c in captions]).to(device)


def group_by_video(rows: list[dict]) -> tuple[list[dict], np.ndarray]:
    """One row per distinct video (first occurrence, in order) and, for every row, the index of its video:
    retrieval ranks one candidate per video, so that a video's several captions (MSR-VTT has 20) neither tie
    with each other as duplicate candidates nor count against it."""
    index: dict[tuple, int] = {}
    videos, owner = [], []
    for row in rows:
        key = (row["video_id"], row.get("start"), row.get("end"))
        if key not in index:
            index[key] = len(videos)
            videos.append(row)
        owner.append(index[key])
    return videos, np.asarray(owner, dtype=np.int64)


@torch.no_grad()
def embed_rows(model: DualEncoder, rows: list[dict], cache: Path, cfg: Config, feats: dict | None,
               device: torch.device, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """L2-normalised embeddings for retrieval (uniform frames, eval mode): one per distinct video, one per
    caption row, and each row's video index (see `group_by_video`)."""
    videos, owner = group_by_video(rows)
    model.eval()
    vs, ts = [], []
    for s in range(0, len(videos), batch_size):
        frames = normalize_frames(load_frames(videos[s : s + batch_size], cache, cfg.frames).to(device))  # copied as uint8
        vs.append(torch.nn.functional.normalize(model.encode_video(frames).float(), dim=-1).cpu())
    for s in range(0, len(rows), batch_size):
        text = text_input(model, [r["caption"] for r in rows[s : s + batch_size]], feats, device)
        ts.append(torch.nn.functional.normalize(model.encode_text(text).float(), dim=-1).cpu())
    model.train()
    return torch.cat(vs), torch.cat(ts), owner

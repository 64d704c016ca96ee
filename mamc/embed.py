"""Model inputs and embeddings of manifest rows: text as cached frozen-backbone features or as tokens, and
L2-normalised video and caption embeddings for evaluation (validation, test, QA)."""
from __future__ import annotations

from pathlib import Path

import torch

from mamc.config import Config
from mamc.data.loaders import load_frames
from mamc.models import DualEncoder, normalize_frames, text_feature_cache


def frozen_text_features(model: DualEncoder, texts: list[str], cache_dir: Path, device) -> dict | None:
    """Cached backbone features of `texts` when the text backbone is frozen; None when it trains (tokens then)."""
    return text_feature_cache(model.text, texts, cache_dir, device) if model.freeze_text else None


def text_input(model: DualEncoder, captions: list[str], feats: dict | None, device: torch.device):
    """What the text tower takes: cached features when the backbone is frozen, else tokens."""
    if feats is not None:
        return torch.stack([feats[c] for c in captions]).to(device)
    return model.text.tokenize(captions, device)


@torch.no_grad()
def embed_rows(model: DualEncoder, rows: list[dict], cache: Path, cfg: Config, feats: dict | None,
               device: torch.device, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised video and caption embeddings for rows (uniform frames, eval mode)."""
    model.eval()
    vs, ts = [], []
    for s in range(0, len(rows), batch_size):
        part = rows[s : s + batch_size]
        frames = normalize_frames(load_frames(part, cache, cfg.frames)).to(device)
        v, t = model(frames, text_input(model, [r["caption"] for r in part], feats, device))
        vs.append(torch.nn.functional.normalize(v.float(), dim=-1).cpu())
        ts.append(torch.nn.functional.normalize(t.float(), dim=-1).cpu())
    model.train()
    return torch.cat(vs), torch.cat(ts)

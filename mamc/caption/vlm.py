"""Captioning with any LLaVA-family checkpoint through transformers' Auto classes, by hub id or local path.

`AutoProcessor` + `AutoModelForImageTextToText` with the checkpoint's chat template; batched generation with
left padding; no `trust_remote_code` unless asked for. The embedded captioner (mamc.caption.tiny) is loaded by
exactly this code.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from transformers import LogitsProcessor, LogitsProcessorList


@dataclass
class Captioner:
    """The transformers engine (CPU or GPU); `mamc.caption.vllm_engine.VllmCaptioner` is the other one."""

    processor: object
    model: torch.nn.Module
    name: str
    revision: str | None
    engine: str = "transformers"

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def resolve_dtype(spec: str, device: torch.device) -> torch.dtype:
    """"auto": bfloat16 on CUDA (what 7B LLaVA checkpoints are run in), float32 on CPU."""
    if spec == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, spec)


def load_captioner(name: str, device: torch.device | str = "cpu", dtype: str = "auto",
                   trust_remote_code: bool = False, revision: str | None = None) -> Captioner:
    """Processor and model of a LLaVA-family checkpoint, padding on the left for batched generation."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    device = torch.device(device)
    processor = AutoProcessor.from_pretrained(name, trust_remote_code=trust_remote_code, revision=revision)
    processor.tokenizer.padding_side = "left"
    model = AutoModelForImageTextToText.from_pretrained(
        name, dtype=resolve_dtype(dtype, device), trust_remote_code=trust_remote_code, revision=revision).to(device).eval()
    return Captioner(processor, model, name, revision or getattr(model.config, "_commit_hash", None))


def video_backend_available() -> tuple[bool, str]:
    """Video-native checkpoints (LLaVA-NeXT-Video, Qwen2-VL) need torchvision for their video processors.
    The CPU build of torch here cannot import PyPI's torchvision, so say that plainly instead of crashing."""
    try:
        import torchvision  # noqa: F401
    except Exception as err:  # a broken torchvision raises RuntimeError, not ImportError
        return False, (f"torchvision does not import ({type(err).__name__}: {err}); video-native checkpoints need it. "
                       "Install a torchvision matching your torch (see README), or caption keyframe grids instead.")
    return True, "torchvision available"


def chat_prompt(processor, prompt: str, kind: str = "image") -> str:
    messages = [{"role": "user", "content": [{"type": kind}, {"type": "text", "text": prompt}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True)


def clean_caption(text: str) -> str:
    """Normalise whitespace and say "video" where an image model said "image(s)" (the authors' post-processing)."""
    text = re.sub(r"\b[Ii]mages?\b", "video", text)
    text = re.sub(r"\s+([.,!?])", r"\1", " ".join(text.split()))
    return text.strip()


def prepare_inputs(cap: Captioner, images: list[Image.Image], prompt: str):
    """Chat-templated prompts and pixel values for a batch, left-padded, on the model's device and dtype."""
    text = [chat_prompt(cap.processor, prompt)] * len(images)
    inputs = cap.processor(images=images, text=text, return_tensors="pt", padding=True).to(cap.device)
    return _to_model_dtype(cap, inputs)


def _to_model_dtype(cap: Captioner, inputs):
    for key in ("pixel_values", "pixel_values_videos"):
        if key in inputs:
            inputs[key] = inputs[key].to(cap.model.dtype)
    return inputs


def video_seed(seed: int, video_id: str) -> int:
    """The sampling seed of one video's caption: a function of the run's seed and the video alone, so that a
    caption never depends on batch size, sharding, `--limit` or where an interrupted job resumed."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{video_id}".encode()).digest()[:8], "little") >> 1


class RowSeededSampling(LogitsProcessor):
    """Sampling from softmax(logits / T) with one random stream per row of the batch.

    argmax(logits / T + g) with g i.i.d. standard Gumbel is an exact sample of softmax(logits / T) (the
    Gumbel-max trick). Each row draws its noise from a generator seeded for that row, so with greedy decoding
    on these scores every row is sampled independently of the others in its batch."""

    def __init__(self, seeds: Sequence[int], temperature: float):
        self.generators = [torch.Generator().manual_seed(s) for s in seeds]
        self.temperature = temperature

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        u = torch.stack([torch.rand(scores.shape[-1], generator=g, dtype=torch.float64) for g in self.generators])
        gumbel = -torch.log(-torch.log(u.clamp(1e-300, 1 - 1e-16)))
        return (scores.double() / self.temperature + gumbel.to(scores.device)).to(scores.dtype)


@torch.no_grad()
def _generate(cap: Captioner, inputs, temperature: float, max_new_tokens: int, seed: int | Sequence[int]) -> list[str]:
    n = inputs["input_ids"].shape[0]
    seeds = [seed + i for i in range(n)] if isinstance(seed, int) else list(seed)
    if len(seeds) != n:
        raise ValueError(f"{len(seeds)} seeds for a batch of {n}")
    sampling = LogitsProcessorList([RowSeededSampling(seeds, temperature)]) if temperature > 0 else None
    out = cap.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, temperature=None, top_p=None,
                             top_k=None, logits_processor=sampling, pad_token_id=cap.processor.tokenizer.pad_token_id)
    new = out[:, inputs["input_ids"].shape[1]:]
    return [clean_caption(t) for t in cap.processor.tokenizer.batch_decode(new, skip_special_tokens=True)]


def generate_captions(cap: Captioner, images: list[Image.Image], prompt: str, temperature: float = 0.2,
                      max_new_tokens: int = 64, seed: int | Sequence[int] = 0, inputs=None) -> list[str]:
    """One caption per image; sampling with `temperature` (greedy when 0). `seed` is one seed per image (see
    `video_seed`), or an int for ad-hoc use (image i gets seed + i). `inputs` may come from `prepare_inputs`
    (to time preprocessing apart). Another engine's captioner (`mamc.caption.vllm_engine`) generates itself,
    with the same prompt, template and cleaning."""
    if cap.engine != "transformers":
        return cap.generate(images, prompt, temperature, max_new_tokens,
                            [seed + i for i in range(len(images))] if isinstance(seed, int) else list(seed))
    inputs = inputs if inputs is not None else prepare_inputs(cap, images, prompt)
    return _generate(cap, inputs, temperature, max_new_tokens, seed)


def generate_video_captions(cap: Captioner, clips: list[np.ndarray], prompt: str, temperature: float = 0.2,
                            max_new_tokens: int = 64, seed: int | Sequence[int] = 0) -> list[str]:
    """Captions from frames [T, H, W, 3] given to a video-native checkpoint (LLaVA-NeXT-Video, Qwen2-VL) as a
    video. Their video processors need torchvision; without it this raises with the reason, before any work."""
    if cap.engine != "transformers":
        raise ValueError(f"caption_input=frames needs the transformers engine (the {cap.engine} engine takes the grid)")
    ok, message = video_backend_available()
    if not ok:
        raise RuntimeError(message)
    text = [chat_prompt(cap.processor, prompt, "video")] * len(clips)
    inputs = cap.processor(videos=list(clips), text=text, return_tensors="pt", padding=True).to(cap.device)
    return _generate(cap, _to_model_dtype(cap, inputs), temperature, max_new_tokens, seed)

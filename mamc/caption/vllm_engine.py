"""The vLLM engine: the same captions' recipe (prompt, chat template, keyframe grid, length rule, cleaning) run by
vLLM's offline `LLM.generate`, the grid given as the request's image, for LLaVA-family checkpoints on a GPU.

Installed with `pip install "mamc[vllm]"`; on a machine without it, or without a CUDA GPU, loading says so in
one line. Sampling is vLLM's own, seeded per request with the video's seed: a caption is reproducible on the same
GPU, vLLM version and batch, but it is not the transformers engine's caption for that seed (that engine samples
with its own Gumbel-max stream per row, `RowSeededSampling`), and vLLM does not promise the same result when a
request is batched with others (its reproducibility notes). Greedy decoding (temperature 0) agrees with
transformers' up to the numerics of the two kernels.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from mamc.caption.vlm import chat_prompt, clean_caption


@dataclass
class VllmCaptioner:
    processor: object
    llm: object
    name: str
    revision: str | None
    engine: str = "vllm"

    def generate(self, images: list[Image.Image], prompt: str, temperature: float, max_new_tokens: int,
                 seeds: Sequence[int]) -> list[str]:
        """One caption per image, each request seeded with its video's seed."""
        from vllm import SamplingParams

        text = chat_prompt(self.processor, prompt)
        requests = [{"prompt": text, "multi_modal_data": {"image": image}} for image in images]
        params = [SamplingParams(temperature=temperature, max_tokens=max_new_tokens, seed=seed) for seed in seeds]
        return [clean_caption(out.outputs[0].text) for out in self.llm.generate(requests, params, use_tqdm=False)]


def vllm_available() -> tuple[bool, str]:
    """Whether the vLLM engine can run here, and if not, the one line that says why."""
    try:
        import vllm  # noqa: F401
    except ImportError:
        return False, ('the vllm caption engine is not installed: pip install "mamc[vllm]" (Linux with a CUDA GPU), '
                       "or caption with caption_engine=transformers")
    if not torch.cuda.is_available():
        return False, "the vllm caption engine needs a CUDA GPU and this machine has none: use caption_engine=transformers"
    return True, "vllm available"


def load_vllm_captioner(name: str, dtype: str = "auto", revision: str | None = None, trust_remote_code: bool = False,
                        gpu_memory: float = 0.9) -> VllmCaptioner:
    """A LLaVA-family checkpoint in vLLM, taking `gpu_memory` of the GPU (vLLM's gpu_memory_utilization)."""
    ok, message = vllm_available()
    if not ok:
        raise RuntimeError(message)
    from transformers import AutoProcessor
    from vllm import LLM

    processor = AutoProcessor.from_pretrained(name, trust_remote_code=trust_remote_code, revision=revision)
    llm = LLM(model=name, revision=revision, dtype="bfloat16" if dtype == "auto" else dtype,
              trust_remote_code=trust_remote_code, limit_mm_per_prompt={"image": 1}, gpu_memory_utilization=gpu_memory)
    return VllmCaptioner(processor, llm, name, revision)

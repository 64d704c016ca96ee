"""`mamc gpu-check`: the figures a lent GPU is wanted for, measured in one command and written to
`OUT/gpu_check.json` and `OUT/gpu_check.md`. Every model is built on the spot with random weights from its
published shape (nothing is downloaded):

1. the paper model's training step (CLIP ViT-B/32, 12 frames at 224, bfloat16 autocast) at growing batches until
   memory runs out: peak memory and time of InfoNCE, the exact meta step and the `head` meta step;
2. the loss and its gradient under autocast against float32 at τ = 0.01 for m = 0.005, 0.01, 0.02;
3. torchrun through the CLI at world size 1 (NCCL on a GPU): a meta-weighted smoke run;
4. caption throughput of a LLaVA-1.5-7B-shaped model in bfloat16, videos/s at a few batch sizes, with the
   transformers engine and, where vLLM is installed, the vLLM engine (the same model saved and loaded by vLLM),
   and on a tiny saved LLaVA how many greedy captions the two engines agree on;
5. the paper dry run (`tests/test_documented_commands.py -k paper`) on the device.

`--tiny` runs the same code at tiny shapes: the test suite does, on the CPU, so that the check never rots before
a GPU comes.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mamc import distributed as dist
from mamc.caption.grid import video_grid
from mamc.caption.tiny import build_captioner
from mamc.caption.vlm import Captioner, generate_captions
from mamc.config import REPO_ROOT, Config, load_config
from mamc.losses import angular_margin_nce, info_nce
from mamc.manifest import write_json, write_text
from mamc.models import normalize_frames
from mamc.run import deterministic, resolve_device
from mamc.runs import METHODS
from mamc.train import autocast, build_learner, training_step

# LLaVA-1.5-7B: CLIP ViT-L/14 at 336 px (features of the second-to-last layer) and Vicuna-7B (Llama's shape).
LLAVA_15_7B = dict(image_size=336, patch=14, feature_layer=-2,
                   vision=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16),
                   text=dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                             num_key_value_heads=32, vocab_size=32064, max_position_embeddings=4096))
TINY_LLAVA = dict(image_size=32, patch=16, feature_layer=-1, vision={}, text={})
STEP_VARIANTS = {"InfoNCE": ("infonce", "all"), "meta, exact virtual step": ("meta", "all"),
                 "meta, virtual step above the backbone (head)": ("meta", "head")}
PROMPT = Config().prompt


def random_clip(out: Path, vit_b32_shape: bool = True) -> str:
    """A CLIP (text and vision towers) with random weights and a byte-level CLIP tokenizer, saved with
    `save_pretrained` so that it loads like openai/clip-vit-base-patch32: of ViT-B/32's exact shape (transformers'
    CLIPConfig defaults), or tiny."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    chars = sorted(ByteLevel.alphabet())
    vocab = {t: i for i, t in enumerate(chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"])}
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    special = dict(bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
                   pad_token_id=vocab["<|endoftext|>"])
    config = CLIPConfig(text_config=special) if vit_b32_shape else CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=77, **special),
        vision_config=dict(image_size=32, patch_size=16, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2), projection_dim=32)
    CLIPModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _timed(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Seconds per call of `fn`, after one call that warms up kernels and allocator."""
    fn()
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _synchronize(device)
    return (time.perf_counter() - start) / repeats


@contextmanager
def _until_out_of_memory(row: dict, device: torch.device) -> Iterator[None]:
    """Record "out of memory" in `row` instead of failing: the batch sizes past it are then skipped."""
    try:
        yield
    except torch.OutOfMemoryError:
        row["out_of_memory"] = True
        _reset_peak(device)


def _step_seconds(learner, method: str, cfg: Config, device: torch.device, captions: list[str], repeats: int) -> float:
    """Seconds of one training step of `method` on random frames and `captions` (meta batch: the first
    `meta_batch_size` of them)."""
    batch = len(captions)
    frames = normalize_frames(torch.randint(0, 256, (batch, cfg.frames, cfg.frame_size, cfg.frame_size, 3),
                                            dtype=torch.uint8, device=device))
    text = learner.model.text.tokenize(captions, device)
    meta = min(batch, cfg.meta_batch_size)
    meta_batch = (frames[:meta], {k: v[:meta] for k, v in text.items()})
    return _timed(lambda: training_step(learner, METHODS[method], cfg, device, frames, text, 0, lambda: meta_batch),
                  device, repeats)


def step_memory(cfg: Config, device: torch.device, batches: list[int], repeats: int = 3) -> list[dict]:
    """Part 1: peak memory and seconds of a training step of the paper model for each variant and batch size."""
    rows = []
    captions = [f"a person does thing number {i} in the video" for i in range(max(batches))]
    for variant, (method, params) in STEP_VARIANTS.items():
        run_cfg = replace(cfg, meta_params=params, meta_interval=1)
        torch.manual_seed(0)
        learner = build_learner(run_cfg, device)
        full = False
        for batch in batches:
            row = {"variant": variant, "batch": batch, "out_of_memory": full}
            rows.append(row)
            if full:
                continue
            _reset_peak(device)
            with _until_out_of_memory(row, device):
                row.update(seconds_per_step=_step_seconds(learner, method, run_cfg, device, captions[:batch], repeats),
                           peak_gib=_peak_gib(device))
            full = row["out_of_memory"]
        learner = None  # its memory goes back before the next variant's model is built
        _reset_peak(device)
    return rows


def loss_precision(device: torch.device, margins: tuple[float, ...] = (0.005, 0.01, 0.02), batch: int = 128,
                   dim: int = 512) -> list[dict]:
    """Part 2: the loss and its gradient with respect to the embeddings, under bfloat16 autocast against
    float32, at τ = 0.01, on bfloat16 embeddings placed as a pretrained CLIP starts (positives at cos θ ≈ 0.36,
    negatives at ≈ 0.32)."""
    g = torch.Generator().manual_seed(0)
    shared = F.normalize(torch.randn(1, dim, generator=g), dim=-1)
    own, other = F.normalize(torch.randn(2, batch, dim, generator=g), dim=-1)
    video = (0.55 * shared + 0.835 * own).bfloat16().to(device)
    text = (0.55 * shared + 0.05 * own + 0.83 * other).bfloat16().to(device)

    def loss_and_grad(margin: float, mixed: bool):
        v = video.clone().requires_grad_(True)
        with autocast(device, "bfloat16" if mixed else "off"):
            loss = angular_margin_nce(v, text, margin, 0.01)
        (grad,) = torch.autograd.grad(loss.sum(), v)
        return loss.detach().float(), grad.float()

    rows = []
    for m in margins:
        (l32, g32), (lmix, gmix) = loss_and_grad(m, False), loss_and_grad(m, True)
        base = info_nce(video, text, 0.01).float()
        rows.append({"margin": m, "margin_effect": float((l32 - base).mean()),
                     "loss_max_abs_diff": float((lmix - l32).abs().max()),
                     "grad_max_rel_diff": float((gmix - g32).abs().max() / g32.abs().max())})
    return rows


def nccl_through_cli(out: Path, device: torch.device, timeout: int = 600) -> dict:
    """Part 3: `torchrun --nproc_per_node 1 -m mamc -- train --method meta` on a smoke run folder on the device:
    the process group (NCCL on a GPU) and every collective of the meta step, through the CLI."""
    run = out / "torchrun_run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    made = subprocess.run([sys.executable, "-m", "mamc", "synth", "--run", str(run), "--profile", "smoke", "--param",
                           f"device={device.type}"], capture_output=True, text=True, env=env, timeout=timeout)
    trained = made if made.returncode else subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", "-m", "mamc", "--",
         "train", "--run", str(run), "--method", "meta"], capture_output=True, text=True, env=env, timeout=timeout)
    summary = run / "logs" / "meta_s0_lr0.001" / "summary.json"
    result = {"returncode": trained.returncode, "seconds": time.perf_counter() - start,
              "summary": json.loads(summary.read_text()) if summary.exists() else None}
    if trained.returncode:
        result["output_tail"] = (trained.stdout + trained.stderr)[-3000:]
    return result


def random_captioner(device: torch.device, shape: dict) -> Captioner:
    """A LLaVA of `shape` with random weights, built on the device in bfloat16 (a 7B model takes 14 GB there),
    with a small word-level tokenizer: what the caption job costs, not what it says."""
    words = [PROMPT, "a person moves the object across the table and then picks it up"]
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            processor, model = build_captioner(words, **shape)
    finally:
        torch.set_default_dtype(before)
    processor.tokenizer.padding_side = "left"
    return Captioner(processor, model.eval(), "random LLaVA of a published shape", None)


def caption_throughput(device: torch.device, shape: dict, batches: list[int], cell: int, max_new_tokens: int,
                       repeats: int = 2) -> list[dict]:
    """Part 4: videos/s of the caption job's generation (3×4 keyframe grids, the paper's prompt, sampling at 0.2,
    `max_new_tokens` new tokens: random weights seldom stop earlier), and peak memory, per batch size."""
    cap = random_captioner(device, shape)
    rng = np.random.default_rng(0)
    grids = [video_grid(rng.integers(0, 256, (12, cell, cell, 3), dtype=np.uint8), 3, 4) for _ in range(max(batches))]
    rows, full = [], False
    for batch in batches:
        row = {"batch": batch, "out_of_memory": full}
        rows.append(row)
        if full:
            continue
        _reset_peak(device)
        with _until_out_of_memory(row, device):
            seconds = _timed(lambda images=grids[:batch], seeds=list(range(batch)): generate_captions(
                cap, images, PROMPT, 0.2, max_new_tokens, seed=seeds), device, repeats)
            row.update(videos_per_s=batch / seconds, seconds_per_batch=seconds, peak_gib=_peak_gib(device))
        full = row["out_of_memory"]
    return rows


def vllm_caption_throughput(out: Path, device: torch.device, shape: dict, batches: list[int], cell: int,
                            max_new_tokens: int, repeats: int = 2) -> dict:
    """Part 4 with the vLLM engine, or the one line saying why it cannot run here. The model of `shape` is saved
    (random weights, bfloat16) and loaded by vLLM, which takes `gpu_memory` of the GPU; a tiny LLaVA first, to
    count the greedy captions on which both engines agree."""
    from mamc.caption.vllm_engine import load_vllm_captioner, vllm_available

    ok, message = vllm_available()
    if not ok:
        return {"available": False, "reason": message}
    rng = np.random.default_rng(0)
    grids = [video_grid(rng.integers(0, 256, (12, cell, cell, 3), dtype=np.uint8), 3, 4) for _ in range(max(batches))]
    tiny = random_captioner(device, TINY_LLAVA)
    tiny_path = out / "models" / "llava_tiny"
    tiny.model.save_pretrained(tiny_path)
    tiny.processor.save_pretrained(tiny_path)
    small = [video_grid(rng.integers(0, 256, (12, 16, 16, 3), dtype=np.uint8), 3, 4) for _ in range(8)]
    seeds = list(range(len(small)))
    reference = generate_captions(tiny, small, PROMPT, 0.0, 8, seed=seeds)
    vllm_tiny = load_vllm_captioner(str(tiny_path), "bfloat16", gpu_memory=0.2)
    agree = sum(a == b for a, b in zip(reference, generate_captions(vllm_tiny, small, PROMPT, 0.0, 8, seed=seeds)))
    del tiny, vllm_tiny
    torch.cuda.empty_cache()
    model = random_captioner(device, shape)
    path = out / "models" / "llava_random"
    model.model.save_pretrained(path)
    model.processor.save_pretrained(path)
    del model
    torch.cuda.empty_cache()
    cap = load_vllm_captioner(str(path), "bfloat16", gpu_memory=0.6)
    rows = []
    for batch in batches:
        seconds = _timed(lambda images=grids[:batch], seeds=list(range(batch)): generate_captions(
            cap, images, PROMPT, 0.2, max_new_tokens, seed=seeds), device, repeats)
        rows.append({"batch": batch, "videos_per_s": batch / seconds, "seconds_per_batch": seconds})
    return {"available": True, "greedy_agreement": f"{agree} of {len(small)}", "rows": rows}


def _ranks(device: torch.device) -> int:
    """How many torchrun processes the documented lines get here: one per GPU (the tests' two on the CPU)."""
    return max(1, min(2, torch.cuda.device_count())) if device.type == "cuda" else 2


def dry_run_on(device: torch.device, timeout: int = 1800) -> dict:
    """Part 5: the paper path of the documentation (ingest, frames, caption shards, torchrun, all five notebooks)
    on this device, shrunk, as the test suite runs it on the CPU; torchrun starts one process per GPU (at most
    two), since a rank past the GPUs present would have no device."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                           "tests/test_documented_commands.py", "-k", "paper"], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "MAMC_TEST_DEVICE": str(device),
                                                           "MAMC_TEST_NPROC": str(_ranks(device))})
    return {"returncode": done.returncode, "seconds": time.perf_counter() - start,
            "output_tail": (done.stdout + done.stderr)[-3000:]}


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"


def report(results: dict) -> str:
    """The Markdown tables of `gpu_check.md`."""
    def num(x, fmt: str) -> str:
        return "—" if x is None else format(x, fmt)

    lines = [f"# GPU check on {results['device_name']}", "", f"torch {results['torch']}, {results['shapes']} shapes, "
             f"{results['wall_s']:.0f} s in all.", ""]
    if "step" in results:
        lines += ["## 1. Training step under bfloat16 autocast", "", "| step | batch | peak memory (GiB) | s/step |",
                  "|---|---|---|---|"]
        lines += [f"| {r['variant']} | {r['batch']} | "
                  + ("out of memory | — |" if r["out_of_memory"] else
                     f"{num(r['peak_gib'], '.1f')} | {r['seconds_per_step']:.3f} |") for r in results["step"]]
        lines.append("")
    if "loss" in results:
        lines += ["## 2. The loss under autocast against float32 (τ = 0.01)", "",
                  "| m | margin's effect on the loss | max abs. loss difference | max rel. gradient difference |",
                  "|---|---|---|---|"]
        lines += [f"| {r['margin']} | {r['margin_effect']:.4f} | {r['loss_max_abs_diff']:.2e} | {r['grad_max_rel_diff']:.2e} |"
                  for r in results["loss"]]
        lines.append("")
    if "torchrun" in results:
        r, s = results["torchrun"], results["torchrun"]["summary"] or {}
        lines += ["## 3. torchrun through the CLI, world size 1", "",
                  f"exit code {r['returncode']}, {r['seconds']:.0f} s; backend {s.get('backend')}, device "
                  f"{s.get('device')}, {s.get('last_step')} steps of `meta`.", ""]
    if "caption" in results:
        lines += ["## 4. Caption throughput (random weights, bfloat16)", "",
                  "| batch | videos/s | s/batch | peak memory (GiB) |", "|---|---|---|---|"]
        lines += [f"| {r['batch']} | " + ("out of memory | — | — |" if r["out_of_memory"] else
                  f"{r['videos_per_s']:.2f} | {r['seconds_per_batch']:.2f} | {num(r['peak_gib'], '.1f')} |")
                  for r in results["caption"]]
        lines.append("")
    if "caption_vllm" in results:
        r = results["caption_vllm"]
        lines += ["### The vLLM engine", ""]
        if not r["available"]:
            lines += [f"not measured: {r['reason']}", ""]
        else:
            lines += [f"greedy captions agreeing with transformers' on a tiny LLaVA: {r['greedy_agreement']}", "",
                      "| batch | videos/s | s/batch |", "|---|---|---|"]
            lines += [f"| {x['batch']} | {x['videos_per_s']:.2f} | {x['seconds_per_batch']:.2f} |" for x in r["rows"]]
            lines.append("")
    if "dry_run" in results:
        r = results["dry_run"]
        lines += ["## 5. The paper dry run on the device", "", f"exit code {r['returncode']}, {r['seconds']:.0f} s.", ""]
    return "\n".join(lines)


def gpu_check(out: str | Path, tiny: bool = False, batches: list[int] | None = None,
              caption_batches: list[int] | None = None, parts: tuple[int, ...] = (1, 2, 3, 4, 5),
              device: str = "auto") -> dict:
    """Run the parts asked for, write `gpu_check.json` and `gpu_check.md` into `out`, and return the results."""
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    target = dist.init_from_env(resolve_device(device))
    deterministic(target)
    start = time.perf_counter()
    results: dict = {"device_name": _device_name(target), "device": str(target), "torch": torch.__version__,
                     "shapes": "tiny" if tiny else "published", "parts": list(parts)}
    if 1 in parts:
        clip = random_clip(out / "models" / ("clip_tiny" if tiny else "clip_vit_b32"), vit_b32_shape=not tiny)
        sizes = dict(frames=2, frame_size=32, embed_dim=32, meta_batch_size=4) if tiny else {}
        cfg = load_config("paper", video_backbone=clip, text_model=clip, autocast="bfloat16", **sizes)
        results["step"] = step_memory(cfg, target, batches or ([2, 4] if tiny else [16, 32, 64, 128]))
    if 2 in parts:
        results["loss"] = loss_precision(target, batch=16 if tiny else 128, dim=64 if tiny else 512)
    if 3 in parts:
        results["torchrun"] = nccl_through_cli(out, target)
    if 4 in parts:
        shape, sizes = TINY_LLAVA if tiny else LLAVA_15_7B, caption_batches or ([1, 2] if tiny else [1, 4, 16])
        results["caption"] = caption_throughput(target, shape, sizes, 16 if tiny else 336, 4 if tiny else 64)
        results["caption_vllm"] = vllm_caption_throughput(out, target, shape, sizes, 16 if tiny else 336,
                                                          4 if tiny else 64)
    if 5 in parts:
        results["dry_run"] = dry_run_on(target)
    results["wall_s"] = time.perf_counter() - start
    write_json(out / "gpu_check.json", results)
    write_text(out / "gpu_check.md", report(results))
    return results

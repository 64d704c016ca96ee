"""The embedded captioner: a small LLaVA-architecture model (CLIP vision tower + Llama language model) built
locally, trained on the clean meta split (grid → caption), and saved with `save_pretrained`, so that the
captioning job loads it through the same Auto classes as a real checkpoint, with no hub."""
from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}USER: "
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<image>\n{% else %}{{ c['text'] }}{% endif %}{% endfor %}"
    " {% else %}ASSISTANT: {% for c in message['content'] %}{{ c['text'] }}{% endfor %} </s>{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
SPECIAL = ["<pad>", "<unk>", "<s>", "</s>", "<image>"]


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+|[^\sa-z]", text.lower())


def build_tokenizer(texts: list[str]):
    """A word-level tokenizer over the given texts (captions, prompt, chat markers): tiny vocabulary, fast."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIAL)}
    for text in texts + ["USER: ASSISTANT:", "video image"]:
        for w in words(text):
            vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split("<image>", "isolated"), pre_tokenizers.Whitespace()])
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", extra_special_tokens={"image_token": "<image>"})
    fast.add_special_tokens({"additional_special_tokens": ["<image>"]})
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_captioner(texts: list[str], image_size: int, patch: int = 16, width: int = 128, seed: int = 0):
    """An untrained tiny LLaVA (processor, model) whose tokenizer covers `texts`."""
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    torch.manual_seed(seed)
    tok = build_tokenizer(texts)
    image_processor = CLIPImageProcessor(size={"shortest_edge": image_size},
                                         crop_size={"height": image_size, "width": image_size})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tok, patch_size=patch,
                               vision_feature_select_strategy="default", chat_template=CHAT_TEMPLATE,
                               num_additional_image_tokens=1)
    vision = CLIPVisionConfig(image_size=image_size, patch_size=patch, hidden_size=width, intermediate_size=2 * width,
                              num_hidden_layers=2, num_attention_heads=4, projection_dim=width)
    text = LlamaConfig(vocab_size=len(tok), hidden_size=width, intermediate_size=2 * width, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
                       bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_id=tok.convert_tokens_to_ids("<image>"),
                         vision_feature_select_strategy="default", vision_feature_layer=-1,
                         projector_hidden_act="gelu")
    model = LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    return processor, model


def training_batch(processor, images, captions: list[str], prompt: str) -> dict[str, torch.Tensor]:
    """Prompt + caption + </s> with the loss on the caption tokens only (prompt and padding masked with -100)."""
    tok = processor.tokenizer
    tok.padding_side = "right"
    prompt_text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}], add_generation_prompt=True)
    full = [f"{prompt_text} {c} </s>" for c in captions]
    enc = processor(images=images, text=full, return_tensors="pt", padding=True)
    prompt_len = processor(images=images[:1], text=[prompt_text], return_tensors="pt")["input_ids"].shape[1]
    labels = enc["input_ids"].clone()
    labels[:, :prompt_len] = -100
    labels[enc["attention_mask"] == 0] = -100
    enc["labels"] = labels
    tok.padding_side = "left"
    return enc


def train_captioner(processor, model, images: list | Callable[[int, np.random.Generator], Image.Image],
                    captions: list[str], prompt: str, steps: int, out_dir: str | Path, batch_size: int = 16,
                    lr: float = 5e-4, seed: int = 0, progress: bool = True) -> list[float]:
    """Teacher-forced training on (grid, caption) pairs; saves model and processor with `save_pretrained`.

    `images` is a list of grids, or a function (index, rng) → grid that draws a new grid each time (data
    augmentation). Returns the loss curve."""
    image = images if callable(images) else (lambda i, _rng: images[i])
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1), pct_start=0.1)
    model.train()
    losses = []
    for _ in tqdm(range(steps), desc="captioner", disable=not progress):
        idx = rng.choice(len(captions), size=min(batch_size, len(captions)), replace=False)
        batch = training_batch(processor, [image(i, rng) for i in idx], [captions[i] for i in idx], prompt)
        loss = model(**batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    model.eval()
    save_atomically(Path(out_dir), lambda tmp: (model.save_pretrained(tmp), processor.save_pretrained(tmp)))
    return losses


def save_atomically(out_dir: Path, save: Callable[[Path], object]) -> None:
    """`save` into a temporary folder beside `out_dir`, then rename it into place: a kill leaves the old
    checkpoint folder or the new one, never a half-written folder that later runs would try to load."""
    tmp, old = out_dir.with_name(f".{out_dir.name}.tmp"), out_dir.with_name(f".{out_dir.name}.old")
    for leftover in (tmp, old):
        shutil.rmtree(leftover, ignore_errors=True)
    save(tmp)
    if out_dir.exists():
        out_dir.rename(old)
    tmp.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)


def train_embedded_captioner(cfg, progress: bool = True) -> dict:
    """Train the embedded captioner on the clean meta split's keyframe grids and save it in the run folder
    (`captioner/`, with its loss curve in `training.json`), where `cfg.captioner == "embedded"` finds it.
    Returns the loss curve and sizes."""
    from mamc.caption.grid import video_grid
    from mamc.caption.jobs import candidate_frames, captioner_name
    from mamc.data.prepare import load_rows
    from mamc.data.video import sample_indices
    from mamc.manifest import write_json

    rows = load_rows(cfg, "meta")
    frames = [candidate_frames(cfg.data_dir / r["video"], cfg) for r in rows]
    n_cells = cfg.grid_rows * cfg.grid_cols

    def jittered_grid(i: int, rng: np.random.Generator) -> Image.Image:
        """A grid of frames drawn one per temporal segment, in order: the same events, new pixels."""
        return video_grid(frames[i][sample_indices(len(frames[i]), n_cells, "random", rng)], cfg.grid_rows, cfg.grid_cols)

    captions = [r["caption"] for r in rows]
    size = jittered_grid(0, np.random.default_rng(0)).size[0]
    processor, model = build_captioner(captions + [cfg.prompt], image_size=size, seed=cfg.seed)
    losses = train_captioner(processor, model, jittered_grid, captions, cfg.prompt, cfg.captioner_steps,
                             captioner_name(cfg, "embedded"), seed=cfg.seed, progress=progress)
    info = {"losses": losses, "n_pairs": len(rows), "image_size": size,
            "parameters": sum(p.numel() for p in model.parameters())}
    write_json(Path(captioner_name(cfg, "embedded")) / "training.json", info)
    return info

"""The embedded benchmark corpus: procedurally generated clips with known topics, attributes and alignment noise.

Each clip shows one shape of one colour moving in one direction; some clips change colour half-way. A topic is
a (shape, colour) pair and topics follow a Zipf law in the training split, which makes the paper's "uneven
distribution of concepts" measurable. Direction of motion and the order of a colour change can only be read
from the temporal dimension. A configurable fraction of training captions is misaligned (an attribute wrong,
only the later moment of a colour-changing clip described, or the caption of another clip) and the truth is
kept per pair, so alignment noise is known exactly.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import av
import numpy as np

from mamc.config import Config
from mamc.data.attributes import COLORS, DIRECTIONS, SHAPES, SIZES
from mamc.data.card import by_frequency, corpus_stats
from mamc.lock import locked
from mamc.manifest import write_json, write_jsonl, write_text
from mamc.progress import tqdm

TEMPLATES = [
    "a {size} {color} {shape} {motion}{event}.",
    "{Size} {color} {shape} {motion} across the screen{event}.",
    "we see a {color} {shape} that {motion}{event}.",
    "the video shows a {size} {color} {shape} which {motion}{event}.",
    "in this clip a {color} {shape} {motion}{event}.",
]
COMPLETE_TEMPLATES = [t for t in TEMPLATES if "ize}" in t]
# Settings recorded in corpus.json beside the statistics.
CORPUS_SETTINGS = ("seed", "zipf_exponent", "noise_rate", "n_topics", "clip_frames", "clip_size")


def topic_names() -> list[str]:
    """All (colour, shape) topics in a fixed shuffled order (so head and tail mix shapes and colours); a
    profile uses the first `n_topics`, and the Zipf rank of a topic is its position here."""
    names = [f"{c} {s}" for s, c in itertools.product(SHAPES, COLORS)]
    return [names[i] for i in np.random.default_rng(2407).permutation(len(names))]


def zipf_probs(n: int, exponent: float) -> np.ndarray:
    p = 1.0 / np.arange(1, n + 1) ** exponent
    return p / p.sum()


def describe(attrs: dict, rng: np.random.Generator, complete: bool = False) -> str:
    """A natural-language caption of the attributes, with randomly chosen synonyms and template; `complete`
    keeps to the templates that state every attribute (the size included)."""
    size = str(rng.choice(SIZES[attrs["size"]]))
    event = ""
    if attrs.get("change_to"):
        event = str(rng.choice([f" and then turns {attrs['change_to']}",
                                f", changing from {attrs['color']} to {attrs['change_to']}"]))
    text = str(rng.choice(COMPLETE_TEMPLATES if complete else TEMPLATES)).format(
        size=size, Size=size.capitalize(), color=attrs["color"], shape=rng.choice(SHAPES[attrs["shape"]]),
        motion=rng.choice(DIRECTIONS[attrs["direction"]]), event=event,
    )
    return text[0].upper() + text[1:]


def sample_attributes(topic: str, rng: np.random.Generator, change_rate: float = 0.25) -> dict:
    color, shape = topic.split(" ")
    attrs = {"topic": topic, "shape": shape, "color": color, "direction": str(rng.choice(list(DIRECTIONS))),
             "size": str(rng.choice(list(SIZES))), "change_to": None}
    if rng.random() < change_rate:
        attrs["change_to"] = str(rng.choice([c for c in COLORS if c != color]))
    return attrs


def corrupt(attrs: dict, rng: np.random.Generator) -> tuple[dict, str]:
    """Wrong attributes for a misaligned caption: one attribute replaced, recorded as the noise kind."""
    key = str(rng.choice(["color", "direction", "shape", "size"]))
    pool = {"color": COLORS, "direction": DIRECTIONS, "shape": SHAPES, "size": SIZES}[key]
    wrong = dict(attrs, **{key: str(rng.choice([v for v in pool if v != attrs[key]]))})
    if wrong.get("change_to") == wrong["color"]:
        wrong["change_to"] = None
    return wrong, f"attribute:{key}"


def _mask(shape: str, size: int, cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    dx, dy = xx - cx, yy - cy
    if shape == "circle":
        return dx**2 + dy**2 <= r**2
    if shape == "square":
        return (np.abs(dx) <= r * 0.85) & (np.abs(dy) <= r * 0.85)
    if shape == "diamond":
        return np.abs(dx) + np.abs(dy) <= r
    if shape == "triangle":
        return (dy <= r * 0.8) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6)
    if shape == "cross":
        return ((np.abs(dx) <= r * 0.3) & (np.abs(dy) <= r)) | ((np.abs(dy) <= r * 0.3) & (np.abs(dx) <= r))
    raise ValueError(f"unknown shape {shape!r}")


def render(attrs: dict, n_frames: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 frames [T, H, W, 3]: the shape crosses the frame in its direction over a noisy background."""
    r = size * (0.12 if attrs["size"] == "small" else 0.2)
    lo, hi = r + 1, size - r - 1
    across = float(rng.uniform(lo, hi))
    start, end = {"left": (hi, lo), "right": (lo, hi), "up": (hi, lo), "down": (lo, hi)}[attrs["direction"]]
    bg = rng.integers(10, 60, size=3)
    frames = np.empty((n_frames, size, size, 3), dtype=np.uint8)
    for t in range(n_frames):
        pos = start + (end - start) * t / max(n_frames - 1, 1)
        cx, cy = (pos, across) if attrs["direction"] in ("left", "right") else (across, pos)
        color = attrs["color"] if not attrs.get("change_to") or t < n_frames // 2 else attrs["change_to"]
        img = np.clip(bg + rng.normal(0, 6, size=(size, size, 3)), 0, 255)
        img[_mask(attrs["shape"], size, cx, cy, r)] = COLORS[color]
        frames[t] = img.astype(np.uint8)
    return frames


def write_video(path: Path, frames: np.ndarray, fps: int, codec: str = "libx264") -> None:
    """Encode frames as H.264 MP4 (yuv420p, so any player reads it); written to a temp name, then renamed.

    The bytes are a function of the frames alone: one encoder thread, bit-exact flags, and no macroblock-tree
    rate control — on frames this small x264's mbtree lookahead reads uninitialised memory, so the same frames
    encoded twice differed (in 1 of 10 encodings, up to 16 levels after decoding) with the heap's layout."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    with av.open(str(tmp), mode="w", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.thread_count = 1
        stream.codec_context.flags |= av.codec.context.Flags.bitexact
        if codec == "libx264":
            stream.options = {"crf": "12", "preset": "veryfast", "threads": "1", "x264-params": "mbtree=0"}
        for t, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts = t
            for packet in stream.encode(picture):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(path)


def _split_topics(cfg: Config, rng: np.random.Generator) -> dict[str, list[str]]:
    topics = topic_names()[: cfg.n_topics]
    train = list(rng.choice(topics, size=cfg.n_train, p=zipf_probs(len(topics), cfg.zipf_exponent)))
    balanced = lambda n: [topics[i % len(topics)] for i in range(n)]  # noqa: E731
    return {"train": train, "meta": balanced(cfg.n_meta_per_topic * len(topics)), "val": balanced(cfg.n_val),
            "test": balanced(cfg.n_test)}


def qa_rows(clips: list[dict], n: int, rng: np.random.Generator, split: str) -> list[dict]:
    """Open-ended and multiple-choice questions derived from the ground truth of clips (train clips for
    `qa_train`, test clips for `qa`); answers come from the true attributes, never from a noisy caption."""
    questions = {
        "color": ("What color is the {shape} at the start?", list(COLORS)),
        "shape": ("What shape moves in the video?", list(SHAPES)),
        "direction": ("In which direction does the {color} object move?", list(DIRECTIONS)),
        "size": ("Is the {color} {shape} small or large?", list(SIZES)),
    }
    rows = []
    for i in range(min(n, len(clips))):
        src = clips[i]
        attrs = src["attributes"]
        qtype = list(questions)[i % len(questions)]
        template, vocab = questions[qtype]
        answer = attrs[qtype]
        others = [v for v in vocab if v != answer]
        cands = sorted([answer, *rng.choice(others, size=min(3, len(others)), replace=False).tolist()])
        rows.append({
            "video_id": src["video_id"], "video": src["video"], "caption": src["caption"], "split": split,
            "source": "generated", "topic": src["topic"], "question": template.format(**attrs), "answer": answer,
            "candidates": cands, "qtype": qtype,
        })
    return rows


@locked("mamc synth")
def generate_corpus(cfg: Config, out_dir: str | Path | None = None, progress: bool = True) -> Path:
    """Write videos, `manifest.jsonl` and `DATA_CARD.md` under `out_dir` (default: the run's data folder).

    Deterministic from `cfg.seed`. Returns the manifest path. Refuses to write over an ingested dataset.
    """
    out = Path(out_dir) if out_dir is not None else cfg.data_dir
    existing = out / "manifest.jsonl"
    if cfg.dataset != "embedded" or (existing.exists() and not _is_embedded(existing)):
        raise ValueError(f"{existing} is (or is to be) the ingested dataset {cfg.dataset!r}: the embedded corpus would "
                         "overwrite it and write clips among its videos; generate it in another run folder")
    rng = np.random.default_rng(cfg.seed)
    plan = _split_topics(cfg, rng)
    rows: list[dict] = []
    jobs = [(split, topic) for split in ("train", "meta", "val", "test") for topic in plan[split]]
    for k, (split, topic) in enumerate(tqdm(jobs, desc="synth", disable=not progress)):
        attrs = sample_attributes(topic, rng)
        vid = f"{split}{k:06d}"
        rel = f"videos/{vid}.mp4"
        write_video(out / rel, render(attrs, cfg.clip_frames, cfg.clip_size, rng), cfg.fps)
        true_caption = describe(attrs, rng)
        row = {"video_id": vid, "video": rel, "caption": true_caption, "split": split, "source": "original",
               "topic": topic, "attributes": attrs, "aligned": True, "noise": None, "true_caption": true_caption}
        if split == "train" and rng.random() < cfg.noise_rate:
            row["aligned"] = False
            kind = rng.random()
            if kind < 0.2 and attrs["change_to"]:
                row["noise"] = "other_moment"
                row["caption"] = describe(dict(attrs, color=attrs["change_to"], change_to=None), rng)
            elif kind < 0.6:
                wrong, row["noise"] = corrupt(attrs, rng)
                row["caption"] = describe(wrong, rng)
            else:
                row["noise"] = "other_clip"
                row["caption"] = describe(sample_attributes(str(rng.choice(topic_names()[: cfg.n_topics])), rng), rng)
        rows.append(row)
    rows += qa_rows([r for r in rows if r["split"] == "train"], cfg.n_qa, rng, "qa_train")
    rows += qa_rows([r for r in rows if r["split"] == "test"], cfg.n_qa, rng, "qa")
    manifest = write_jsonl(out / "manifest.jsonl", rows)
    write_json(out / "corpus.json", corpus_stats(rows, {k: getattr(cfg, k) for k in CORPUS_SETTINGS}))
    write_text(out / "DATA_CARD.md", data_card(rows, cfg))
    return manifest


def _is_embedded(manifest: Path) -> bool:
    """Whether a manifest was written by this generator (its rows carry the true attributes)."""
    with open(manifest, encoding="utf-8") as fh:
        first = fh.readline()
    return not first.strip() or "attributes" in json.loads(first)


def data_card(rows: list[dict], cfg: Config) -> str:
    s = corpus_stats(rows)
    lines = [
        "# mamc embedded corpus — data card", "",
        f"Generated by `mamc synth` (profile `{cfg.profile}`, seed {cfg.seed}). Procedural clips: one shape of one",
        "colour moving left/right/up/down, sometimes changing colour half-way; H.264 MP4,",
        f"{cfg.clip_frames} frames of {cfg.clip_size}×{cfg.clip_size} at {cfg.fps} fps.", "",
        "| split | clips | misaligned | topics |", "|---|---|---|---|",
    ]
    lines += [f"| {split} | {v['n']} | {v['misaligned']} ({v['misaligned'] / v['n']:.1%}) | {len(v['topics'])} |"
              for split, v in s["splits"].items() if v["n"]]
    lines += ["", f"Train topics follow a Zipf law with exponent {cfg.zipf_exponent}; meta, val and test are",
              "topic-balanced and clean; QA questions are derived from the ground truth of train clips (qa_train)",
              "and of test clips (qa).", "",
              "## Train topic frequencies", "", "| topic | clips |", "|---|---|"]
    train = s["splits"]["train"]["topics"]
    lines += [f"| {t} | {train[t]} |" for t in by_frequency(train)]
    lines += ["", "## Noise kinds (train)", "", json.dumps(s["splits"]["train"]["noise_kinds"]), "",
              "## How to cite", "",
              "Cite the mamc kit and the paper it reproduces: Nguyen et al., *Meta-optimized Angular Margin",
              "Contrastive Framework for Video-Language Representation Learning*, ECCV 2024 (arXiv:2407.03788).", ""]
    return "\n".join(lines)

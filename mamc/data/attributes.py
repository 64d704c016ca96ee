"""The embedded corpus's attribute vocabulary (shape, colour, direction, size), and captions scored against the
attributes a clip truly has: what captioning and reporting need of the corpus's truth, apart from the generator
that makes clips from it (`mamc.data.synthetic`)."""
from __future__ import annotations

import json
import re

import numpy as np

SHAPES = {
    "circle": ["circle", "ball", "round disc", "dot"],
    "square": ["square", "box", "block"],
    "triangle": ["triangle", "wedge"],
    "diamond": ["diamond", "rhombus"],
    "cross": ["cross", "plus sign"],
}
COLORS = {
    "red": (230, 40, 40), "green": (40, 200, 60), "blue": (50, 90, 240),
    "yellow": (240, 220, 40), "purple": (170, 60, 210), "white": (240, 240, 240),
}
DIRECTIONS = {
    "left": ["moves to the left", "slides leftward", "drifts left", "travels from right to left"],
    "right": ["moves to the right", "slides rightward", "drifts right", "travels from left to right"],
    "up": ["moves up", "rises", "floats upward", "travels from bottom to top"],
    "down": ["moves down", "falls", "sinks downward", "travels from top to bottom"],
}
SIZES = {"small": ["small", "tiny", "little"], "large": ["large", "big", "huge"]}
ATTRIBUTES = ("shape", "color", "direction", "size")


def parse_attributes(caption: str) -> dict[str, str | None]:
    """Read the attributes back from a caption in the corpus's language (for scoring generated captions):
    the first colour named, and the shape, direction and size whose phrases appear (None when absent or
    ambiguous). Punctuation is ignored, so "rises, changing" still reads as "up"."""
    text = " " + " ".join(re.findall(r"[a-z]+", caption.lower())) + " "
    found: dict[str, str | None] = {}
    colors = sorted((text.find(f" {c} "), c) for c in COLORS if f" {c} " in text)
    found["color"] = colors[0][1] if colors else None
    for key, vocab in (("shape", SHAPES), ("direction", DIRECTIONS), ("size", SIZES)):
        hits = [name for name, phrases in vocab.items() if any(f" {p} " in text for p in phrases)]
        found[key] = hits[0] if len(hits) == 1 else None
    return found


def retrieval_ceiling(rows: list[dict], ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float] | None:
    """The attainable text→video R@k of a test split of this corpus. A caption does not single out its clip: it
    may omit the size, and several clips share all it states. An oracle that knows every clip's true attributes
    and reads what the caption says (`parse_attributes`, plus the colour change, which captions always tell)
    finds n clips consistent with it and, breaking that tie at random, expects R@k = min(1, k/n). None for
    rows without ground truth (every public dataset)."""
    truth = [r for r in rows if "attributes" in r]
    if not truth:
        return None
    clips = list({r["video_id"]: r["attributes"] for r in truth}.values())
    consistent = []
    for r in truth:
        said = parse_attributes(r["caption"])
        change = r["attributes"].get("change_to")
        consistent.append(sum(all(said[a] in (None, c[a]) for a in ATTRIBUTES) and c.get("change_to") == change
                              for c in clips))
    n = np.asarray(consistent, dtype=float)
    return {f"R@{k}": float(100 * np.minimum(1.0, k / n).mean()) for k in ks} | {
        "distinct attribute sets": len({json.dumps(c, sort_keys=True) for c in clips}), "clips": len(clips)}


def caption_accuracy(truth: list[dict], captions: list[str]) -> dict[str, float]:
    """Percent of captions that state each attribute correctly (a missing or ambiguous attribute is wrong),
    and of captions that get all four right."""
    parsed = [parse_attributes(c) for c in captions]
    out = {a: 100.0 * float(np.mean([p[a] == t[a] for p, t in zip(parsed, truth)])) for a in ATTRIBUTES}
    out["all"] = 100.0 * float(np.mean([all(p[a] == t[a] for a in ATTRIBUTES) for p, t in zip(parsed, truth)]))
    return out

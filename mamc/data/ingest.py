"""Public dataset annotations → manifest rows, in each dataset's published format.

Retrieval sets become one row per caption (MSR-VTT, WebVid, HowTo100M clips) or per paragraph (DiDeMo and
ActivityNet Captions, evaluated paragraph-to-video); QA sets one row per question. Video paths are written
relative to the data root as `<videos>/<file>`.
"""
from __future__ import annotations

import csv
import json
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from mamc.manifest import QA_SPLITS, RETRIEVAL_SPLITS, ManifestError, read_manifest, write_jsonl


def _load_json(path: str | Path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such annotation file") from None
    except json.JSONDecodeError as err:
        raise ManifestError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None


def _load_csv(path: str | Path, required: tuple[str, ...]) -> list[dict]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
            fields = rows[0].keys() if rows else []
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such annotation file") from None
    missing = [c for c in required if c not in fields]
    if missing:
        raise ManifestError(f"{path}:1: missing column(s) {', '.join(missing)}")
    return rows


def _need(obj: dict, keys: tuple[str, ...], where: str) -> None:
    missing = [k for k in keys if k not in obj]
    if missing:
        raise ManifestError(f"{where}: missing field(s) {', '.join(missing)}")


def _msrvtt_files(files: list[str]) -> tuple[str, set[str] | None, list[dict]]:
    """MSR-VTT's files told apart by what they hold, not by name or order: the annotation json (videos and
    sentences), a train list (a .txt of ids, or a csv whose only column is video_id, as CLIP4Clip's
    MSRVTT_train.9k.csv) and the 1k-A test csv (columns video_id and sentence)."""
    data, train_ids, test_rows = None, None, []
    for f in files:
        if f.endswith(".json"):
            data = f
        elif f.endswith(".txt"):
            train_ids = set(Path(f).read_text().split())
        elif f.endswith(".csv"):
            with open(f, newline="", encoding="utf-8") as fh:
                columns = next(csv.reader(fh), [])
            if "sentence" in columns:
                test_rows = _load_csv(f, ("video_id", "sentence"))
            elif columns == ["video_id"]:
                train_ids = {r["video_id"] for r in _load_csv(f, ("video_id",))}
            else:
                raise ManifestError(f"{f}:1: columns {columns} are neither a train list (video_id) nor the 1k-A test csv "
                                    "(key, vid_key, video_id, sentence)")
        else:
            raise ManifestError(f"{f}: not an MSR-VTT annotation file (expected .json, .csv or .txt)")
    if data is None:
        raise ManifestError(f"no MSRVTT_data.json among {', '.join(files)}")
    return data, train_ids, test_rows


def msrvtt(files: list[str], videos: str, split: str | None, extra: list[str]) -> list[dict]:
    """MSRVTT_data.json (videos + 20 sentences each, integer categories), optionally with the 9k train list and
    the 1k-A test csv, in any order (see `_msrvtt_files`). With a test csv, its 1,000 pairs are the test split
    and no other sentence of those videos is used."""
    path, train_ids, test_rows = _msrvtt_files(files + extra)
    data = _load_json(path)
    _need(data, ("videos", "sentences"), path)
    test_ids = {r["video_id"] for r in test_rows}
    rows = []
    split_of = {v["video_id"]: v.get("split", "train") for v in data["videos"]}
    category = {v["video_id"]: f"category {v['category']}" for v in data["videos"] if "category" in v}
    for i, s in enumerate(data["sentences"]):
        _need(s, ("video_id", "caption"), f"{path}: sentences[{i}]")
        vid = s["video_id"]
        if (train_ids is not None and vid not in train_ids) or vid in test_ids:
            continue
        rows.append({"video_id": vid, "video": f"{videos}/{vid}.mp4", "caption": s["caption"].strip(),
                     "split": split or ("train" if train_ids is not None else split_of.get(vid, "train")),
                     "source": "original", "topic": category.get(vid)})
    for r in test_rows:
        rows.append({"video_id": r["video_id"], "video": f"{videos}/{r['video_id']}.mp4", "caption": r["sentence"].strip(),
                     "split": "test", "source": "original", "topic": category.get(r["video_id"])})
    return rows


def didemo(files: list[str], videos: str, split: str | None, extra: list[str]) -> list[dict]:
    """DiDeMo json (list of {video, description, times}); descriptions of one video joined into a paragraph."""
    rows = []
    for f in files:
        paragraphs: OrderedDict[str, list[str]] = OrderedDict()
        for i, a in enumerate(_load_json(f)):
            _need(a, ("video", "description"), f"{f}: item {i}")
            paragraphs.setdefault(a["video"], []).append(a["description"].strip())
        name = Path(f).stem.split("_")[0]
        for video, descs in paragraphs.items():
            rows.append({"video_id": Path(video).stem, "video": f"{videos}/{video}", "caption": " ".join(descs),
                         "split": split or name, "source": "original"})
    return rows


def activitynet(files: list[str], videos: str, split: str | None, extra: list[str]) -> list[dict]:
    """ActivityNet Captions (train.json / val_1.json: id → duration, timestamps, sentences); paragraph per video."""
    rows = []
    for f in files:
        default = "train" if "train" in Path(f).stem else "val"
        for vid, a in _load_json(f).items():
            _need(a, ("sentences", "timestamps"), f"{f}: {vid}")
            rows.append({"video_id": vid, "video": f"{videos}/{vid}.mp4", "caption": " ".join(s.strip() for s in a["sentences"]),
                         "split": split or default, "source": "original", "segments": a["timestamps"],
                         "duration": a.get("duration")})
    return rows


def webvid(files: list[str], videos: str, split: str | None, extra: list[str]) -> list[dict]:
    """WebVid csv (videoid, name, page_dir, …); videos at <page_dir>/<videoid>.mp4."""
    rows = []
    for f in files:
        for r in _load_csv(f, ("videoid", "name")):
            sub = f"{r['page_dir']}/" if r.get("page_dir") else ""
            rows.append({"video_id": r["videoid"], "video": f"{videos}/{sub}{r['videoid']}.mp4", "caption": r["name"].strip(),
                         "split": split or "train", "source": "original"})
    return rows


def howto100m(files: list[str], videos: str, split: str | None, extra: list[str]) -> list[dict]:
    """HowTo100M caption json (video → start[], end[], text[]); one row per timed clip."""
    rows = []
    for f in files:
        for vid, a in _load_json(f).items():
            _need(a, ("start", "end", "text"), f"{f}: {vid}")
            if not len(a["start"]) == len(a["end"]) == len(a["text"]):
                raise ManifestError(f"{f}: {vid}: start, end and text differ in length")
            for i, (s, e, t) in enumerate(zip(a["start"], a["end"], a["text"])):
                if e > s and t.strip():
                    rows.append({"video_id": f"{vid}_{i}", "video": f"{videos}/{vid}.mp4", "caption": t.strip(),
                                 "split": split or "train", "source": "original", "start": float(s), "end": float(e)})
    return rows


def _qa_split(path: str) -> str:
    """The kit's QA split for a file named after its dataset split (train/val/test → qa_train/qa_val/qa)."""
    stem = Path(path).stem
    return next((qa for s, qa in (("train", "qa_train"), ("val", "qa_val"), ("test", "qa")) if s in stem), "qa")


def _qa_json(files: list[str], videos: str, split: str | None, name_of: Callable[[object], str]) -> list[dict]:
    rows = []
    for f in files:
        default = _qa_split(f)
        for i, q in enumerate(_load_json(f)):
            _need(q, ("question", "answer", "video_id"), f"{f}: item {i}")
            name = name_of(q["video_id"])
            rows.append({"video_id": Path(name).stem, "video": f"{videos}/{name}", "caption": "", "split": split or default,
                         "question": q["question"], "answer": str(q["answer"]), "qtype": q["question"].split()[0].lower(),
                         "qid": q.get("id", i)})
    return rows


def msrvtt_qa(files: list[str], videos: str, split: str | None, extra: list[str]) -> list[dict]:
    """MSRVTT-QA json (question, answer, video_id as an integer)."""
    return _qa_json(files, videos, split, lambda v: f"video{v}.mp4" if isinstance(v, int) or str(v).isdigit() else f"{v}.mp4")


def msvd_qa(files: list[str], videos: str, split: str | None, extra: list[str]) -> list[dict]:
    """MSVD-QA json (question, answer, video_id); extra: youtube_mapping.txt ("<youtube name> vid<N>") to reach
    the original .avi names, else videos are taken as vid<N>.avi."""
    mapping = {}
    for f in extra:
        for line in Path(f).read_text().splitlines():
            if line.strip():
                name, vid = line.rsplit(" ", 1)
                mapping[vid] = name
    return _qa_json(files, videos, split, lambda v: f"{mapping.get(f'vid{v}', f'vid{v}')}.avi")


def nextqa(files: list[str], videos: str, split: str | None, extra: list[str]) -> list[dict]:
    """NExT-QA csv (video, question, answer index, qid, type, a0…a4)."""
    rows = []
    for f in files:
        default = _qa_split(f)
        for n, r in enumerate(_load_csv(f, ("video", "question", "answer", "a0", "a1", "a2", "a3", "a4")), 2):
            cands = [r[f"a{i}"].strip() for i in range(5)]
            try:
                answer = cands[int(r["answer"])]
            except (ValueError, IndexError):
                raise ManifestError(f"{f}:{n}: answer {r['answer']!r} is not an index 0-4") from None
            rows.append({"video_id": r["video"], "video": f"{videos}/{r['video']}.mp4", "caption": "", "split": split or default,
                         "question": r["question"].strip(), "answer": answer, "candidates": cands,
                         "qtype": r.get("type", ""), "qid": r.get("qid", "")})
    return rows


def generic(files: list[str], videos: str, split: str | None, extra: list[str]) -> list[dict]:
    """CSV or JSONL with the manifest's own fields (video_id, video, caption, split, …)."""
    rows = []
    for f in files:
        if f.endswith((".jsonl", ".json")):
            part = read_manifest(f)
        else:
            part = _load_csv(f, ("video_id", "video", "caption"))
            for r in part:
                r.setdefault("split", split or "train")
                for k in ("start", "end"):
                    if r.get(k) in ("", None):
                        r.pop(k, None)
                    elif k in r:
                        r[k] = float(r[k])
        rows += [dict(r, split=split or r.get("split") or "train") for r in part]
    return rows


FORMATS: dict[str, Callable[[list[str], str, str | None, list[str]], list[dict]]] = {
    "msrvtt": msrvtt, "didemo": didemo, "activitynet": activitynet, "webvid": webvid, "howto100m": howto100m,
    "msrvtt-qa": msrvtt_qa, "msvd-qa": msvd_qa, "nextqa": nextqa, "generic": generic,
}


def merge_into(out: Path, rows: list[dict]) -> list[dict]:
    """`rows` plus the rows of an existing manifest at `out` that belong to the other task: a QA dataset is
    ingested into the same manifest as its retrieval dataset (and the other way round), each replacing only its
    own splits."""
    if not out.exists():
        return rows
    groups = [g for g in (RETRIEVAL_SPLITS, QA_SPLITS) if any(r["split"] in g for r in rows)]
    return [r for r in read_manifest(out) if not any(r["split"] in g for g in groups)] + rows


def ingest(dataset: str, files: list[str], out: str | Path | None = None, split: str | None = None,
           videos: str = "videos", extra: list[str] | None = None, val: int = 0, meta_per_concept: int = 0,
           seed: int = 0) -> list[dict]:
    """Parse annotation files of `dataset` into validated manifest rows, written atomically to `out` if given
    (merged with the other task's rows already there, see `merge_into`). With `val` or `meta_per_concept`, those
    splits are carved out of the training rows (`mamc.data.splits`)."""
    if dataset not in FORMATS:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(sorted(FORMATS))}")
    rows = FORMATS[dataset]([str(f) for f in files], videos.rstrip("/"), split, [str(f) for f in extra or []])
    if val or meta_per_concept:
        from mamc.data.splits import carve_splits

        rows, _ = carve_splits(rows, val, meta_per_concept, seed)
    if out is not None:
        rows = merge_into(Path(out), rows)
        write_jsonl(out, rows)
    return rows

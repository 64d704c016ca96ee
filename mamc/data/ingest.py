"""Public dataset annotations → manifest rows, in each dataset's published format.

Retrieval sets become one row per caption (MSR-VTT, WebVid, HowTo100M clips) or per paragraph (DiDeMo and
ActivityNet Captions, evaluated paragraph-to-video); QA sets one row per question. Video paths are written
relative to the data root as `<videos>/<file>`.

Every format is read as a stream of rows and the manifest is written as one, so memory does not grow with the
number of rows (WebVid's csv, HowTo100M's caption json of 136M clips): csv row by row, the large json formats
(HowTo100M, ActivityNet) object by object with ijson, the consistency rule checked on hashes
(`mamc.manifest.ClipIndex`) and val/meta carved in a fixed number of passes (`mamc.data.splits`).
"""
from __future__ import annotations

import csv
import json
import tempfile
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import ijson

from mamc.manifest import QA_SPLITS, RETRIEVAL_SPLITS, ManifestError, encode_row, iter_jsonl, validate_row, write_jsonl

Rows = Iterator[dict]


def _load_json(path: str | Path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such annotation file") from None
    except json.JSONDecodeError as err:
        raise ManifestError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None


def _load_csv(path: str | Path, required: tuple[str, ...]) -> Rows:
    """The rows of a csv as dicts, one at a time, after checking its header."""
    try:
        fh = open(path, newline="", encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such annotation file") from None
    with fh:
        reader = csv.DictReader(fh)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ManifestError(f"{path}:1: missing column(s) {', '.join(missing)}")
        yield from reader


def _json_items(path: str | Path) -> Iterator[tuple[str, object]]:
    """(key, value) of a top-level json object, one at a time: HowTo100M's caption json is several GB."""
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such annotation file") from None
    with fh:
        try:
            yield from ijson.kvitems(fh, "", use_float=True)
        except ijson.JSONError as err:
            raise ManifestError(f"{path}: not valid JSON ({err})") from None


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
                test_rows = list(_load_csv(f, ("video_id", "sentence")))
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


def msrvtt(files: list[str], videos: str, split: str | None, extra: list[str]) -> Rows:
    """MSRVTT_data.json (videos + 20 sentences each, integer categories), optionally with the 9k train list and
    the 1k-A test csv, in any order (see `_msrvtt_files`). With a test csv, its 1,000 pairs are the test split
    and no other sentence of those videos is used."""
    path, train_ids, test_rows = _msrvtt_files(files + extra)
    data = _load_json(path)
    _need(data, ("videos", "sentences"), path)
    test_ids = {r["video_id"] for r in test_rows}
    split_of = {v["video_id"]: v.get("split", "train") for v in data["videos"]}
    category = {v["video_id"]: f"category {v['category']}" for v in data["videos"] if "category" in v}
    for i, s in enumerate(data["sentences"]):
        _need(s, ("video_id", "caption"), f"{path}: sentences[{i}]")
        vid = s["video_id"]
        if (train_ids is not None and vid not in train_ids) or vid in test_ids:
            continue
        yield {"video_id": vid, "video": f"{videos}/{vid}.mp4", "caption": s["caption"].strip(),
               "split": split or ("train" if train_ids is not None else split_of.get(vid, "train")),
               "source": "original", "topic": category.get(vid)}
    for r in test_rows:
        yield {"video_id": r["video_id"], "video": f"{videos}/{r['video_id']}.mp4", "caption": r["sentence"].strip(),
               "split": "test", "source": "original", "topic": category.get(r["video_id"])}


def didemo(files: list[str], videos: str, split: str | None, extra: list[str]) -> Rows:
    """DiDeMo json (list of {video, description, times}); descriptions of one video joined into a paragraph."""
    for f in files:
        paragraphs: OrderedDict[str, list[str]] = OrderedDict()
        for i, a in enumerate(_load_json(f)):
            _need(a, ("video", "description"), f"{f}: item {i}")
            paragraphs.setdefault(a["video"], []).append(a["description"].strip())
        name = Path(f).stem.split("_")[0]
        for video, descs in paragraphs.items():
            yield {"video_id": Path(video).stem, "video": f"{videos}/{video}", "caption": " ".join(descs),
                   "split": split or name, "source": "original"}


def activitynet(files: list[str], videos: str, split: str | None, extra: list[str]) -> Rows:
    """ActivityNet Captions (train.json / val_1.json: id → duration, timestamps, sentences); paragraph per video."""
    for f in files:
        default = "train" if "train" in Path(f).stem else "val"
        for vid, a in _json_items(f):
            _need(a, ("sentences", "timestamps"), f"{f}: {vid}")
            yield {"video_id": vid, "video": f"{videos}/{vid}.mp4", "caption": " ".join(s.strip() for s in a["sentences"]),
                   "split": split or default, "source": "original", "segments": a["timestamps"], "duration": a.get("duration")}


def webvid(files: list[str], videos: str, split: str | None, extra: list[str]) -> Rows:
    """WebVid csv (videoid, name, page_dir, …); videos at <page_dir>/<videoid>.mp4."""
    for f in files:
        for r in _load_csv(f, ("videoid", "name")):
            sub = f"{r['page_dir']}/" if r.get("page_dir") else ""
            yield {"video_id": r["videoid"], "video": f"{videos}/{sub}{r['videoid']}.mp4", "caption": r["name"].strip(),
                   "split": split or "train", "source": "original"}


def howto100m(files: list[str], videos: str, split: str | None, extra: list[str]) -> Rows:
    """HowTo100M caption json (video → start[], end[], text[]); one row per timed clip."""
    for f in files:
        for vid, a in _json_items(f):
            _need(a, ("start", "end", "text"), f"{f}: {vid}")
            if not len(a["start"]) == len(a["end"]) == len(a["text"]):
                raise ManifestError(f"{f}: {vid}: start, end and text differ in length")
            for i, (s, e, t) in enumerate(zip(a["start"], a["end"], a["text"])):
                if e > s and t.strip():
                    yield {"video_id": f"{vid}_{i}", "video": f"{videos}/{vid}.mp4", "caption": t.strip(),
                           "split": split or "train", "source": "original", "start": float(s), "end": float(e)}


def _qa_split(path: str) -> str:
    """The kit's QA split for a file named after its dataset split (train/val/test → qa_train/qa_val/qa)."""
    stem = Path(path).stem
    return next((qa for s, qa in (("train", "qa_train"), ("val", "qa_val"), ("test", "qa")) if s in stem), "qa")


def _qa_json(files: list[str], videos: str, split: str | None, name_of: Callable[[object], str]) -> Rows:
    for f in files:
        default = _qa_split(f)
        for i, q in enumerate(_load_json(f)):
            _need(q, ("question", "answer", "video_id"), f"{f}: item {i}")
            name = name_of(q["video_id"])
            yield {"video_id": Path(name).stem, "video": f"{videos}/{name}", "caption": "", "split": split or default,
                   "question": q["question"], "answer": str(q["answer"]), "qtype": q["question"].split()[0].lower(),
                   "qid": q.get("id", i)}


def msrvtt_qa(files: list[str], videos: str, split: str | None, extra: list[str]) -> Rows:
    """MSRVTT-QA json (question, answer, video_id as an integer)."""
    return _qa_json(files, videos, split, lambda v: f"video{v}.mp4" if isinstance(v, int) or str(v).isdigit() else f"{v}.mp4")


def msvd_qa(files: list[str], videos: str, split: str | None, extra: list[str]) -> Rows:
    """MSVD-QA json (question, answer, video_id); extra: youtube_mapping.txt ("<youtube name> vid<N>") to reach
    the original .avi names, else videos are taken as vid<N>.avi."""
    mapping = {}
    for f in extra:
        for line in Path(f).read_text().splitlines():
            if line.strip():
                name, vid = line.rsplit(" ", 1)
                mapping[vid] = name
    return _qa_json(files, videos, split, lambda v: f"{mapping.get(f'vid{v}', f'vid{v}')}.avi")


def nextqa(files: list[str], videos: str, split: str | None, extra: list[str]) -> Rows:
    """NExT-QA csv (video, question, answer index, qid, type, a0…a4)."""
    for f in files:
        default = _qa_split(f)
        for n, r in enumerate(_load_csv(f, ("video", "question", "answer", "a0", "a1", "a2", "a3", "a4")), 2):
            cands = [r[f"a{i}"].strip() for i in range(5)]
            try:
                answer = cands[int(r["answer"])]
            except (ValueError, IndexError):
                raise ManifestError(f"{f}:{n}: answer {r['answer']!r} is not an index 0-4") from None
            yield {"video_id": r["video"], "video": f"{videos}/{r['video']}.mp4", "caption": "", "split": split or default,
                   "question": r["question"].strip(), "answer": answer, "candidates": cands,
                   "qtype": r.get("type", ""), "qid": r.get("qid", "")}


def generic(files: list[str], videos: str, split: str | None, extra: list[str]) -> Rows:
    """CSV or JSONL with the manifest's own fields (video_id, video, caption, split, …)."""
    for f in files:
        if f.endswith((".jsonl", ".json")):
            for lineno, r in iter_jsonl(f):
                row = dict(r, split=split or r.get("split") or "train") if isinstance(r, dict) else r
                reason = validate_row(row)
                if reason:
                    raise ManifestError(f"{f}:{lineno}: {reason}")
                yield row
            continue
        for r in _load_csv(f, ("video_id", "video", "caption")):
            for k in ("start", "end"):
                if r.get(k) in ("", None):
                    r.pop(k, None)
                elif k in r:
                    r[k] = float(r[k])
            yield dict(r, split=split or r.get("split") or "train")


FORMATS: dict[str, Callable[[list[str], str, str | None, list[str]], Rows]] = {
    "msrvtt": msrvtt, "didemo": didemo, "activitynet": activitynet, "webvid": webvid, "howto100m": howto100m,
    "msrvtt-qa": msrvtt_qa, "msvd-qa": msvd_qa, "nextqa": nextqa, "generic": generic,
}
QA_FORMATS = ("msrvtt-qa", "msvd-qa", "nextqa")


def parse(dataset: str, files: Iterable[str | Path], split: str | None = None, videos: str = "videos",
          extra: Iterable[str | Path] = ()) -> Rows:
    """Manifest rows of `dataset`'s annotation files, as a stream (not yet checked against each other)."""
    if dataset not in FORMATS:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(sorted(FORMATS))}")
    return FORMATS[dataset]([str(f) for f in files], videos.rstrip("/"), split, [str(f) for f in extra])


def merged(out: Path, rows: Iterable[dict], task: tuple[str, ...] | None) -> Rows:
    """`rows` after the rows of an existing manifest at `out` that belong to the other task: a QA dataset is
    ingested into the same manifest as its retrieval dataset (and the other way round), each replacing only its
    own splits. `task` is the splits the new rows can hold; when it is not known (the generic format), the new
    rows pass through a temporary file first, since which task they hold is known only at their end."""
    if not out.exists():
        yield from rows
        return
    with tempfile.TemporaryFile(dir=out.parent) as spool:
        if task is None:
            splits: set[str] = set()
            for row in rows:
                splits.add(row["split"])
                spool.write((encode_row(row) + "\n").encode("utf-8"))
            task = tuple(s for g in (RETRIEVAL_SPLITS, QA_SPLITS) if splits & set(g) for s in g)
            spool.seek(0)
            rows = (json.loads(line) for line in spool)
        yield from (r for _, r in iter_jsonl(out) if r["split"] not in task)
        yield from rows


def ingest(dataset: str, files: list[str], out: str | Path, split: str | None = None, videos: str = "videos",
           extra: list[str] | None = None, val: int = 0, meta_per_concept: int = 0, seed: int = 0) -> dict:
    """Parse annotation files of `dataset` into validated manifest rows, streamed atomically to `out` (merged
    with the other task's rows already there, see `merged`). With `val` or `meta_per_concept`, those splits are
    carved out of the training rows (`mamc.data.splits`). Returns the row count per split, the carving's summary
    and the wall time."""
    out, start = Path(out), time.perf_counter()
    rows, carved = parse(dataset, files, split, videos, extra or []), None
    if val or meta_per_concept:
        from mamc.data.splits import carve_splits

        rows, carved = carve_splits(rows, out.parent, val, meta_per_concept, seed)
    counts: Counter[str] = Counter()

    def counted(stream: Iterable[dict]) -> Rows:
        for row in stream:
            counts[row["split"]] += 1
            yield row

    task = None if dataset == "generic" else QA_SPLITS if dataset in QA_FORMATS else RETRIEVAL_SPLITS
    write_jsonl(out, counted(merged(out, rows, task)))
    return {"rows": sum(counts.values()), "splits": dict(counts), "carved": carved, "seconds": time.perf_counter() - start}

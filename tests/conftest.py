"""Shared fixtures: a generated smoke corpus (seconds) and a whole smoke run (minutes), each built once per test
session."""
import os
import subprocess
import sys

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_collection_modifyitems(config, items):
    """With pytest-xdist (`make test` runs two workers, `--dist loadgroup`), the tests that read the smoke run go to
    one worker, which builds it once; the others are shared out between both."""
    for item in items:
        if "smoke_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("smoke_run"))


@pytest.fixture(scope="session")
def smoke_cfg(tmp_path_factory):
    """Smoke-profile config whose run folder already holds the embedded corpus."""
    from mamc.config import load_config
    from mamc.data.synthetic import generate_corpus

    cfg = load_config("smoke", run_dir=str(tmp_path_factory.mktemp("run")))
    generate_corpus(cfg, progress=False)
    return cfg


@pytest.fixture(scope="session")
def sharded_cfg(smoke_cfg):
    """The smoke run's train, meta and val clips also in shards (`mamc shard`), and a config that trains from them."""
    from dataclasses import replace

    from mamc.data.shards import make_shards
    from mamc.run import Run

    cfg = replace(smoke_cfg, data_format="shards", shard_size=50)
    for split in ("train", "meta", "val"):
        make_shards(Run(cfg).path("manifest"), split, Run(cfg).shards(split), cfg.data_dir, cfg.clip_frames,
                    cfg.frame_size, cfg.shard_size, progress=False)
    return cfg


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """The README's main job, `make reproduce`, as its Makefile recipe runs it, at the smoke profile with two seeds
    (so that every interval, verdict and reading has something to compute)."""
    from tests.documented import ROOT, make_recipe

    out = tmp_path_factory.mktemp("smoke_run")
    recipe = make_recipe("reproduce", PY=sys.executable, PROFILE="smoke", RUN=str(out)) + " --param seeds=0,1"
    done = subprocess.run(recipe, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"run folder: {out}" in done.stdout
    return out

"""Shared fixtures: a generated smoke corpus (seconds), built once per test session."""
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def smoke_cfg(tmp_path_factory):
    """Smoke-profile config whose run folder already holds the embedded corpus."""
    from mamc.config import load_config
    from mamc.data.synthetic import generate_corpus

    cfg = load_config("smoke", run_dir=str(tmp_path_factory.mktemp("run")))
    generate_corpus(cfg, progress=False)
    return cfg

"""A run folder remembers its configuration and environment."""
import json

import pytest
import torch

from mamc.config import load_config
from mamc.run import environment, load_run_config, save_config


def test_config_round_trip_and_stale_fields(tmp_path):
    cfg = load_config("smoke", run_dir=str(tmp_path), steps=5)
    save_config(cfg)
    again = load_run_config(tmp_path)
    assert again.steps == 5 and again.profile == "smoke" and again.run_path == tmp_path.resolve()
    values = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(dict(values, retired_option=1)))
    with pytest.warns(UserWarning, match="retired_option"):
        assert load_run_config(tmp_path).steps == 5
    with pytest.raises(FileNotFoundError, match="is .* a run folder"):
        load_run_config(tmp_path / "nothing")


def test_environment_records_versions_seeds_and_timings(tmp_path):
    env = environment(load_config("smoke", run_dir=str(tmp_path)), {"01_x.ipynb": 1.5})
    assert env["packages"]["torch"] and env["seeds"] == [0] and env["wall_time_s"] == {"01_x.ipynb": 1.5}
    assert env["device"] in ("cpu", "cuda") and env["cpu_capability"] == torch.backends.cpu.get_cpu_capability()


def test_a_setting_is_refused_only_where_an_artifact_depends_on_it(tmp_path):
    """Training settings change freely while the folder holds only data; once a run exists they are refused, naming
    it. Data settings are refused once the corpus exists. Execution settings, growing lists and the tuned knobs
    (part of each dependent run's name) change freely."""
    from mamc.run import ConfigMismatch

    save_config(load_config("smoke", run_dir=str(tmp_path), steps=5))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "manifest.jsonl").write_text("")
    save_config(load_config("smoke", run_dir=str(tmp_path), steps=6))  # only data so far: a new training plan is fine
    with pytest.raises(ConfigMismatch, match=r"noise_rate: 0.3 → 0.5 \(data/manifest.jsonl was made with 0.3\)"):
        save_config(load_config("smoke", run_dir=str(tmp_path), steps=6, noise_rate=0.5))
    (tmp_path / "checkpoints" / "infonce_s0").mkdir(parents=True)
    (tmp_path / "checkpoints" / "infonce_s0" / "last.json").write_text("{}")
    with pytest.raises(ConfigMismatch, match=r"steps: 6 → 50 \(checkpoints/infonce_s0 was made with 6\)\. Start a new"):
        save_config(load_config("smoke", run_dir=str(tmp_path), steps=50))
    assert json.loads((tmp_path / "config.json").read_text())["steps"] == 6
    save_config(load_config("smoke", run_dir=str(tmp_path), steps=6, device="cpu", threads=2, seeds="0,1", margin=0.3))
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["seeds"] == [0, 1] and saved["margin"] == 0.3 and saved["tuned"] == ["meta_lr"]


def test_a_run_folder_older_than_a_setting_keeps_what_it_was_made_with(tmp_path):
    """A folder trained before `lr_schedule` existed decayed its rate along a cosine: resuming or judging it
    reads that, and the present default (constant) is refused there rather than silently mixed in."""
    from mamc.run import ConfigMismatch

    save_config(load_config("smoke", run_dir=str(tmp_path)))
    values = json.loads((tmp_path / "config.json").read_text())
    del values["lr_schedule"]
    (tmp_path / "config.json").write_text(json.dumps(values))
    (tmp_path / "checkpoints" / "infonce_s0").mkdir(parents=True)
    (tmp_path / "checkpoints" / "infonce_s0" / "last.json").write_text("{}")
    assert load_run_config(tmp_path).lr_schedule == "cosine"
    with pytest.raises(ConfigMismatch, match=r"lr_schedule: 'cosine' → 'constant' \(checkpoints/infonce_s0 was made"):
        save_config(load_config("smoke", run_dir=str(tmp_path)))


def test_a_public_dataset_run_is_never_told_to_synthesise(tmp_path):
    """Following `mamc synth` advice in a run folder holding an ingested dataset would overwrite it."""
    from mamc.config import load_config
    from mamc.run import MissingArtifact, Run

    for artifact in ("manifest", "corpus", "data card"):
        with pytest.raises(MissingArtifact) as err:
            Run(load_config("paper", run_dir=str(tmp_path))).need(artifact)
        assert "mamc ingest" in str(err.value) and "synth" not in str(err.value)
    with pytest.raises(MissingArtifact, match="mamc synth"):
        Run(load_config("smoke", run_dir=str(tmp_path))).need("corpus")


def test_a_captioner_snapshot_has_its_own_captioner_captions_and_scores(tmp_path):
    from mamc.run import Run

    cfg = load_config("smoke", run_dir=str(tmp_path))
    weak = Run(load_config("smoke", run_dir=str(tmp_path), captioner_snapshot=2))
    assert weak.path("captioner") == tmp_path / "captioner_step2"
    assert weak.path("captions") == tmp_path / "data" / "dose" / "step2" / "captions.jsonl"
    assert weak.path("caption quality").parent == weak.path("captions").parent
    assert weak.path("manifest") == Run(cfg).path("manifest")  # the same benchmark
    for path in (Run(cfg).path("captions"), weak.path("captions")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    assert Run(cfg).caption_files() == [Run(cfg).path("captions")] and weak.caption_files() == [weak.path("captions")]
    save_config(cfg)
    (tmp_path / "checkpoints").mkdir()
    save_config(load_config("smoke", run_dir=str(tmp_path), captioner_snapshot=2))  # a selector, not another setting


def test_cuda_runs_ask_for_deterministic_kernels(monkeypatch):
    import os

    import torch

    from mamc.run import deterministic

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    try:
        deterministic(torch.device("cpu"))
        assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ  # CPU kernels need nothing
        deterministic(torch.device("cuda"))
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before[2], before[3]

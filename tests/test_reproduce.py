"""`mamc reproduce`: every notebook runs headless under the smoke profile and leaves the run folder of the
contract; reruns from saved artifacts; parameters validated; failures name the notebook and the cell."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from mamc.data.attributes import retrieval_ceiling
from mamc.manifest import read_manifest
from mamc.reproduce import ReproduceError, parse_params, reproduce
from tests.documented import ROOT


@pytest.mark.slow
def test_run_folder_holds_every_artifact_of_the_contract(smoke_run):
    names = sorted(p.name for p in (smoke_run / "notebooks").glob("*.ipynb"))
    assert [n[:2] for n in names] == ["01", "02", "03", "04", "05"]
    for name in names:
        nb = nbformat.read(smoke_run / "notebooks" / name, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(c.execution_count for c in code), f"{name} was not fully executed"
        assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    figures = {p.stem for p in (smoke_run / "figures").glob("*.pdf")}
    assert {"weight_curves", "topic_improvement", "improvement_vs_frequency", "loss_weight_distributions",
            "margin_sweep", "topic_distribution", "caption_accuracy", "training_curves", "captioner_training",
            "caption_examples", "loss_geometry", "methods_t2v_r1"} <= figures
    assert figures == {p.stem for p in (smoke_run / "figures").glob("*.png")}
    for stem in ("claims", "ablation_retrieval", "head_tail", "qa", "margin_sweep", "paper_side_by_side", "ablation_ci"):
        assert all((smoke_run / "tables" / f"{stem}.{ext}").exists() for ext in ("csv", "md", "tex"))
    assert "\\toprule" in (smoke_run / "tables" / "ablation_retrieval.tex").read_text()
    results = (smoke_run / "RESULTS.md").read_text()
    assert "## Retrieval" in results and "## What the learned weighting does" in results and "## The captioner" in results
    assert "Attainable t2v ceiling" in results and "tail − head" in results  # read against the ceiling and the control
    metrics = json.loads((smoke_run / "metrics.json").read_text())
    assert metrics["t2v_ceiling"] == retrieval_ceiling(read_manifest(smoke_run / "data" / "manifest.jsonl", "test"))
    assert [c["claim"].split()[0] for c in metrics["claims"]] == ["C1", "C2", "C2b", "C2c", "C3", "C4", "C5"]
    assert {c["seeds"] for c in metrics["claims"]} == {2}
    assert set(metrics["ablation"]) == {"infonce", "margin", "meta", "vlm", "mama", "additive"}
    mama = [json.loads(p.read_text())["t2v"]["R@1"] for p in sorted((smoke_run / "logs").glob("mama_s*/test.json"))]
    assert len(mama) == 2 and metrics["ablation"]["mama"]["t2v R@1"]["mean"] == pytest.approx(sum(mama) / 2)
    env = json.loads((smoke_run / "environment.json").read_text())
    assert env["profile"] == "smoke" and env["packages"]["torch"] and env["device"] == "cpu"
    assert set(env["wall_time_s"]) == set(names)
    assert any((smoke_run / "checkpoints").glob("*/best.safetensors"))


@pytest.fixture
def copied_run(smoke_run, tmp_path):
    """A copy of the smoke run to rebuild in (the module's run stays as made for the other tests)."""
    return Path(shutil.copytree(smoke_run, tmp_path / "run", symlinks=True))


@pytest.mark.slow
def test_rerun_figures_and_tables_from_saved_artifacts(smoke_run, copied_run):
    """Notebooks 04 and 05 rebuild every figure and table from the saved artifacts alone: the same pictures and
    tables, pixel for pixel and byte for byte."""
    shutil.rmtree(copied_run / "figures")
    (copied_run / "RESULTS.md").unlink()
    reproduce("smoke", copied_run, params=["seeds=0,1"], only=["04", "05"], progress=False)
    rebuilt = sorted(p.name for p in (copied_run / "figures").glob("*.png"))
    assert rebuilt == sorted(p.name for p in (smoke_run / "figures").glob("*.png"))
    assert all((copied_run / "figures" / n).read_bytes() == (smoke_run / "figures" / n).read_bytes() for n in rebuilt)
    assert (copied_run / "RESULTS.md").read_text() == (smoke_run / "RESULTS.md").read_text()
    env = json.loads((copied_run / "environment.json").read_text())
    assert len(env["wall_time_s"]) == 5  # the first three notebooks' times kept beside the new ones


@pytest.mark.slow
def test_figures_command_rebuilds_from_the_run_folder(smoke_run, copied_run):
    (copied_run / "figures" / "margin_sweep.png").unlink()
    out = subprocess.run([sys.executable, "-m", "mamc", "figures", "--run", str(copied_run)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert f"margin_sweep {copied_run / 'figures' / 'margin_sweep.pdf'}" in out.stdout
    assert (copied_run / "figures" / "margin_sweep.png").read_bytes() == (smoke_run / "figures" / "margin_sweep.png").read_bytes()


def test_unknown_parameters_are_errors():
    declared = {"03_x.ipynb": {"profile", "run_dir", "retrain"}}
    assert parse_params(["retrain=True", "steps=5"], declared) == ({"retrain": True}, {"steps": "5"})
    with pytest.raises(ValueError, match="unknown parameter 'stepz'"):
        parse_params(["stepz=5"], declared)
    with pytest.raises(ValueError, match="its own option"):
        parse_params(["profile=paper"], declared)
    with pytest.raises(ValueError):
        parse_params(["steps=many"], declared)


@pytest.mark.slow
def test_failure_names_notebook_and_cell_and_keeps_partial_output(tmp_path):
    nb_dir = tmp_path / "nbs"
    nb_dir.mkdir()
    params = nbformat.v4.new_code_cell('profile = "smoke"\nrun_dir = "x"')
    params.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[params, nbformat.v4.new_code_cell("x = 1"),
                                         nbformat.v4.new_code_cell("raise ValueError('broken on purpose')")])
    nb.metadata["kernelspec"] = {"name": "mamc", "display_name": "Python (mamc)", "language": "python"}
    nbformat.write(nb, nb_dir / "01_broken.ipynb")
    out = tmp_path / "run"
    with pytest.raises(ReproduceError, match=r"01_broken.ipynb failed in cell 3 `raise ValueError\(.broken on purpose.\)` \(ValueError: broken on purpose\)"):
        reproduce("smoke", out, notebook_dir=nb_dir, progress=False)
    kept = nbformat.read(out / "notebooks" / "01_broken.ipynb", as_version=4)
    assert kept.cells[-1].outputs[0]["ename"] == "ValueError"


@pytest.mark.parametrize("cmd", ["reproduce", "synth", "ingest", "frames", "caption", "train", "evaluate", "figures"])
def test_cli_commands_have_help(cmd, capsys):
    from mamc.cli import main

    with pytest.raises(SystemExit) as done:
        main([cmd, "--help"])
    assert done.value.code == 0 and f"usage: mamc {cmd}" in capsys.readouterr().out


def test_python_dash_m_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "mamc", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "usage: mamc" in out.stdout


@pytest.mark.parametrize("argv, message", [
    (["--param", "steps=abc"], "mamc reproduce: error: steps expects an integer, got 'abc'"),
    (["--param", "n_topics=0"], "mamc reproduce: error: n_topics=0 is out of range: expected 1 ≤ n_topics ≤ 30"),
    (["--out", "{file}"], "mamc reproduce: error: --out {file} is a file, not a folder"),
    (["--out", "{file}/run"], "mamc reproduce: error: --out {file}/run: cannot create the run folder (Not a directory)"),
])
def test_bad_arguments_give_one_line_errors(tmp_path, capsys, argv, message):
    from mamc.cli import main

    file = tmp_path / "a_file"
    file.write_text("x")
    argv = [a.format(file=file) for a in argv]
    out = [] if "--out" in argv else ["--out", str(tmp_path / "run")]
    assert main(["reproduce", "--profile", "smoke", "--quiet", *out, *argv]) == 2
    err = capsys.readouterr().err
    assert err == message.format(file=file) + "\n"


@pytest.mark.slow
def test_executed_notebooks_read_well_without_a_kernel(smoke_run, tmp_path):
    """No stderr, no widget (a broken icon without a kernel): finished progress stays as a line of text and every
    interactive view is drawn statically; figures are embedded at a legible width; counts print as integers; and
    `nbconvert --to html` keeps every figure."""
    for path in sorted((smoke_run / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        assert not [o for o in outputs if o.output_type == "stream" and o.name == "stderr"], path.name
        assert not [o for o in outputs if any("widget" in k for k in o.get("data", {}))], path.name
        bars = [o.data["text/plain"] for o in outputs if "%|" in o.get("data", {}).get("text/plain", "")]
        assert all("100%|" in b for b in bars), f"{path.name}: a progress line was left unfinished"
        widths = [o.metadata["image/png"]["width"] for o in outputs if o.get("metadata", {}).get("image/png")]
        assert all(w >= 440 for w in widths), f"{path.name}: a figure embedded {min(widths)} px wide"
        html = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", "--stdout", str(path)],
                              capture_output=True, text=True)
        assert html.returncode == 0, html.stderr[-2000:]
        images = sum("image/png" in o.get("data", {}) for o in outputs)
        assert html.stdout.count("data:image/png;base64") >= images > 0  # the template may add an icon of its own
    first = nbformat.read(smoke_run / "notebooks" / "01_data_prep.ipynb", as_version=4)
    splits = next(o for c in first.cells if "split_summary(stats)" in c.source for o in c.outputs if "text/plain" in o.get("data", {}))
    train = next(line.split() for line in splits.data["text/plain"].splitlines() if line.startswith("train"))
    assert train[1:4] == ["192", "192", str(json.loads((smoke_run / "data" / "corpus.json").read_text())["splits"]["train"]["misaligned"])]
    assert sum(1 for c in first.cells if "interactive(" in c.source and any("live kernel" in o.get("text", "") for o in c.outputs)) == 1


@pytest.mark.slow
def test_make_study_extends_a_run_and_draws_the_captioner_again(smoke_run, tmp_path):
    """`make study` as the README gives it, at the smoke profile: the run extended (nothing retrained), one more
    captioner drawn on the same data, C3 under both in RESULTS.md, every number of it audited."""
    from tests.audit import Audit

    study = shutil.copytree(smoke_run, tmp_path / "study", symlinks=True)
    done = subprocess.run(["make", "-o", "setup", "study", f"PY={sys.executable}", "PROFILE=smoke", f"STUDY={study}",
                           "STUDY_SEEDS=0,1", "CAPTIONER_SEEDS=1", "DRAW_SEEDS=0,1"], cwd=ROOT, capture_output=True,
                          text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    draws = json.loads((study / "metrics.json").read_text())["captioner_draws"]
    assert [(d["captioner seed"], d["run"], d["seeds"]) for d in draws] == [(0, "study", 2), (1, "study_captioner1", 2)]
    own, other = (json.loads(line) for line in (
        (study / "data" / "captions.jsonl").read_text().splitlines()[0],
        (tmp_path / "study_captioner1" / "data" / "captions.jsonl").read_text().splitlines()[0]))
    assert own["provenance"]["seed"] == 0 and other["provenance"]["seed"] == 1
    assert "## The captioner's draw" in (study / "RESULTS.md").read_text()
    wrong = [c for c in Audit(study).run() if not c[3]]
    assert not wrong, wrong[:5]

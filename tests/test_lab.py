"""JupyterLab opens a run folder's own signed copies of the notebooks, pointed at that run, as root too."""
import hashlib
import os

import nbformat
from nbformat.sign import NotebookNotary

from mamc.lab import lab_command, prepare_lab
from mamc.reproduce import NOTEBOOK_DIR


def test_copies_are_parameterised_for_the_run_signed_and_leave_the_committed_notebooks_alone(tmp_path):
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in NOTEBOOK_DIR.glob("*.ipynb")}
    folder = prepare_lab(tmp_path / "run", "smoke")
    copies = sorted(folder.glob("*.ipynb"))
    assert [p.name for p in copies] == sorted(before)
    for path in copies:
        nb = nbformat.read(path, as_version=4)
        injected = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
        assert 'profile = "smoke"' in injected.source and f'run_dir = "{folder.parent}"' in injected.source
        assert NotebookNotary().check_signature(nb)
    assert before == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in NOTEBOOK_DIR.glob("*.ipynb")}


def test_existing_executed_copies_are_kept(tmp_path):
    folder = prepare_lab(tmp_path / "run", "smoke")
    (folder / "01_data_prep.ipynb").write_text((folder / "01_data_prep.ipynb").read_text().replace("Data preparation", "Kept"))
    prepare_lab(tmp_path / "run", "smoke")
    assert "Kept" in (folder / "01_data_prep.ipynb").read_text()


def test_command_line_for_a_headless_machine(tmp_path):
    cmd = lab_command(tmp_path, port=8890)
    assert "--no-browser" in cmd and "--port=8890" in cmd and f"--notebook-dir={tmp_path}" in cmd
    assert ("--allow-root" in cmd) == (os.geteuid() == 0)
    assert "--no-browser" not in lab_command(tmp_path, browser=True)

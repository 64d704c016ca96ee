"""JupyterLab on a run folder, for students: the run's own copies of the notebooks, never the committed ones.

`mamc reproduce` leaves executed copies in `RUN/notebooks/`; `prepare_lab` adds a fresh copy of any notebook
that is missing there, with the run's profile and folder injected (so a live kernel reads and writes that run),
and signs them all: a notebook that papermill executed is otherwise untrusted, and JupyterLab then shows its
widgets as text. JupyterLab's autosave therefore only ever writes into the run folder.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
from nbformat.sign import NotebookNotary
from papermill.iorw import load_notebook_node
from papermill.parameterize import parameterize_notebook

from mamc.reproduce import KERNEL, notebooks


def sign(path: Path) -> None:
    """Mark a notebook as trusted for this user, so that JupyterLab renders its saved widgets and HTML."""
    NotebookNotary().sign(nbformat.read(path, as_version=4))


def prepare_lab(run_dir: Path, profile: str) -> Path:
    """The run's notebook folder, holding a signed copy of every notebook (missing ones copied fresh)."""
    folder = Path(run_dir).resolve() / "notebooks"
    folder.mkdir(parents=True, exist_ok=True)
    for source in notebooks():
        target = folder / source.name
        if not target.exists():
            nb = parameterize_notebook(load_notebook_node(str(source)),
                                       {"profile": profile, "run_dir": str(folder.parent)}, kernel_name=KERNEL)
            nbformat.write(nb, target)
        sign(target)
    return folder


def lab_command(folder: Path, port: int | None = None, browser: bool = False) -> list[str]:
    """The JupyterLab command line: the run's notebooks, the kit's kernel, no browser unless asked, and
    `--allow-root` when running as root (as in containers), without which JupyterLab exits at once."""
    cmd = [sys.executable, "-m", "jupyter", "lab", f"--notebook-dir={folder}",
           f"--MappingKernelManager.default_kernel_name={KERNEL}"]
    if port:
        cmd.append(f"--port={port}")
    if not browser:
        cmd.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    return cmd

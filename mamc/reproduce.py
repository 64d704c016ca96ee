"""`mamc reproduce`: run the ordered notebooks with papermill into a run folder.

Parameters are injected per notebook (only those it declares); `--param key=value` must name a notebook
parameter or a configuration field (those travel in the `overrides` parameter), anything else is an error.
"""
from __future__ import annotations

import ast
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nbformat
import papermill as pm
from nbformat.sign import NotebookNotary

from mamc.config import REPO_ROOT, config_fields, load_config, parse_overrides
from mamc.lock import run_lock, shared_with_children
from mamc.manifest import write_json
from mamc.notebook import HEADLESS
from mamc.preempt import Preempted
from mamc.progress import tqdm
from mamc.run import check_config, write_environment
from mamc.watchdog import ENGINE, DeadKernel, Hang, Limits

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
KERNEL = "mamc"
BASE_PARAMETERS = ("profile", "run_dir", "seed", "device", "overrides")


class ReproduceError(RuntimeError):
    """A notebook failed; the message names the notebook, the cell and where the partial notebook is."""


def notebooks(only: list[str] | None = None, directory: Path = NOTEBOOK_DIR) -> list[Path]:
    """The ordered notebooks (`NN_name.ipynb`), optionally only those whose number is in `only`."""
    found = sorted(Path(directory).glob("[0-9][0-9]_*.ipynb"))
    if only:
        wanted = {o.zfill(2) for o in only}
        unknown = wanted - {p.name[:2] for p in found}
        if unknown:
            raise ValueError(f"no notebook numbered {sorted(unknown)}; have {[p.name for p in found]}")
        found = [p for p in found if p.name[:2] in wanted]
    return found


def ensure_kernel() -> str:
    """Install (once, into this environment) a kernelspec for this interpreter, so that no fresh machine ever
    meets NoSuchKernel; returns its name."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL)
        if Path(spec.argv[0]).resolve() == Path(sys.executable).resolve():
            return KERNEL
    except NoSuchKernel:
        pass
    from ipykernel.kernelspec import install

    install(kernel_name=KERNEL, display_name="Python (mamc)", prefix=sys.prefix)
    return KERNEL


def cell_position(executed: Path, index: int | None = None) -> tuple[int, str]:
    """1-based position of a cell among the notebook's own cells (papermill's injected parameters cell and error
    banner are not counted) and its first line: the cell at `index` of the executed notebook, or else the first
    cell with an error output."""
    added = {"injected-parameters", "papermill-error-cell-tag"}
    cells = nbformat.read(executed, as_version=4).cells
    own = [(i, c) for i, c in enumerate(cells) if not added & set(c.metadata.get("tags", []))]
    for n, (i, cell) in enumerate(own, 1):
        hit = i == index if index is not None else any(o.get("output_type") == "error" for o in cell.get("outputs", []))
        if hit:
            return n, cell.source.splitlines()[0] if cell.source else ""
    return -1, ""


def check_out(out: Path) -> None:
    """A run folder that can be written, or a one-line reason why not."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"--out {out}: cannot create the run folder ({err.strerror})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out}: the folder is not writable")


def parse_params(pairs: list[str], declared: dict[str, set[str]]) -> tuple[dict, dict]:
    """Split `key=value` pairs into notebook parameters and configuration overrides; reject unknown keys."""
    params, overrides = {}, {}
    known_nb = set().union(*declared.values()) if declared else set()
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--param expects key=value, got {pair!r}")
        key, raw = pair.split("=", 1)
        if key in BASE_PARAMETERS:
            raise ValueError(f"set {key} with its own option (--profile, --out, --seed, --device), not --param")
        if key in known_nb:
            try:
                params[key] = ast.literal_eval(raw)
            except (ValueError, SyntaxError):
                params[key] = raw
        elif key in config_fields():
            overrides.update(parse_overrides([pair]))
        else:
            raise ValueError(f"unknown parameter {key!r}: not a parameter of the notebooks "
                             f"(they declare {sorted(known_nb)}) nor a configuration field")
    return params, overrides


@contextmanager
def headless_kernels() -> Iterator[None]:
    """Kernels started meanwhile know that nobody is at them (`mamc.notebook.headless`): they draw static views
    instead of widgets."""
    before = os.environ.get(HEADLESS)
    os.environ[HEADLESS] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ[HEADLESS]
        else:
            os.environ[HEADLESS] = before


def _shown(out: Path) -> str:
    """The run folder as the notebooks' parameters cell shows it: relative to the repository (where the kernels
    run) when it is inside it, else absolute."""
    return os.path.relpath(out, REPO_ROOT) if out.is_relative_to(REPO_ROOT) else str(out)


def reproduce(profile: str, out: str | Path, seed: int = 0, device: str = "auto", params: list[str] | None = None,
              only: list[str] | None = None, progress: bool = True, notebook_dir: Path = NOTEBOOK_DIR,
              watchdog: Limits | None = None) -> Path:
    """Run the notebooks in order into `out`; returns the run folder. Holds the run folder's lock throughout;
    the watchdog stops a cell that shows no sign of life (see `mamc.watchdog`)."""
    out = Path(out).resolve()
    selected = notebooks(only, notebook_dir)
    declared = {p.name: set(pm.inspect_notebook(str(p))) for p in selected}
    nb_params, overrides = parse_params(params or [], declared)
    cfg = load_config(profile, run_dir=str(out), seed=seed, device=device, **overrides)
    check_out(out)
    with run_lock(out, f"mamc reproduce --profile {profile}") as lock, shared_with_children(lock), headless_kernels():
        check_config(cfg)
        kernel = ensure_kernel()
        (out / "notebooks").mkdir(parents=True, exist_ok=True)
        env_path = out / "environment.json"
        timings = json.loads(env_path.read_text()).get("wall_time_s", {}) if env_path.exists() else {}
        base = {"profile": profile, "run_dir": _shown(out), "seed": seed, "device": device, "overrides": overrides}
        for nb in tqdm(selected, desc="notebooks", disable=not progress, unit="nb"):
            target = out / "notebooks" / nb.name
            inject = {k: v for k, v in {**base, **nb_params}.items() if k in declared[nb.name]}
            start = time.time()
            try:
                pm.execute_notebook(str(nb), str(target), parameters=inject, kernel_name=kernel, cwd=str(REPO_ROOT),
                                    progress_bar=False, log_output=False, engine_name=ENGINE,
                                    watchdog=watchdog or Limits())
            except pm.PapermillExecutionError as err:
                if err.ename == "Preempted":
                    raise Preempted(f"{nb.name}: {err.evalue}") from None
                cell, first_line = cell_position(target)
                raise ReproduceError(
                    f"{nb.name} failed in cell {cell} `{first_line}` ({err.ename}: {err.evalue}); "
                    f"the partially executed notebook is kept at {target}") from None
            except (Hang, DeadKernel) as err:
                cell, first_line = cell_position(target, err.cell_index)
                what = "the watchdog stopped" if isinstance(err, Hang) else "the kernel died in"
                raise ReproduceError(f"{nb.name}: {what} cell {cell} `{first_line}` ({err}); the partially executed "
                                     f"notebook is kept at {target}") from None
            finally:
                timings[nb.name] = round(time.time() - start, 1)
                write_environment(cfg, timings)
            NotebookNotary().sign(nbformat.read(target, as_version=4))
        write_json(out / "reproduce.json", {"profile": profile, "seed": seed, "device": device, "params": nb_params,
                                            "overrides": overrides, "notebooks": [p.name for p in selected]})
    return out

"""What the documentation shows a user as commands: every line of its fenced blocks, and the Makefile's recipes,
so that tests run exactly those (see tests/test_documented_commands.py)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def fenced_blocks(doc: str) -> list[list[str]]:
    """The command lines of each fenced block of `doc` (relative to the repository): continuation lines joined,
    trailing comments dropped."""
    blocks = []
    for body in re.findall(r"^```[a-z]*\n(.*?)^```", (ROOT / doc).read_text(), re.S | re.M):
        joined = re.sub(r"\\\n\s*", "", body)
        blocks.append([re.sub(r"\s+#\s.*$", "", line).strip() for line in joined.splitlines() if line.strip()])
    return blocks


def make_recipe(target: str, **variables: str) -> str:
    """The recipe of a Makefile target, its `$(VAR)`s replaced by `variables` (each one it uses must be given)."""
    recipe = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M)
    assert recipe, f"Makefile has no target {target!r}"
    lines = recipe.group(1).replace("\t", "").strip()
    return re.sub(r"\$\((\w+)\)", lambda m: variables[m.group(1)], lines)


# Commands of the CLI that take `--param`; the shims add size-only settings to these.
PARAM_COMMANDS = ("reproduce", "synth", "frames", "shard", "caption", "train", "evaluate")


def shrunk(args: list[str], shrink: dict) -> list[str]:
    """A documented `mamc` command line with the test's size-only settings (`MAMC_DOC_SHRINK`) added: `--param`s,
    smaller `mamc ingest` split sizes, `--tiny` for the GPU check, and the device asked for, if any."""
    command, args = args[0], list(args)
    if command == "ingest":
        for flag, value in shrink["ingest"].items():
            if flag in args:
                args[args.index(flag) + 1] = value
    elif command == "gpu-check":
        args += shrink["gpu-check"]
    elif command in PARAM_COMMANDS:
        args += [arg for kv in shrink["params"] for arg in ("--param", kv)]
        if shrink.get("device"):
            args += ["--device", shrink["device"]] if command == "reproduce" else ["--param", f"device={shrink['device']}"]
    return args


MAMC_SHIM = """#!{python}
# `mamc` as the documentation types it, with the test's size-only settings (tests/documented.py).
import json, os, sys
from mamc.cli import main
from tests.documented import shrunk
if os.environ.get("MAMC_TEST_DEVICE", "").startswith("cuda"):
    os.environ.pop("CUDA_VISIBLE_DEVICES", None)  # lines written for 4 GPUs share the GPUs this machine has
sys.exit(main(shrunk(sys.argv[1:], json.loads(os.environ["MAMC_DOC_SHRINK"]))))
"""
TORCHRUN_SHIM = """#!{python}
# `torchrun` as the documentation types it: MAMC_TEST_NPROC processes (default 2) on a free port (--standalone),
# and the size-only settings added to the mamc command it starts (tests/documented.py).
import json, os, sys
from tests.documented import shrunk
args = sys.argv[1:]
args[args.index("--nproc_per_node") + 1] = os.environ.get("MAMC_TEST_NPROC", "2")
cut = args.index("--") + 1
args = args[:cut] + shrunk(args[cut:], json.loads(os.environ["MAMC_DOC_SHRINK"]))
os.execv(sys.executable, [sys.executable, "-m", "torch.distributed.run", "--standalone", *args])
"""


def write_shims(folder: Path) -> Path:
    """`mamc` and `torchrun` shims in `folder` (put it first on PATH), run by this interpreter."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (("mamc", MAMC_SHIM), ("torchrun", TORCHRUN_SHIM)):
        (folder / name).write_text(text.format(python=sys.executable))
        (folder / name).chmod(0o755)
    return folder

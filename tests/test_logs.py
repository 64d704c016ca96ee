"""Specification of the training logs: the scalars' CSV is always what the JSONL says."""
import shutil

from mamc.logs import write_scalars, write_scalars_csv
from mamc.manifest import iter_jsonl


def test_the_scalars_csv_grows_by_appending_and_equals_a_rewrite_from_the_jsonl(tmp_path):
    rows = [{"step": s, "loss": 1.0 / (s + 1), **({"val/rsum": 10.0 * s} if s % 3 == 2 else {})} for s in range(10)]
    for first in range(0, 10, 2):  # validation keys appear at step 2, after the CSV was first written
        write_scalars(tmp_path, rows[first : first + 2])
    assert [r for _, r in iter_jsonl(tmp_path / "scalars.jsonl")] == rows
    appended = (tmp_path / "scalars.csv").read_text()
    shutil.copy(tmp_path / "scalars.jsonl", tmp_path / "again.jsonl")
    write_scalars_csv(tmp_path)
    assert appended == (tmp_path / "scalars.csv").read_text()
    assert appended.splitlines()[0] == "step,loss,val/rsum" and len(appended.splitlines()) == 11

"""One job per run folder: a second job refuses and names the owner; a dead owner's lock is taken over; the
kernels of `mamc reproduce` work under their parent's lock."""
import subprocess
import sys

import pytest

from mamc.cli import main
from mamc.lock import RunLocked, run_lock, shared_with_children

HOLD = "import sys, time; from mamc.lock import run_lock\nwith run_lock(sys.argv[1], 'holder'):\n print('held', flush=True); time.sleep(60)"


def test_a_second_job_refuses_and_a_dead_owners_lock_is_taken_over(tmp_path, capsys):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLocked, match=rf"is in use by PID {holder.pid} on .* \(`holder`, since"):
            with run_lock(tmp_path, "second"):
                pass
        assert main(["frames", "--run", str(tmp_path)]) == 2
        assert f"in use by PID {holder.pid}" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    with run_lock(tmp_path, "after the owner died") as record:
        assert record["command"] == "after the owner died"


def test_nested_use_and_child_processes_share_the_lock(tmp_path):
    child = "import sys; from mamc.lock import run_lock\nwith run_lock(sys.argv[1], 'kernel'): print('ok')"
    with run_lock(tmp_path, "parent") as record:
        with run_lock(tmp_path, "nested in the same process"):
            pass
        with shared_with_children(record):
            out = subprocess.run([sys.executable, "-c", child, str(tmp_path)], capture_output=True, text=True)
        assert out.returncode == 0 and out.stdout.strip() == "ok"
        refused = subprocess.run([sys.executable, "-c", child, str(tmp_path)], capture_output=True, text=True)
        assert refused.returncode != 0 and "RunLocked" in refused.stderr


HOLD_PART = ("import sys, time; from mamc.lock import run_lock\n"
             "with run_lock(sys.argv[1], 'shard ' + sys.argv[2], sys.argv[2]):\n print('held', flush=True); time.sleep(60)")


def test_shards_share_the_folder_and_exclude_everything_else(tmp_path):
    """Shards of one job (one per GPU) hold the folder together; a whole-folder job, or a second process on the
    same shard, is refused with the holders named."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD_PART, str(tmp_path), "caption-shard-0-of-2"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with run_lock(tmp_path, "the other shard", "caption-shard-1-of-2") as record:
            assert record["command"] == "the other shard"
        with pytest.raises(RunLocked, match=rf"in use by PID {holder.pid} .*`shard caption-shard-0-of-2`"):
            with run_lock(tmp_path, "mamc train"):
                pass
        with pytest.raises(RunLocked, match=rf"caption-shard-0-of-2 is in use by PID {holder.pid}"):
            with run_lock(tmp_path, "the same shard again", "caption-shard-0-of-2"):
                pass
    finally:
        holder.kill()
        holder.wait()
    with run_lock(tmp_path, "a whole-folder job after the shards"):
        shard = subprocess.run([sys.executable, "-c", HOLD_PART, str(tmp_path), "caption-shard-0-of-2"],
                               capture_output=True, text=True, timeout=60)
    assert shard.returncode != 0 and "`a whole-folder job after the shards`" in shard.stderr

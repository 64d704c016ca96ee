"""Headless runs never hang: the watchdog stops a cell without a sign of life, names it, and keeps the partial
notebook; a busy cell is left alone."""
import nbformat
import pytest

from mamc.reproduce import ReproduceError, reproduce
from mamc.watchdog import Limits

pytestmark = pytest.mark.slow

FAST = Limits(idle=3, reply=3, poll=0.5)

# A kernel that loses the reply of every later cell, as ipykernel 7 was seen to do under papermill.
DROP_REPLIES = """k = get_ipython().kernel
send = k.session.send
def send_all_but_replies(stream, msg_type, content=None, parent=None, *args, **kwargs):
    if msg_type == "execute_reply":
        return k.session.msg(msg_type, content, parent)
    return send(stream, msg_type, content, parent, *args, **kwargs)
k.session.send = send_all_but_replies"""


def notebook_dir(tmp_path, *sources):
    folder = tmp_path / "nbs"
    folder.mkdir()
    params = nbformat.v4.new_code_cell('profile = "smoke"\nrun_dir = "x"')
    params.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[params, *map(nbformat.v4.new_code_cell, sources)])
    nb.metadata["kernelspec"] = {"name": "mamc", "display_name": "Python (mamc)", "language": "python"}
    nbformat.write(nb, folder / "01_case.ipynb")
    return folder


@pytest.mark.parametrize("cells, message", [
    (["x = 1", "import time; time.sleep(600)"],
     r"01_case.ipynb: the watchdog stopped cell 3 `import time; time.sleep\(600\)` \(the kernel used no CPU and sent "
     r"no message for 3 s\)"),
    (["x = 1", DROP_REPLIES, "y = 2"],
     r"01_case.ipynb: the watchdog stopped cell 3 `k = get_ipython\(\).kernel` \(the kernel finished the cell but its reply did not "
     r"come within 3 s\)"),
    (["import os; os._exit(3)"], r"01_case.ipynb: the kernel died in cell 2 `import os; os._exit\(3\)`"),
])
def test_a_stuck_or_dead_kernel_stops_the_run_with_the_cell_named(tmp_path, cells, message):
    with pytest.raises(ReproduceError, match=message) as err:  # the watchdog's own words: it, not the cell, ended it
        reproduce("smoke", tmp_path / "run", notebook_dir=notebook_dir(tmp_path, *cells), progress=False, watchdog=FAST)
    assert "partially executed notebook is kept" in str(err.value) and "\n" not in str(err.value)
    kept = nbformat.read(tmp_path / "run" / "notebooks" / "01_case.ipynb", as_version=4)
    assert len(cells) == 1 or any(c.source == "x = 1" and c.execution_count for c in kept.cells)


def test_a_busy_silent_cell_is_left_alone(tmp_path):
    busy = "import time\nend = time.time() + 6\nwhile time.time() < end: pass\ndone = True"
    reproduce("smoke", tmp_path / "run", notebook_dir=notebook_dir(tmp_path, busy), progress=False, watchdog=FAST)
    kept = nbformat.read(tmp_path / "run" / "notebooks" / "01_case.ipynb", as_version=4)
    assert kept.cells[-1].execution_count and not kept.cells[-1].outputs


def test_a_reply_whose_wakeup_is_lost_is_still_picked_up(tmp_path, monkeypatch):
    """With widgets, an unbounded wait on the shell channel sometimes never wakes although the reply came
    (nbclient #312): here every unbounded wait is made to hang, and the run must still finish."""
    import asyncio

    import zmq
    from jupyter_client.channels import AsyncZMQSocketChannel

    real = AsyncZMQSocketChannel.get_msg

    async def lost_wakeup(self, timeout=None):
        if timeout is None and self.socket.type == zmq.DEALER:  # the shell channel
            await asyncio.sleep(3600)
        return await real(self, timeout)

    monkeypatch.setattr(AsyncZMQSocketChannel, "get_msg", lost_wakeup)
    reproduce("smoke", tmp_path / "run", notebook_dir=notebook_dir(tmp_path, "x = 1", "y = x + 1"), progress=False,
              watchdog=FAST)
    kept = nbformat.read(tmp_path / "run" / "notebooks" / "01_case.ipynb", as_version=4)
    assert all(c.execution_count for c in kept.cells if c.cell_type == "code")

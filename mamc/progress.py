"""Progress bars that read well where they end up. On a terminal: tqdm as usual. In a notebook: one line of plain
text updated in place (a display with an id, no widget), so that an executed notebook keeps the finished line
("caption: 100%|██████████| 3000/3000 [01:35<00:00, 31.5video/s]") and shows no widget that needs a live kernel
on GitHub, nbviewer or after `nbconvert --to html`."""
from __future__ import annotations

import io

from tqdm.std import tqdm as terminal_tqdm


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (papermill's included)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


class TextLine(terminal_tqdm):
    """tqdm drawn as a text/plain display, replaced in place at most every 2 s and once more when it ends."""

    def __init__(self, *args, **kwargs):
        self._handle = None
        kwargs.setdefault("mininterval", 2.0)
        kwargs.setdefault("ascii", False)
        super().__init__(*args, **{**kwargs, "file": io.StringIO()})

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        from IPython.display import display

        data = {"text/plain": msg or str(self)}
        if self._handle is None:
            self._handle = display(data, raw=True, display_id=True)
        else:
            self._handle.update(data, raw=True)
        return True


def tqdm(*args, **kwargs) -> terminal_tqdm:
    """A progress bar: a text line in a notebook, tqdm's own on a terminal (same arguments as tqdm)."""
    return (TextLine if in_notebook() else terminal_tqdm)(*args, **kwargs)

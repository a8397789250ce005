"""Progress where it runs: a bar per sweep (a widget in a notebook), notices as ``lrsc:`` lines.

:func:`bar` is tqdm's notebook widget in a Jupyter kernel where ipywidgets is installed, else
tqdm's text bar (a notebook shows that as one line it rewrites in place). :func:`in_notebook`
tells a Jupyter kernel, where a sweep shows its one bar and no bar per run.
:func:`notices_to_stderr` shows lrsc's notices (a sweep's runs by status as it ends, runs set
aside, engines' choices) on stderr, as ``lrsc: ...`` lines: the command line and the book's
chapters turn it on.
"""
from __future__ import annotations

import importlib.util
import logging
import sys
from typing import Any

from tqdm import tqdm


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (IPython's ZMQ shell, as papermill runs too)."""
    ipython = sys.modules.get("IPython")  # never imported here: a kernel has imported it already
    shell = ipython.get_ipython() if ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def bar(**kwargs: Any) -> tqdm:
    """A tqdm bar with ``kwargs``: the notebook widget in a Jupyter kernel with ipywidgets, else text."""
    if in_notebook() and importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.notebook import tqdm as widget

        return widget(**kwargs)
    return tqdm(**kwargs)


class _Stderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record comes (a test may have swapped it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def notices_to_stderr() -> None:
    """Show lrsc's notices (logger ``lrsc``, INFO and up) as ``lrsc: ...`` lines on stderr, once."""
    log = logging.getLogger("lrsc")
    if not any(isinstance(h, _Stderr) for h in log.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("lrsc: %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)
